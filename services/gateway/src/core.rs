//! The governance plane: sessions, operator calls, finalize and policy
//! simulation (spec 20 §2). The gRPC service is a thin front on this.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pecr_adapters::{Adapters, Operator, PolicyInputFields, SessionScope};
use pecr_contracts::hashing::{PolicySnapshotInputs, budget_hash, policy_snapshot_hash};
use pecr_contracts::{Budget, hash_canonical_json, ids, is_sha256_hex, sha256_hex};
use pecr_errors::{ErrorCode, PecrError, PecrResult};
use pecr_policy::{Decision, DecisionKey, PolicyEngine};
use pecr_proto::v1;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::events::{self, CallOutcome, event};
use crate::finalize_gate::{self, SessionUsage};
use crate::ledger::Ledger;
use crate::metrics::GatewayMetrics;
use crate::search_cache::SearchCache;
use crate::session_access::{CredentialCache, new_session_token};
use crate::session_locks::SessionLocks;
use pecr_auth::Principal;

/// What each request carries besides its body.
pub struct Caller {
    pub principal: Principal,
    pub request_id: String,
}

/// Settings the request paths need.
pub struct Settings {
    pub policy_bundle_hash: String,
    pub as_of_time_default: String,
    pub session_token_ttl: Duration,
    pub lock_timeout: Duration,
    pub coverage_threshold: f64,
    pub store_evidence_content: bool,
}

pub struct Gateway {
    pub settings: Settings,
    pub policy: PolicyEngine,
    pub adapters: Adapters,
    pub ledger: Ledger,
    pub metrics: GatewayMetrics,
    pub locks: SessionLocks,
    pub search_cache: SearchCache,
    pub credentials: CredentialCache,
}

/// A created session and the token returned once to its owner.
pub struct CreatedSession {
    pub response: v1::CreateSessionResponse,
    pub session_token: String,
}

/// The outcome of a successful operator call.
pub struct OperatorReply {
    pub result: Value,
    pub decision: Decision,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The compact JSON length that budgets account in bytes.
fn json_len(value: &Value) -> u64 {
    serde_json::to_string(value).map_or(0, |text| text.len() as u64)
}

fn invalid_credentials() -> PecrError {
    PecrError::new(ErrorCode::PolicyDenied, "invalid session credentials").with_http(401)
}

fn policy_denied() -> PecrError {
    PecrError::new(ErrorCode::PolicyDenied, "policy denied")
}

fn budget_exceeded() -> PecrError {
    PecrError::new(ErrorCode::BudgetExceeded, "budget exceeded")
}

/// Trimmed `as_of_time`, or the default when absent or blank.
fn as_of_time_or(raw: Option<&str>, default: &str) -> PecrResult<String> {
    let value = raw
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default);
    pecr_contracts::time::validate_as_of_time(value)
        .map_err(|err| PecrError::invalid_params(err.to_string()))?;
    Ok(value.to_owned())
}

impl Gateway {
    async fn decide(
        &self,
        caller: &Caller,
        action: &str,
        parts: Vec<String>,
        input: &Value,
    ) -> PecrResult<Decision> {
        let key = DecisionKey {
            tenant_id: caller.principal.tenant_id.clone(),
            principal_id: caller.principal.principal_id.clone(),
            action: action.to_owned(),
            parts,
        };
        let span = tracing::info_span!("policy.evaluate", action, allow = tracing::field::Empty);
        let decision = self
            .policy
            .decide(&key, input)
            .instrument(span.clone())
            .await;
        if let Ok(decision) = &decision {
            span.record("allow", decision.allow);
        }
        decision
    }

