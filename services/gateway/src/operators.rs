//! Operator calls (spec 20 §2.6), one or a batch of one session at a time.
//! A single `CallOperator` is a batch of one. A batch passes named stages:
//!
//! 1. **admit** (`run_calls`): the caller may use the session; its lock is held;
//! 2. **budget** (`check_budget`), in order: each call against the calls and
//!    bytes budget, counting the calls admitted before it;
//! 3. **authorize** (`authorize`), in order: the policy decision;
//! 4. **execute** (`execute`): the admitted calls run concurrently;
//! 5. **account** (`settle`), in order: each result against the bytes budget,
//!    turned into ledger events;
//! 6. **record** (`run_batch`): every event of the batch in one ledger write,
//!    compare-and-set on the counters the batch was decided on; no result
//!    leaves before that write is committed.
//!
//! A refused call is one value, `Judged::Refused` with its events and error,
//! whichever stage refused it; `settle` records it like any other outcome.

use std::collections::HashSet;

use futures_util::future::try_join_all;
use pecr_adapters::{Operator, PolicyInputFields, Redaction, SessionScope};
use pecr_contracts::evidence::EvidenceUnit;
use pecr_contracts::hash_canonical_json;
use pecr_errors::{ErrorCode, PecrError, PecrResult};
use pecr_policy::Decision;
use pecr_proto::v1;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::core::{
    Gateway, OperatorReply, PrincipalRequest, STALE_RETRIES, json_len, policy_denied,
};
use crate::events::{self, CallOutcome, event};
use crate::session_state::is_stale;

/// Policy decisions asked together when one request needs many (search's
/// candidates, the MCP tool list): enough to hide a remote engine's round
/// trips, few enough not to flood it.
const POLICY_PROBES_IN_FLIGHT: usize = 8;

fn budget_exceeded() -> PecrError {
    PecrError::new(ErrorCode::BudgetExceeded, "budget exceeded")
}

/// One requested call, as received.
pub struct RequestedCall {
    pub op_name: String,
    pub params: String,
}

impl From<v1::OperatorCall> for RequestedCall {
    fn from(call: v1::OperatorCall) -> Self {
        Self {
            op_name: call.op_name,
            params: call.params,
        }
    }
}

/// The record the ledger makes of a new session when it keeps the
/// requested trace: zero counters, the budget as the ledger normalises it.
fn expected_record(request: &v1::RecordSessionRequest) -> v1::SessionRecord {
    let snapshot = request.policy_snapshot.clone().unwrap_or_default();
    v1::SessionRecord {
        session_id: request.session_id.clone(),
        trace_id: request.trace_id.clone(),
        principal_id: snapshot.principal_id,
        tenant_id: snapshot.tenant_id,
        policy_snapshot_id: request.policy_snapshot_id.clone(),
        policy_snapshot_hash: snapshot.policy_snapshot_hash,
        as_of_time: snapshot.as_of_time,
        budget: request
            .budget
            .as_ref()
            .map(|budget| v1::Budget::from(&pecr_contracts::Budget::from(budget))),
        session_token_hash: request.session_token_hash.clone(),
        session_token_expires_at_epoch_ms: request.session_token_expires_at_epoch_ms,
        operator_calls_used: 0,
        bytes_used: 0,
        evidence_unit_ids: Vec::new(),
        finalized: false,
        terminal_mode: v1::TerminalMode::Unspecified as i32,
        principal_attrs_hash: snapshot.principal_attrs_hash,
    }
}

/// A call whose params parsed.
struct Call {
    op_name: String,
    params: Value,
    params_hash: String,
    params_bytes: u64,
}

/// What `judge` made of a call.
enum Judged {
    /// Refused before running: its events and its error.
    Refused(Vec<v1::NewLedgerEvent>, PecrError),
    /// Allowed to run.
    Admitted(Box<Admission>),
}

/// An allowed call: what runs it and what its record starts with.
struct Admission {
    operator: Operator,
    decision: Decision,
    decision_event: v1::NewLedgerEvent,
    redaction: Option<Redaction>,
}

/// An operator's output before budgets.
struct Output {
    result: Value,
    /// Compact JSON length, what the bytes budget counts.
    result_bytes: u64,
    evidence: Vec<EvidenceUnit>,
    cache_hit: bool,
}

