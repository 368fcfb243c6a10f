//! The governance plane: sessions, operator calls, finalize and policy
//! simulation (spec 20 §2). The gRPC service is a thin front on this.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pecr_adapters::Adapters;
use pecr_contracts::hashing::{PolicySnapshotInputs, budget_hash, policy_snapshot_hash};
use pecr_contracts::{Budget, hash_canonical_json, ids, is_sha256_hex, sha256_hex};
use pecr_errors::{ErrorCode, PecrError, PecrResult};
use pecr_policy::{Decision, DecisionKey, PolicyEngine};
use pecr_proto::v1;
use pecr_replay::RunRecord;
use pecr_replay::finalize_gate::{self, SessionUsage};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::events::{self, event};
use crate::ledger::Ledger;
use crate::metrics::GatewayMetrics;
use crate::operators::RequestedCall;
use crate::search_cache::SearchCache;
use crate::session_access::{CredentialCache, new_session_token};
use crate::session_locks::SessionLocks;
use crate::session_state::{SessionStates, is_stale};

/// Times a write is decided again after the ledger reported that another
/// replica changed the session meanwhile.
pub(crate) const STALE_RETRIES: usize = 3;
use pecr_auth::Principal;

/// The authenticated principal of a request, with the request's id.
pub struct PrincipalRequest {
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
    pub sessions: SessionStates,
}

/// What a finalize submits: the answer and, from a run, its record.
struct Answer<'a> {
    claim_map: v1::ClaimMap,
    response_text: &'a str,
    run: Option<RunRecord>,
}

/// A created session and the token returned once to its owner.
pub struct CreatedSession {
    pub response: v1::CreateSessionResponse,
    pub session_token: String,
    /// The first calls' outcomes, in order.
    pub outcomes: Vec<PecrResult<OperatorReply>>,
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
pub(crate) fn json_len(value: &Value) -> u64 {
    serde_json::to_string(value).map_or(0, |text| text.len() as u64)
}

pub(crate) fn invalid_credentials() -> PecrError {
    PecrError::new(ErrorCode::PolicyDenied, "invalid session credentials").with_http(401)
}

pub(crate) fn policy_denied() -> PecrError {
    PecrError::new(ErrorCode::PolicyDenied, "policy denied")
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
    pub(crate) async fn decide(
        &self,
        caller: &PrincipalRequest,
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
        caller: &PrincipalRequest,
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
        let record_request = v1::RecordSessionRequest {
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
            first_calls: None,
        };
        let calls = request.calls.into_iter().map(RequestedCall::from).collect();
        let (record, outcomes) = self.open_session(caller, record_request, calls).await?;
        self.credentials.insert(&record).await;
        if record.trace_id != trace_id {
            tracing::warn!(
                trace_id = %record.trace_id,
                request_id = %caller.request_id,
                session_id = %record.session_id,
                "gateway.trace_id_replaced: the requested trace belongs to another principal"
            );
        }
        tracing::debug!(
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
                outcomes: Vec::new(),
            },
            session_token,
            outcomes,
        })
    }

    /// Checks that the caller may use the session, before its lock is taken
    /// and before anything is written to it. An unknown session, another
    /// tenant's, principal's or attribute set's session and a wrong or
    /// expired token all get the same 401; refusals of an existing session
    /// are recorded by the ledger apart from the session's own events.
    pub(crate) async fn admit(
        &self,
        caller: &PrincipalRequest,
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

    /// POST /v1/finalize (spec 20 §2.7, §7).
    pub async fn finalize(
        &self,
        caller: &PrincipalRequest,
        token: &str,
        request: v1::FinalizeRequest,
    ) -> PecrResult<v1::FinalizeResponse> {
        let claim_map = request
            .claim_map
            .ok_or_else(|| PecrError::invalid_params("claim_map is required"))?;
        if request.session_id.trim().is_empty() {
            return Err(PecrError::invalid_params("session_id is required"));
        }
        let run = request
            .run
            .map(pecr_replay::wire::run_record_from_proto)
            .transpose()
            .map_err(PecrError::invalid_params)?;
        self.admit(caller, &request.session_id, token, "finalize")
            .await?;
        let _guard = self
            .locks
            .acquire(&request.session_id, self.settings.lock_timeout)
            .await?;
        let mut attempt = 0;
        let (gated, run_id, session) = loop {
            let session = self
                .sessions
                .open(&self.ledger, &request.session_id)
                .await?;
            let answer = Answer {
                claim_map: claim_map.clone(),
                response_text: &request.response_text,
                run: run.clone(),
            };
            match self.finalize_open(caller, &session, answer).await {
                Err(error) if is_stale(&error) && attempt < STALE_RETRIES => {
                    attempt += 1;
                    self.sessions.forget(&request.session_id).await;
                }
                Err(error) => return Err(error),
                Ok((gated, run_id)) => break (gated, run_id, session),
            }
        };
        tracing::info!(
            trace_id = %session.trace_id,
            request_id = %caller.request_id,
            session_id = %session.session_id,
            principal_id = %caller.principal.principal_id,
            policy_snapshot_id = %session.policy_snapshot_id,
            terminal_mode = v1::TerminalMode::try_from(gated.terminal_mode).unwrap_or_default().as_str_name(),
            "gateway.finalize"
        );
        Ok(v1::FinalizeResponse {
            terminal_mode: gated.terminal_mode,
            trace_id: session.trace_id.clone(),
            claim_map: Some(gated),
            response_text: request.response_text,
            run_id,
        })
    }

    /// Decides, gates and records the finalize of an open session in one
    /// ledger write, compare-and-set on the counters the gate read.
    async fn finalize_open(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        answer: Answer<'_>,
    ) -> PecrResult<(v1::ClaimMap, Option<String>)> {
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
                    .append_event(event(session, caller_id, "POLICY_DECISION", payload))
                    .await?;
                return Err(error);
            }
        };
        let payload = events::policy_outcome("finalize", &decision, rid);
        let decision_event = event(session, caller_id, "POLICY_DECISION", payload);
        if !decision.allow {
            self.ledger.append_event(decision_event).await?;
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
        let gated =
            match finalize_gate::gate(answer.claim_map, &usage, self.settings.coverage_threshold) {
                Ok(gated) => gated,
                Err(error) => {
                    // The decision stays on record though the claim map was refused.
                    self.ledger.append_event(decision_event).await?;
                    return Err(error);
                }
            };
        let replay = match answer.run {
            Some(run) => Some(crate::replay::bundle(
                run,
                caller,
                session,
                answer.response_text,
                &gated,
            )?),
            None => None,
        };
        let payload = events::finalize_result(&gated, session, rid);
        let finalize_event = event(session, caller_id, "FINALIZE_RESULT", payload);
        let recorded = self
            .ledger
            .record_finalize(v1::RecordFinalizeRequest {
                session_id: session.session_id.clone(),
                claim_map: Some(gated.clone()),
                finalize_event: Some(finalize_event),
                events: vec![decision_event],
                expected_operator_calls_used: Some(session.operator_calls_used),
                expected_bytes_used: Some(session.bytes_used),
                replay,
            })
            .await?;
        // Nothing more can be written to a finalized session: keep no state.
        self.sessions.forget(&session.session_id).await;
        self.credentials.forget(&session.session_id).await;
        Ok((gated, Some(recorded.run_id).filter(|id| !id.is_empty())))
    }

    /// POST /v1/policies/simulate (spec 20 §2.5): a decision, nothing written.
    pub async fn simulate(
        &self,
        caller: &PrincipalRequest,
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