    /// POST /v1/sessions (spec 20 §2.4).
    pub async fn create_session(
        &self,
        caller: &Caller,
        trace_id: String,
        request: v1::CreateSessionRequest,
    ) -> PecrResult<CreatedSession> {
        let budget_proto = request
            .budget
            .ok_or_else(|| PecrError::invalid_params("budget is required"))?;
        let budget = Budget::from(&budget_proto);
        budget
            .validate()
            .map_err(|reason| PecrError::invalid_params(format!("invalid budget: {reason}")))?;
        let as_of_time = as_of_time_or(
            request.as_of_time.as_deref(),
            &self.settings.as_of_time_default,
        )?;

        let principal = &caller.principal;
        let snapshot_hash = policy_snapshot_hash(&PolicySnapshotInputs {
            principal_id: &principal.principal_id,
            tenant_id: &principal.tenant_id,
            principal_roles: &principal.roles,
            principal_attrs_hash: &principal.attrs_hash,
            policy_bundle_hash: &self.settings.policy_bundle_hash,
            as_of_time: &as_of_time,
        });
        let input = json!({
            "action": "create_session",
            "principal_id": principal.principal_id,
            "policy_snapshot_hash": snapshot_hash,
            "policy_bundle_hash": self.settings.policy_bundle_hash,
            "as_of_time": as_of_time,
            "budget_hash": budget_hash(&budget),
            "request_id": caller.request_id,
        });
        let decision = self
            .decide(
                caller,
                "create_session",
                vec![snapshot_hash.clone()],
                &input,
            )
            .await?;
        if !decision.allow {
            return Err(policy_denied());
        }

        let session_id = ids::new_ulid();
        let policy_snapshot_id = ids::new_ulid();
        let session_token = new_session_token()?;
        let mut roles = principal.roles.clone();
        roles.sort_unstable();
        let record = self
            .ledger
            .record_session(v1::RecordSessionRequest {
                session_id: session_id.clone(),
                trace_id: trace_id.clone(),
                policy_snapshot_id: policy_snapshot_id.clone(),
                policy_snapshot: Some(v1::PolicySnapshot {
                    policy_snapshot_hash: snapshot_hash,
                    principal_id: principal.principal_id.clone(),
                    tenant_id: principal.tenant_id.clone(),
                    principal_roles: roles,
                    principal_attrs_hash: principal.attrs_hash.clone(),
                    policy_bundle_hash: self.settings.policy_bundle_hash.clone(),
                    as_of_time: as_of_time.clone(),
                    evaluated_at: as_of_time,
                }),
                budget: Some(budget_proto),
                session_token_hash: sha256_hex(&session_token),
                session_token_expires_at_epoch_ms: now_ms()
                    .saturating_add(self.settings.session_token_ttl.as_millis() as u64),
            })
            .await?;
        self.credentials.insert(&record).await;
        if record.trace_id != trace_id {
            tracing::warn!(
                trace_id = %record.trace_id,
                request_id = %caller.request_id,
                session_id = %record.session_id,
                "gateway.trace_id_replaced: the requested trace belongs to another principal"
            );
        }
        tracing::info!(
            trace_id = %record.trace_id,
            request_id = %caller.request_id,
            session_id = %record.session_id,
            principal_id = %record.principal_id,
            policy_snapshot_id = %record.policy_snapshot_id,
            "gateway.create_session"
        );
        Ok(CreatedSession {
            response: v1::CreateSessionResponse {
                session_id,
                trace_id: record.trace_id,
                policy_snapshot_id,
                budget: Some(budget_proto),
            },
            session_token,
        })
    }