/// Everything one batch writes, and the outcomes it answers with.
struct Settled {
    events: Vec<v1::NewLedgerEvent>,
    units: Vec<v1::EvidenceUnit>,
    operator_calls_used: u64,
    bytes_used: u64,
    outcomes: Vec<PecrResult<OperatorReply>>,
}

impl Gateway {
    /// POST /v1/operators/{op_name}, with its params already checked.
    pub async fn call_operator(
        &self,
        caller: &PrincipalRequest,
        token: &str,
        session_id: &str,
        op_name: &str,
        params: Value,
    ) -> PecrResult<OperatorReply> {
        let call = Call::new(op_name, params);
        self.run_calls(caller, token, session_id, vec![Ok(call)])
            .await?
            .pop()
            .unwrap_or_else(|| Err(PecrError::internal("a call without an outcome")))
    }

    /// POST /v1/operator-batches: one outcome per call, in order. The batch
    /// as a whole fails only when the session cannot be used or the ledger
    /// cannot record it; then no call's result is returned.
    pub async fn call_operators(
        &self,
        caller: &PrincipalRequest,
        token: &str,
        session_id: &str,
        calls: Vec<RequestedCall>,
    ) -> PecrResult<Vec<PecrResult<OperatorReply>>> {
        let parsed = calls.into_iter().map(parse_call).collect();
        self.run_calls(caller, token, session_id, parsed).await
    }

    /// Admits the caller, takes the session's lock and runs the calls,
    /// deciding again when another replica changed the session meanwhile.
    async fn run_calls(
        &self,
        caller: &PrincipalRequest,
        token: &str,
        session_id: &str,
        parsed: Vec<PecrResult<Call>>,
    ) -> PecrResult<Vec<PecrResult<OperatorReply>>> {
        if session_id.trim().is_empty() {
            return Err(PecrError::invalid_params("session_id is required"));
        }
        let action = match parsed.as_slice() {
            [Ok(call)] => Operator::parse(&call.op_name).map_or("unknown_operator", Operator::name),
            _ => "operator_batch",
        };
        self.admit(caller, session_id, token, action).await?;
        let _guard = self
            .locks
            .acquire(session_id, self.settings.lock_timeout)
            .await?;
        let mut attempt = 0;
        loop {
            let session = self.sessions.open(&self.ledger, session_id).await?;
            match self.run_batch(caller, &session, &parsed).await {
                Err(error) if is_stale(&error) && attempt < STALE_RETRIES => {
                    attempt += 1;
                    self.sessions.forget(session_id).await;
                }
                other => return other,
            }
        }
    }

    /// Records a new session with its first calls (if any): they are
    /// decided and run against the session as the ledger will record it, and
    /// recorded with it in one write. When the ledger records the session
    /// under another trace (the requested one is another principal's), it
    /// records no calls, and they are decided and run again in the session
    /// as recorded.
    pub(crate) async fn open_session(
        &self,
        caller: &PrincipalRequest,
        mut request: v1::RecordSessionRequest,
        calls: Vec<RequestedCall>,
    ) -> PecrResult<(v1::SessionRecord, Vec<PecrResult<OperatorReply>>)> {
        let expected = expected_record(&request);
        let parsed: Vec<PecrResult<Call>> = calls.into_iter().map(parse_call).collect();
        let mut settled = self.prepare_batch(caller, &expected, &parsed).await;
        let sent_calls = !settled.events.is_empty();
        if sent_calls {
            request.first_calls = Some(self.operator_call_request(&expected, &mut settled));
        }
        let (record, first_calls) = self.ledger.record_session(request).await?;
        // The session's next call then needs no ledger read.
        match first_calls {
            Some(recorded) => {
                let state = recorded.session.unwrap_or_else(|| record.clone());
                self.sessions.remember(state).await;
                self.log_batch(caller, &expected, parsed.len(), &settled);
                Ok((record, settled.outcomes))
            }
            None => {
                self.sessions.remember(record.clone()).await;
                let outcomes = if sent_calls {
                    self.run_batch(caller, &record, &parsed).await?
                } else {
                    settled.outcomes
                };
                Ok((record, outcomes))
            }
        }
    }