    /// Checks that the caller may use the session, before its lock is taken
    /// and before anything is written to it. An unknown session, another
    /// tenant's, principal's or attribute set's session and a wrong or
    /// expired token all get the same 401; refusals of an existing session
    /// are recorded by the ledger apart from the session's own events.
    async fn admit(
        &self,
        caller: &Caller,
        session_id: &str,
        token: &str,
        action: &str,
    ) -> PecrResult<()> {
        let credentials = match self.credentials.get(session_id).await {
            Some(credentials) => credentials,
            None => {
                let session = self
                    .ledger
                    .get_session(session_id)
                    .await?
                    .ok_or_else(invalid_credentials)?;
                self.credentials.insert(&session).await
            }
        };
        let Err(refusal) = credentials.admit(&caller.principal, token, now_ms()) else {
            return Ok(());
        };
        let reason = refusal.reason();
        tracing::warn!(
            request_id = %caller.request_id,
            session_id,
            principal_id = %caller.principal.principal_id,
            reason,
            "gateway.session_credentials_rejected"
        );
        self.metrics.session_refused(reason);
        self.ledger
            .record_access_refusal(v1::RecordAccessRefusalRequest {
                session_id: session_id.to_owned(),
                principal_id: caller.principal.principal_id.clone(),
                tenant_id: caller.principal.tenant_id.clone(),
                reason: reason.to_owned(),
                action: action.to_owned(),
                request_id: caller.request_id.clone(),
            })
            .await?;
        Err(invalid_credentials())
    }

    /// The current state of an admitted session, read under its lock: it
    /// must still be open and carry a valid budget.
    async fn open_session(&self, session_id: &str) -> PecrResult<v1::SessionRecord> {
        let session = self
            .ledger
            .get_session(session_id)
            .await?
            .ok_or_else(invalid_credentials)?;
        if session.finalized {
            return Err(PecrError::invalid_params("session already finalized").with_http(409));
        }
        let budget = session.budget.as_ref().map(Budget::from);
        if budget.is_none_or(|b| b.validate().is_err()) {
            return Err(PecrError::internal("stored session budget is invalid"));
        }
        Ok(session)
    }

    /// Appends events without changing the session's counters.
    async fn append_events(
        &self,
        session: &v1::SessionRecord,
        events: Vec<v1::NewLedgerEvent>,
    ) -> PecrResult<()> {
        self.ledger
            .record_operator_call(v1::RecordOperatorCallRequest {
                session_id: session.session_id.clone(),
                trace_id: session.trace_id.clone(),
                evidence_units: Vec::new(),
                events,
                expected_operator_calls_used: session.operator_calls_used,
                expected_bytes_used: session.bytes_used,
                operator_calls_used: session.operator_calls_used,
                bytes_used: session.bytes_used,
                store_content: false,
            })
            .await
            .map(|_| ())
    }

    /// POST /v1/operators/{op_name} (spec 20 §2.6).
    pub async fn call_operator(
        &self,
        caller: &Caller,
        token: &str,
        request: v1::CallOperatorRequest,
    ) -> PecrResult<OperatorReply> {
        let op_name = request.op_name.trim().to_owned();
        let params: Value = serde_json::from_str(&request.params)
            .map_err(|_| PecrError::invalid_params("invalid JSON body"))?;
        if request.session_id.trim().is_empty() {
            return Err(PecrError::invalid_params("session_id is required"));
        }
        let action = Operator::parse(&op_name).map_or("unknown_operator", Operator::name);
        self.admit(caller, &request.session_id, token, action)
            .await?;
        let _guard = self
            .locks
            .acquire(&request.session_id, self.settings.lock_timeout)
            .await?;
        let params_bytes = json_len(&params);
        let params_hash = hash_canonical_json(&params);
        let session = self.open_session(&request.session_id).await?;
        let budget = session.budget.unwrap_or_default();
        let caller_id = caller.principal.principal_id.as_str();
        let rid = caller.request_id.as_str();

        if session.operator_calls_used >= u64::from(budget.max_operator_calls) {
            self.metrics.budget_violation();
            let payload = events::calls_budget_violation(
                &op_name,
                session.operator_calls_used,
                u64::from(budget.max_operator_calls),
                rid,
            );
            self.append_events(
                &session,
                vec![event(&session, caller_id, "BUDGET_VIOLATION", payload)],
            )
            .await?;
            return Err(budget_exceeded());
        }
        if budget.max_bytes > 0
            && session.bytes_used.saturating_add(params_bytes) > budget.max_bytes
        {
            self.metrics.budget_violation();
            let payload = events::bytes_budget_violation(
                &op_name,
                session.bytes_used,
                params_bytes,
                budget.max_bytes,
                rid,
            );
            self.append_events(
                &session,
                vec![event(&session, caller_id, "BUDGET_VIOLATION", payload)],
            )
            .await?;
            return Err(budget_exceeded());
        }
        let Some(operator) = Operator::parse(&op_name) else {
            let decision =
                events::policy_decision(&op_name, false, "operator_not_allowlisted", rid);
            let denied = events::operator_denied(&op_name, &params_hash, params_bytes, rid);
            self.append_events(
                &session,
                vec![
                    event(&session, caller_id, "POLICY_DECISION", decision),
                    event(&session, caller_id, "OPERATOR_CALL", denied),
                ],
            )
            .await?;
            return Err(PecrError::invalid_params("operator not allowlisted"));
        };

        let fields = pecr_adapters::policy_input_fields(&params);
        // Policy judges the file that would really be read: a link under an
        // allowed prefix that points elsewhere is judged by its target.
        let object_id = match &fields.object_id {
            Some(raw)
                if matches!(
                    operator,
                    Operator::ListVersions | Operator::FetchSpan | Operator::Diff
                ) =>
            {
                Some(
                    self.adapters
                        .canonical_object_id(raw)
                        .await
                        .unwrap_or_else(|_| raw.clone()),
                )
            }
            other => other.clone(),
        };
        let fields = PolicyInputFields {
            object_id,
            ..fields
        };
        let decision = match self
            .decide_operator(
                caller,
                &session,
                &op_name,
                &params_hash,
                params_bytes,
                &fields,
            )
            .await
        {
            Ok(decision) => decision,
            Err(error) => {
                let payload = events::policy_decision(&op_name, false, "policy_engine_error", rid);
                self.append_events(
                    &session,
                    vec![event(&session, caller_id, "POLICY_DECISION", payload)],
                )
                .await?;
                return Err(error);
            }
        };
        let decision_event = event(
            &session,
            caller_id,
            "POLICY_DECISION",
            events::policy_outcome(&op_name, &decision, rid),
        );
        if !decision.allow {
            let denied = event(
                &session,
                caller_id,
                "OPERATOR_CALL",
                events::operator_denied(&op_name, &params_hash, params_bytes, rid),
            );
            self.append_events(&session, vec![decision_event, denied])
                .await?;
            return Err(policy_denied());
        }
        let redaction = match pecr_adapters::parse_redaction(decision.redaction.as_ref()) {
            Ok(redaction) => redaction,
            Err(error) => {
                self.append_events(&session, vec![decision_event]).await?;
                return Err(error);
            }
        };

        let scope = SessionScope {
            tenant_id: session.tenant_id.clone(),
            principal_id: session.principal_id.clone(),
            as_of_time: session.as_of_time.clone(),
            policy_snapshot_id: session.policy_snapshot_id.clone(),
            policy_snapshot_hash: session.policy_snapshot_hash.clone(),
            emitted_evidence_ids: session.evidence_unit_ids.iter().cloned().collect(),
        };
        let run = async {
            if operator == Operator::Search {
                self.search(caller, &session, &scope, &params, &params_hash)
                    .await
            } else {
                let output = self
                    .adapters
                    .run(operator, &params, &scope, redaction.as_ref())
                    .await?;
                Ok((output.result, output.evidence, false))
            }
        };
        let (result, evidence, cache_hit) = match run.await {
            Ok(output) => output,
            Err(error) => {
                // The decision stays on record; a failed read costs no budget.
                self.append_events(&session, vec![decision_event]).await?;
                return Err(error);
            }
        };

        let result_bytes = json_len(&result);
        let bytes_used = session
            .bytes_used
            .saturating_add(params_bytes)
            .saturating_add(result_bytes);
        // Deliberate fix: bytes are checked before a result is returned.
        if budget.max_bytes > 0 && bytes_used > budget.max_bytes {
            self.metrics.budget_violation();
            let violation = events::bytes_budget_violation(
                &op_name,
                session.bytes_used,
                params_bytes + result_bytes,
                budget.max_bytes,
                rid,
            );
            self.append_events(
                &session,
                vec![
                    decision_event,
                    event(&session, caller_id, "BUDGET_VIOLATION", violation),
                ],
            )
            .await?;
            return Err(budget_exceeded());
        }

        let units: Vec<v1::EvidenceUnit> = evidence.iter().map(crate::evidence::to_proto).collect();
        let operator_calls_used = session.operator_calls_used + 1;
        let mut batch = vec![decision_event];
        batch.extend(units.iter().map(|unit| {
            event(
                &session,
                caller_id,
                "EVIDENCE_EMITTED",
                events::evidence_emitted(unit, &op_name, rid),
            )
        }));
        batch.push(event(
            &session,
            caller_id,
            "OPERATOR_CALL",
            events::operator_success(&CallOutcome {
                op_name: &op_name,
                params_hash: &params_hash,
                cache_hit,
                params_bytes,
                result_bytes,
                operator_calls_used,
                bytes_used,
                request_id: rid,
            }),
        ));
        self.ledger
            .record_operator_call(v1::RecordOperatorCallRequest {
                session_id: session.session_id.clone(),
                trace_id: session.trace_id.clone(),
                evidence_units: units,
                events: batch,
                expected_operator_calls_used: session.operator_calls_used,
                expected_bytes_used: session.bytes_used,
                operator_calls_used,
                bytes_used,
                store_content: self.settings.store_evidence_content,
            })
            .await?;
        tracing::info!(
            trace_id = %session.trace_id,
            request_id = rid,
            session_id = %session.session_id,
            principal_id = caller_id,
            policy_snapshot_id = %session.policy_snapshot_id,
            op_name = %op_name,
            params_hash = %params_hash,
            params_bytes,
            result_bytes,
            operator_calls_used,
            bytes_used,
            cache_hit,
            "gateway.call_operator"
        );
        Ok(OperatorReply { result, decision })
    }