    /// Decides, runs and records one batch against `session`.
    async fn run_batch(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        calls: &[PecrResult<Call>],
    ) -> PecrResult<Vec<PecrResult<OperatorReply>>> {
        let mut settled = self.prepare_batch(caller, session, calls).await;
        if !settled.events.is_empty() {
            let response = self
                .ledger
                .record_operator_call(self.operator_call_request(session, &mut settled))
                .await?;
            if let Some(state) = response.session {
                self.sessions.remember(state).await;
            }
        }
        self.log_batch(caller, session, calls.len(), &settled);
        Ok(settled.outcomes)
    }

    /// The write that records a settled batch (its events and units move
    /// into it), compare-and-set on the counters it was decided on.
    fn operator_call_request(
        &self,
        session: &v1::SessionRecord,
        settled: &mut Settled,
    ) -> v1::RecordOperatorCallRequest {
        v1::RecordOperatorCallRequest {
            session_id: session.session_id.clone(),
            trace_id: session.trace_id.clone(),
            evidence_units: std::mem::take(&mut settled.units),
            events: std::mem::take(&mut settled.events),
            expected_operator_calls_used: session.operator_calls_used,
            expected_bytes_used: session.bytes_used,
            operator_calls_used: settled.operator_calls_used,
            bytes_used: settled.bytes_used,
            store_content: self.settings.store_evidence_content,
        }
    }

    /// One line per batch, not per call: logs are a real share of a run's CPU.
    fn log_batch(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        calls: usize,
        settled: &Settled,
    ) {
        tracing::info!(
            trace_id = %session.trace_id,
            request_id = %caller.request_id,
            session_id = %session.session_id,
            principal_id = %caller.principal.principal_id,
            policy_snapshot_id = %session.policy_snapshot_id,
            calls,
            operator_calls_used = settled.operator_calls_used,
            bytes_used = settled.bytes_used,
            "gateway.call_operator"
        );
    }

    /// Judges, runs and settles a batch; nothing is written.
    async fn prepare_batch(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        calls: &[PecrResult<Call>],
    ) -> Settled {
        let budget = session.budget.unwrap_or_default();
        // Calls admitted so far reserve their budget, so later calls of the
        // batch are judged as if the earlier ones had run.
        let mut reserved_calls = session.operator_calls_used;
        let mut judged = Vec::with_capacity(calls.len());
        for call in calls {
            let verdict = match call {
                Ok(call) => {
                    let verdict = self
                        .judge(caller, session, &budget, reserved_calls, call)
                        .await;
                    if matches!(verdict, Judged::Admitted(_)) {
                        reserved_calls += 1;
                    }
                    Some(verdict)
                }
                Err(_) => None,
            };
            judged.push(verdict);
        }

        let scope = SessionScope {
            tenant_id: session.tenant_id.clone(),
            principal_id: session.principal_id.clone(),
            as_of_time: session.as_of_time.clone(),
            policy_snapshot_id: session.policy_snapshot_id.clone(),
            policy_snapshot_hash: session.policy_snapshot_hash.clone(),
            emitted_evidence_ids: session.evidence_unit_ids.iter().cloned().collect(),
        };
        let scope = &scope;
        let runs = calls.iter().zip(&judged).map(|(call, verdict)| async move {
            match (call, verdict) {
                (Ok(call), Some(Judged::Admitted(admission))) => Some(
                    self.execute(
                        caller,
                        session,
                        scope,
                        call,
                        admission.operator,
                        admission.redaction.as_ref(),
                    )
                    .await,
                ),
                _ => None,
            }
        });
        let outputs = futures_util::future::join_all(runs).await;

        self.settle(caller, session, &budget, calls, judged, outputs)
    }

    /// Budget, then policy, for one call before it runs.
    async fn judge(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        budget: &v1::Budget,
        reserved_calls: u64,
        call: &Call,
    ) -> Judged {
        match self.check_budget(caller, session, budget, reserved_calls, call) {
            Some(refused) => refused,
            None => self.authorize(caller, session, call).await,
        }
    }