    /// `search`, with refs filtered per object by policy (a deliberate fix:
    /// no ref to an object the caller may not read) and the result cache.
    async fn search(
        &self,
        caller: &Caller,
        session: &v1::SessionRecord,
        scope: &SessionScope,
        params: &Value,
        params_hash: &str,
    ) -> PecrResult<(Value, Vec<pecr_contracts::evidence::EvidenceUnit>, bool)> {
        let cache_key = crate::search_cache::SearchKey {
            tenant_id: scope.tenant_id.clone(),
            principal_id: scope.principal_id.clone(),
            policy_snapshot_hash: scope.policy_snapshot_hash.clone(),
            as_of_time: scope.as_of_time.clone(),
            params_hash: params_hash.to_owned(),
        };
        if let Some(result) = self.search_cache.get(&cache_key).await {
            self.metrics.cache_hit("search");
            return Ok((result, Vec::new(), true));
        }
        let output = self
            .adapters
            .run(Operator::Search, params, scope, None)
            .await?;
        let refs = output
            .result
            .get("refs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut visible = Vec::with_capacity(refs.len());
        for reference in refs {
            let Some(object_id) = reference.get("object_id").and_then(Value::as_str) else {
                continue;
            };
            if self.may_read_object(caller, session, object_id).await? {
                visible.push(reference);
            }
        }
        let result = json!({ "refs": visible });
        self.search_cache.insert(cache_key, result.clone()).await;
        Ok((result, Vec::new(), false))
    }

    /// Would policy let the caller `fetch_span` this object?
    async fn may_read_object(
        &self,
        caller: &Caller,
        session: &v1::SessionRecord,
        object_id: &str,
    ) -> PecrResult<bool> {
        let params = json!({ "object_id": object_id });
        let fields = PolicyInputFields {
            object_id: Some(object_id.to_owned()),
            view_id: None,
            fields_hash: None,
            filter_fingerprint: None,
        };
        let decision = self
            .decide_operator(
                caller,
                session,
                "fetch_span",
                &hash_canonical_json(&params),
                json_len(&params),
                &fields,
            )
            .await?;
        Ok(decision.allow)
    }

    /// The `operator_call` decision (spec 20 §4.1); cached per snapshot, operator and params.
    async fn decide_operator(
        &self,
        caller: &Caller,
        session: &v1::SessionRecord,
        op_name: &str,
        params_hash: &str,
        params_bytes: u64,
        fields: &PolicyInputFields,
    ) -> PecrResult<Decision> {
        let input = json!({
            "action": "operator_call",
            "principal_id": caller.principal.principal_id,
            "trace_id": session.trace_id,
            "session_id": session.session_id,
            "policy_snapshot_id": session.policy_snapshot_id,
            "policy_snapshot_hash": session.policy_snapshot_hash,
            "policy_bundle_hash": self.settings.policy_bundle_hash,
            "as_of_time": session.as_of_time,
            "op_name": op_name,
            "params_hash": params_hash,
            "params_bytes": params_bytes,
            "object_id": fields.object_id,
            "view_id": fields.view_id,
            "fields_hash": fields.fields_hash,
            "filter_fingerprint": fields.filter_fingerprint,
            "request_id": caller.request_id,
        });
        let parts = vec![
            session.policy_snapshot_hash.clone(),
            op_name.to_owned(),
            params_hash.to_owned(),
        ];
        self.decide(caller, "operator_call", parts, &input).await
    }

    /// POST /v1/finalize (spec 20 §2.7, §7).
    pub async fn finalize(
        &self,
        caller: &Caller,
        token: &str,
        request: v1::FinalizeRequest,
    ) -> PecrResult<v1::FinalizeResponse> {
        let claim_map = request
            .claim_map
            .ok_or_else(|| PecrError::invalid_params("claim_map is required"))?;
        if request.session_id.trim().is_empty() {
            return Err(PecrError::invalid_params("session_id is required"));
        }
        self.admit(caller, &request.session_id, token, "finalize")
            .await?;
        let _guard = self
            .locks
            .acquire(&request.session_id, self.settings.lock_timeout)
            .await?;
        let session = self.open_session(&request.session_id).await?;
        let caller_id = caller.principal.principal_id.as_str();
        let rid = caller.request_id.as_str();
        let input = json!({
            "action": "finalize",
            "principal_id": caller_id,
            "trace_id": session.trace_id,
            "session_id": session.session_id,
            "policy_snapshot_id": session.policy_snapshot_id,
            "policy_snapshot_hash": session.policy_snapshot_hash,
            "policy_bundle_hash": self.settings.policy_bundle_hash,
            "as_of_time": session.as_of_time,
            "request_id": rid,
        });
        let decision = match self
            .decide(
                caller,
                "finalize",
                vec![session.policy_snapshot_hash.clone()],
                &input,
            )
            .await
        {
            Ok(decision) => decision,
            Err(error) => {
                let payload =
                    events::policy_decision("finalize", false, "policy_engine_error", rid);
                self.ledger
                    .append_event(event(&session, caller_id, "POLICY_DECISION", payload))
                    .await?;
                return Err(error);
            }
        };
        let payload = events::policy_outcome("finalize", &decision, rid);
        self.ledger
            .append_event(event(&session, caller_id, "POLICY_DECISION", payload))
            .await?;
        if !decision.allow {
            return Err(policy_denied());
        }

        let budget = session.budget.unwrap_or_default();
        let usage = SessionUsage {
            emitted_evidence_ids: &session.evidence_unit_ids,
            operator_calls_used: session.operator_calls_used,
            max_operator_calls: u64::from(budget.max_operator_calls),
            bytes_used: session.bytes_used,
            max_bytes: budget.max_bytes,
        };
        let gated = finalize_gate::gate(claim_map, &usage, self.settings.coverage_threshold)?;
        let payload = events::finalize_result(&gated, &session, rid);
        let mut finalize_event = event(&session, caller_id, "FINALIZE_RESULT", payload);
        finalize_event.principal_id = caller_id.to_owned();
        self.ledger
            .record_finalize(v1::RecordFinalizeRequest {
                session_id: session.session_id.clone(),
                claim_map: Some(gated.clone()),
                finalize_event: Some(finalize_event),
                ..Default::default()
            })
            .await?;
        tracing::info!(
            trace_id = %session.trace_id,
            request_id = rid,
            session_id = %session.session_id,
            principal_id = caller_id,
            policy_snapshot_id = %session.policy_snapshot_id,
            terminal_mode = v1::TerminalMode::try_from(gated.terminal_mode).unwrap_or_default().as_str_name(),
            "gateway.finalize"
        );
        Ok(v1::FinalizeResponse {
            terminal_mode: gated.terminal_mode,
            trace_id: session.trace_id,
            claim_map: Some(gated),
            response_text: request.response_text,
        })
    }

    /// POST /v1/policies/simulate (spec 20 §2.5): a decision, nothing written.
    pub async fn simulate(
        &self,
        caller: &Caller,
        request: v1::SimulatePolicyRequest,
    ) -> PecrResult<Decision> {
        let action = request.action.trim().to_owned();
        if action.is_empty() {
            return Err(PecrError::invalid_params(
                "action must be a non-empty string",
            ));
        }
        let params: Value = serde_json::from_str(&request.params)
            .map_err(|_| PecrError::invalid_params("invalid JSON body"))?;
        let Value::Object(mut params_object) = params else {
            return Err(PecrError::invalid_params("params must be an object"));
        };
        // Policy sees the file a path resolves to, as on a real call.
        if let Some(Value::String(raw)) = params_object.get_mut("object_id")
            && let Ok(canonical) = self.adapters.canonical_object_id(raw).await
        {
            *raw = canonical;
        }
        let params = Value::Object(params_object.clone());
        let hash_field = |name: &str, value: Option<&str>| -> PecrResult<Option<String>> {
            match value.map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) if is_sha256_hex(v) => Ok(Some(v.to_owned())),
                Some(_) => Err(PecrError::invalid_params(format!(
                    "{name} must be sha256 hex"
                ))),
            }
        };
        let snapshot_hash = hash_field(
            "policy_snapshot_hash",
            request.policy_snapshot_hash.as_deref(),
        )?;
        let bundle_hash = hash_field("policy_bundle_hash", request.policy_bundle_hash.as_deref())?
            .unwrap_or_else(|| self.settings.policy_bundle_hash.clone());
        let as_of_time = as_of_time_or(
            request.as_of_time.as_deref(),
            &self.settings.as_of_time_default,
        )?;

        let mut input = serde_json::Map::new();
        input.insert("action".into(), json!(action));
        input.insert("principal_id".into(), json!(caller.principal.principal_id));
        input.insert("request_id".into(), json!(caller.request_id));
        input.insert("params".into(), params.clone());
        input.insert("policy_bundle_hash".into(), json!(bundle_hash));
        input.insert("as_of_time".into(), json!(as_of_time));
        if let Some(hash) = &snapshot_hash {
            input.insert("policy_snapshot_hash".into(), json!(hash));
        }
        // Params may add fields (op_name, object_id, …) but never override these.
        for (key, value) in params_object {
            input.entry(key).or_insert(value);
        }
        let parts = vec![
            hash_canonical_json(&params),
            snapshot_hash.unwrap_or_default(),
            bundle_hash,
            as_of_time,
        ];
        // Its own key space: a simulation never answers a real call from cache.
        self.decide(
            caller,
            &format!("simulate:{action}"),
            parts,
            &Value::Object(input),
        )
        .await
    }
}