    /// The calls and bytes budget; a refusal when the call does not fit.
    fn check_budget(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        budget: &v1::Budget,
        reserved_calls: u64,
        call: &Call,
    ) -> Option<Judged> {
        let op_name = call.op_name.as_str();
        if reserved_calls >= u64::from(budget.max_operator_calls) {
            self.metrics.budget_violation();
            let payload = events::calls_budget_violation(
                op_name,
                reserved_calls,
                u64::from(budget.max_operator_calls),
                &caller.request_id,
            );
            let caller_id = caller.principal.principal_id.as_str();
            let violation = event(session, caller_id, "BUDGET_VIOLATION", payload);
            return Some(Judged::Refused(vec![violation], budget_exceeded()));
        }
        // Checked against the bytes known so far; `settle` checks again
        // once the results of earlier calls are known.
        if budget.max_bytes > 0
            && session.bytes_used.saturating_add(call.params_bytes) > budget.max_bytes
        {
            self.metrics.budget_violation();
            return Some(Judged::Refused(
                vec![bytes_violation(
                    session,
                    caller,
                    op_name,
                    session.bytes_used,
                    call.params_bytes,
                    budget.max_bytes,
                )],
                budget_exceeded(),
            ));
        }
        None
    }

    /// The policy decision for one call: admitted with its decision and
    /// redaction, or refused with the events that say why.
    async fn authorize(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        call: &Call,
    ) -> Judged {
        let caller_id = caller.principal.principal_id.as_str();
        let rid = caller.request_id.as_str();
        let op_name = call.op_name.as_str();
        let refuse = |events, error| Judged::Refused(events, error);
        let Some(operator) = Operator::parse(op_name) else {
            let decision = events::policy_decision(op_name, false, "operator_not_allowlisted", rid);
            let denied =
                events::operator_denied(op_name, &call.params_hash, call.params_bytes, rid);
            return refuse(
                vec![
                    event(session, caller_id, "POLICY_DECISION", decision),
                    event(session, caller_id, "OPERATOR_CALL", denied),
                ],
                PecrError::invalid_params("operator not allowlisted"),
            );
        };

        let fields = pecr_adapters::policy_input_fields(&call.params);
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
                session,
                op_name,
                &call.params_hash,
                call.params_bytes,
                &fields,
            )
            .await
        {
            Ok(decision) => decision,
            Err(error) => {
                let payload = events::policy_decision(op_name, false, "policy_engine_error", rid);
                return refuse(
                    vec![event(session, caller_id, "POLICY_DECISION", payload)],
                    error,
                );
            }
        };
        let decision_event = event(
            session,
            caller_id,
            "POLICY_DECISION",
            events::policy_outcome(op_name, &decision, rid),
        );
        if !decision.allow {
            let denied = event(
                session,
                caller_id,
                "OPERATOR_CALL",
                events::operator_denied(op_name, &call.params_hash, call.params_bytes, rid),
            );
            return refuse(vec![decision_event, denied], policy_denied());
        }
        match pecr_adapters::parse_redaction(decision.redaction.as_ref()) {
            Ok(redaction) => Judged::Admitted(Box::new(Admission {
                operator,
                decision,
                decision_event,
                redaction,
            })),
            Err(error) => refuse(vec![decision_event], error),
        }
    }

    async fn execute(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        scope: &SessionScope,
        call: &Call,
        operator: Operator,
        redaction: Option<&Redaction>,
    ) -> PecrResult<Output> {
        // Sizes only: params and results may carry canary or injected text.
        let name = pecr_server::telemetry::operator_span_name(&call.op_name);
        let span = tracing::info_span!(
            "operator",
            otel.name = name,
            operator_name = name.trim_start_matches("operator."),
            params_bytes = call.params_bytes,
            result_bytes = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let output = async {
            let (result, evidence, cache_hit) = if operator == Operator::Search {
                self.search(caller, session, scope, &call.params, &call.params_hash)
                    .await?
            } else {
                let output = self
                    .adapters
                    .run(operator, &call.params, scope, redaction)
                    .await?;
                (output.result, output.evidence, false)
            };
            Ok(Output {
                result_bytes: json_len(&result),
                result,
                evidence,
                cache_hit,
            })
        }
        .instrument(span.clone())
        .await;
        match &output {
            Ok(output) => {
                span.record("result_bytes", output.result_bytes);
                span.record("outcome", "ok");
            }
            Err(_) => {
                span.record("outcome", "error");
            }
        }
        output
    }

    /// In order: spends the budget of each call that ran, and builds the
    /// events of every call.
    fn settle(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        budget: &v1::Budget,
        calls: &[PecrResult<Call>],
        judged: Vec<Option<Judged>>,
        outputs: Vec<Option<PecrResult<Output>>>,
    ) -> Settled {
        let caller_id = caller.principal.principal_id.as_str();
        let rid = caller.request_id.as_str();
        let mut settled = Settled {
            events: Vec::new(),
            units: Vec::new(),
            operator_calls_used: session.operator_calls_used,
            bytes_used: session.bytes_used,
            outcomes: Vec::with_capacity(calls.len()),
        };
        for ((call, verdict), output) in calls.iter().zip(judged).zip(outputs) {
            let (call, verdict, output) = match (call, verdict, output) {
                (Err(error), _, _) => {
                    settled.outcomes.push(Err(error.clone()));
                    continue;
                }
                (Ok(_), Some(Judged::Refused(events, error)), _) => {
                    settled.events.extend(events);
                    settled.outcomes.push(Err(error));
                    continue;
                }
                (Ok(call), Some(Judged::Admitted(admission)), Some(output)) => {
                    (call, admission, output)
                }
                _ => {
                    settled
                        .outcomes
                        .push(Err(PecrError::internal("a call without an outcome")));
                    continue;
                }
            };
            let Admission {
                decision,
                decision_event,
                ..
            } = *verdict;
            let op_name = call.op_name.as_str();
            let Output {
                result,
                result_bytes,
                evidence,
                cache_hit,
            } = match output {
                Ok(output) => output,
                Err(error) => {
                    // The decision stays on record; a failed read costs no budget.
                    settled.events.push(decision_event);
                    settled.outcomes.push(Err(error));
                    continue;
                }
            };
            // Earlier calls' results may have used the bytes this one needs.
            if budget.max_bytes > 0
                && settled.bytes_used.saturating_add(call.params_bytes) > budget.max_bytes
            {
                self.metrics.budget_violation();
                settled.events.push(bytes_violation(
                    session,
                    caller,
                    op_name,
                    settled.bytes_used,
                    call.params_bytes,
                    budget.max_bytes,
                ));
                settled.outcomes.push(Err(budget_exceeded()));
                continue;
            }
            let bytes_used = settled
                .bytes_used
                .saturating_add(call.params_bytes)
                .saturating_add(result_bytes);
            // A result that would overrun the bytes budget is never returned.
            if budget.max_bytes > 0 && bytes_used > budget.max_bytes {
                self.metrics.budget_violation();
                settled.events.push(decision_event);
                settled.events.push(bytes_violation(
                    session,
                    caller,
                    op_name,
                    settled.bytes_used,
                    call.params_bytes + result_bytes,
                    budget.max_bytes,
                ));
                settled.outcomes.push(Err(budget_exceeded()));
                continue;
            }
            settled.operator_calls_used += 1;
            settled.bytes_used = bytes_used;
            let units: Vec<v1::EvidenceUnit> =
                evidence.iter().map(v1::EvidenceUnit::from).collect();
            settled.events.push(decision_event);
            settled.events.extend(units.iter().map(|unit| {
                event(
                    session,
                    caller_id,
                    "EVIDENCE_EMITTED",
                    events::evidence_emitted(unit, op_name, rid),
                )
            }));
            settled.events.push(event(
                session,
                caller_id,
                "OPERATOR_CALL",
                events::operator_success(&CallOutcome {
                    op_name,
                    params_hash: &call.params_hash,
                    cache_hit,
                    params_bytes: call.params_bytes,
                    result_bytes,
                    operator_calls_used: settled.operator_calls_used,
                    bytes_used,
                    request_id: rid,
                }),
            ));
            settled.units.extend(units);
            settled
                .outcomes
                .push(Ok(OperatorReply { result, decision }));
        }
        settled
    }

    /// `search`: every document holding a query term is judged by policy
    /// first (no ref to an object the caller may not read, decision 1), and
    /// only the readable ones are ranked, so neither the refs, their order
    /// nor the limit depend on a document the caller may not read; then the
    /// result cache.
    async fn search(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        scope: &SessionScope,
        params: &Value,
        params_hash: &str,
    ) -> PecrResult<(Value, Vec<EvidenceUnit>, bool)> {
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
        let candidates = self.adapters.search_candidates(params).await?;
        let probes: Vec<Value> = candidates
            .object_ids()
            .map(|object_id| json!({ "object_id": object_id }))
            .collect();
        let mut readable = HashSet::new();
        for chunk in probes.chunks(POLICY_PROBES_IN_FLIGHT) {
            let verdicts =
                try_join_all(chunk.iter().map(|params| {
                    self.allows(caller, session, Operator::FetchSpan, params.clone())
                }))
                .await?;
            for (params, allowed) in chunk.iter().zip(verdicts) {
                if let (true, Some(object_id)) = (allowed, params["object_id"].as_str()) {
                    readable.insert(object_id.to_owned());
                }
            }
        }
        let result = candidates.rank(scope, |object_id| readable.contains(object_id));
        self.search_cache.insert(cache_key, result.clone()).await;
        Ok((result, Vec::new(), false))
    }

    /// Would policy let the caller call `operator` with `params`? Asked
    /// exactly as the call itself would ask.
    async fn allows(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
        operator: Operator,
        params: Value,
    ) -> PecrResult<bool> {
        let call = Call::new(operator.name(), params);
        let fields = pecr_adapters::policy_input_fields(&call.params);
        let decision = self
            .decide_operator(
                caller,
                session,
                operator.name(),
                &call.params_hash,
                call.params_bytes,
                &fields,
            )
            .await?;
        Ok(decision.allow)
    }

    /// The `operator_call` decision (spec 20 §4.1); cached per snapshot, operator and params.
    async fn decide_operator(
        &self,
        caller: &PrincipalRequest,
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
}

impl Gateway {
    /// The operators the policy lets this caller call on at least one
    /// thing the gateway serves now: some corpus file for the file
    /// operators, some catalogue view for the row operators, nothing in
    /// particular for the others. Asked exactly as a call of the session
    /// would ask; each real call is still decided on its own.
    pub(crate) async fn usable_operators(
        &self,
        caller: &PrincipalRequest,
        session: &v1::SessionRecord,
    ) -> PecrResult<Vec<Operator>> {
        let objects = self.adapters.object_ids().await?;
        let mut usable = Vec::new();
        for operator in Operator::ALL {
            let candidates: Vec<Value> = match operator {
                Operator::ListVersions | Operator::FetchSpan | Operator::Diff => objects
                    .iter()
                    .map(|object_id| json!({ "object_id": object_id }))
                    .collect(),
                Operator::FetchRows | Operator::Aggregate => pecr_adapters::CATALOGUE
                    .iter()
                    .map(|view| json!({ "view_id": view.view_id }))
                    .collect(),
                Operator::Search | Operator::Redact => vec![json!({})],
            };
            // The first chunk with an allowed candidate settles it.
            for chunk in candidates.chunks(POLICY_PROBES_IN_FLIGHT) {
                let verdicts = try_join_all(
                    chunk
                        .iter()
                        .map(|params| self.allows(caller, session, operator, params.clone())),
                )
                .await?;
                if verdicts.contains(&true) {
                    usable.push(operator);
                    break;
                }
            }
        }
        Ok(usable)
    }
}

/// A call of a batch whose params are valid; a bad call fails alone.
fn parse_call(call: RequestedCall) -> PecrResult<Call> {
    let params = crate::validate::batch_call(&call.op_name, &call.params)?;
    Ok(Call::new(&call.op_name, params))
}

impl Call {
    fn new(op_name: &str, params: Value) -> Self {
        Self {
            op_name: op_name.trim().to_owned(),
            params_hash: hash_canonical_json(&params),
            params_bytes: json_len(&params),
            params,
        }
    }
}

fn bytes_violation(
    session: &v1::SessionRecord,
    caller: &PrincipalRequest,
    op_name: &str,
    used: u64,
    params_bytes: u64,
    max_bytes: u64,
) -> v1::NewLedgerEvent {
    let payload =
        events::bytes_budget_violation(op_name, used, params_bytes, max_bytes, &caller.request_id);
    event(
        session,
        &caller.principal.principal_id,
        "BUDGET_VIOLATION",
        payload,
    )
}
