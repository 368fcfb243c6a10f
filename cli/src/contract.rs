//! `pecr contract-test`: the operator contract, checked through the public
//! gateway API of a running deployment. Every operator is called the way a
//! controller calls it, and each answer is checked for its shape, its error
//! codes and the evidence recipe (content hash and evidence id recomputed
//! from the unit, policy snapshot and as-of time of the session). Someone
//! implementing an adapter runs it against their deployment; the report
//! names each check and why it failed.

use std::fmt::Write as _;
use std::time::Duration;

use pecr_contracts::evidence::EvidenceUnit;
use pecr_contracts::hashing::is_sha256_hex;
use pecr_errors::PecrError;
use pecr_proto::v1::gateway_service_client::GatewayServiceClient;
use pecr_proto::v1::{
    Budget, CallOperatorRequest, Claim, ClaimMap, CreateSessionRequest, FinalizeRequest,
    TerminalMode, claim,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use crate::args::{ContractArgs, Global};
use crate::client::{Failure, Service, connect_channel};
use crate::render;

const GATEWAY: Service = Service {
    name: "gateway",
    flag: "--gateway",
    env: "PECR_GATEWAY_URL",
};

/// One named check and what it found.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Why it failed; empty when it passed.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct ContractReport {
    pub gateway: String,
    pub passed: usize,
    pub failed: usize,
    pub checks: Vec<Check>,
}

impl ContractReport {
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }
}

/// A session the checks run in.
struct Session {
    id: String,
    token: String,
    policy_snapshot_id: String,
}

struct Tester {
    client: GatewayServiceClient<Channel>,
    metadata: MetadataMap,
    timeout: Duration,
    checks: Vec<Check>,
}

pub async fn run(global: &Global, args: &ContractArgs) -> Result<ContractReport, Failure> {
    let timeout = Duration::from_millis(global.timeout_ms);
    let (channel, metadata) =
        connect_channel(global, GATEWAY, &args.gateway, Instant::now() + timeout).await?;
    let mut tester = Tester {
        client: GatewayServiceClient::new(channel),
        metadata,
        timeout,
        checks: Vec::new(),
    };
    tester.all(args).await;
    let failed = tester.checks.iter().filter(|c| !c.passed).count();
    Ok(ContractReport {
        gateway: args.gateway.clone(),
        passed: tester.checks.len() - failed,
        failed,
        checks: tester.checks,
    })
}

impl Tester {
    fn record(&mut self, name: &str, outcome: Result<(), String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            passed: outcome.is_ok(),
            detail: outcome.err().unwrap_or_default(),
        });
    }

    fn request<T>(&self, message: T, session: Option<&Session>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        if let Some(token) = session.and_then(|s| s.token.parse().ok()) {
            request.metadata_mut().insert("x-pecr-session-token", token);
        }
        request.set_timeout(self.timeout);
        request
    }

    async fn open(&mut self) -> Result<Session, String> {
        let budget = Budget {
            max_operator_calls: 50,
            max_bytes: 4 * 1024 * 1024,
            max_wallclock_ms: 30_000,
            max_recursion_depth: 5,
            max_parallelism: None,
        };
        let request = self.request(
            CreateSessionRequest {
                budget: Some(budget),
                ..Default::default()
            },
            None,
        );
        let response = self
            .client
            .create_session(request)
            .await
            .map_err(|status| format!("CreateSession failed: {}", describe(&status)))?;
        let token = response
            .metadata()
            .get("x-pecr-session-token")
            .and_then(|value| value.to_str().ok())
            .ok_or("CreateSession answered without x-pecr-session-token")?
            .to_owned();
        let session = response.into_inner();
        if session.session_id.is_empty() || session.policy_snapshot_id.is_empty() {
            return Err("CreateSession answered without session_id or policy_snapshot_id".into());
        }
        Ok(Session {
            id: session.session_id,
            token,
            policy_snapshot_id: session.policy_snapshot_id,
        })
    }

    /// Calls `op` and returns its parsed JSON result.
    async fn call(&mut self, session: &Session, op: &str, params: Value) -> Result<Value, String> {
        let request = self.request(
            CallOperatorRequest {
                op_name: op.to_owned(),
                session_id: session.id.clone(),
                params: params.to_string(),
            },
            Some(session),
        );
        let reply = self
            .client
            .call_operator(request)
            .await
            .map_err(|status| format!("{op} failed: {}", describe(&status)))?
            .into_inner();
        if reply.terminal_mode != TerminalMode::Supported as i32 {
            return Err(format!(
                "{op} answered terminal_mode {} (SUPPORTED expected)",
                render::mode(reply.terminal_mode)
            ));
        }
        serde_json::from_str(&reply.result).map_err(|err| format!("{op} result is not JSON: {err}"))
    }

    /// Calls `op` expecting it refused with `code` and a message that
    /// contains `message`.
    async fn refused(
        &mut self,
        session: Option<&Session>,
        op: &str,
        params: Value,
        code: &str,
        message: &str,
    ) -> Result<(), String> {
        let request = self.request(
            CallOperatorRequest {
                op_name: op.to_owned(),
                session_id: session.map_or_else(|| "no-such-session".to_owned(), |s| s.id.clone()),
                params: params.to_string(),
            },
            session,
        );
        match self.client.call_operator(request).await {
            Ok(_) => Err(format!("{op} was accepted; {code} expected")),
            Err(status) => {
                let error = PecrError::from_status(&status)
                    .ok_or_else(|| format!("{op}: status without a PECR error: {status:?}"))?;
                if error.code.as_str() != code || !error.message.contains(message) {
                    return Err(format!(
                        "{op}: expected {code} \"{message}…\", got {} \"{}\"",
                        error.code.as_str(),
                        error.message
                    ));
                }
                Ok(())
            }
        }
    }

    async fn all(&mut self, args: &ContractArgs) {
        let session = self.open().await;
        self.record(
            "session: CreateSession issues an id, a snapshot and a token",
            session.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let Ok(session) = session else {
            return;
        };

        // search: refs that point at what a whole-file fetch_span returns.
        let search = self
            .call(&session, "search", json!({"query": args.search_query}))
            .await;
        let refs = search.and_then(|result| search_refs(&result, &args.object_id));
        let found = refs.clone().map(|_| ());
        self.record("search: {refs:[{evidence_unit_id, source_system, object_id, version_id}]} naming --object-id", found);

        let span = self
            .call(&session, "fetch_span", json!({"object_id": args.object_id}))
            .await;
        let span = span.and_then(|result| checked_unit(&result, &session, "text_span"));
        self.record(
            "fetch_span: one text/plain unit, hashes recomputed",
            span.clone().map(|_| ()),
        );
        if let (Ok(reference), Ok(span)) = (&refs, &span) {
            let same = (reference == &span.evidence_unit_id)
                .then_some(())
                .ok_or_else(|| {
                    format!(
                        "search ref {reference} ≠ fetch_span id {}",
                        span.evidence_unit_id
                    )
                });
            self.record("search: a ref's id is the whole-file fetch_span id", same);
        }

        let versions = self
            .call(
                &session,
                "list_versions",
                json!({"object_id": args.object_id}),
            )
            .await;
        let version = versions.and_then(|result| current_version(&result, &args.object_id));
        self.record(
            "list_versions: {versions:[{version_id, as_of_time, metadata_hash}]}",
            version.clone().map(|_| ()),
        );
        if let Ok(version) = &version {
            let diff = self
                .call(
                    &session,
                    "diff",
                    json!({"object_id": args.object_id, "v1": version, "v2": version}),
                )
                .await
                .and_then(|result| units(&result, &session, "text_span"))
                .and_then(|units| {
                    let chain = units
                        .first()
                        .map(|u| u.transform_chain.clone())
                        .unwrap_or_default();
                    match chain.as_slice() {
                        [step] if step.transform_type == "diff_unified_v1" => Ok(()),
                        _ => Err(
                            "diff unit's transform_chain is not one diff_unified_v1 step".into(),
                        ),
                    }
                });
            self.record(
                "diff: one unit with a diff_unified_v1 transform, hashes recomputed",
                diff,
            );
        }

        let fields: Vec<&str> = args.fields.split(',').map(str::trim).collect();
        let rows = self
            .call(
                &session,
                "fetch_rows",
                json!({"view_id": args.view_id, "fields": fields}),
            )
            .await
            .and_then(|result| units(&result, &session, "db_row"));
        let rows_ok = rows.as_ref().map_err(Clone::clone).and_then(|rows| {
            if rows.is_empty() {
                return Err(
                    "fetch_rows returned no row; pick a --view-id the principal can read".into(),
                );
            }
            rows.iter().try_for_each(|row| only_fields(row, &fields))
        });
        self.record(
            "fetch_rows: db_row units holding only the asked fields, hashes recomputed",
            rows_ok,
        );

        let aggregate = self
            .call(
                &session,
                "aggregate",
                json!({"view_id": args.view_id, "group_by": [args.group_by], "metrics": [{"name": "count", "field": "customer_id"}]}),
            )
            .await
            .and_then(|result| checked_unit(&result, &session, "db_aggregate"))
            .map(|_| ());
        self.record(
            "aggregate: one db_aggregate unit, hashes recomputed",
            aggregate,
        );

        if let Ok(rows) = &rows
            && let Some(first) = rows.first()
        {
            let unit_json = serde_json::to_value(first).unwrap_or(Value::Null);
            let redacted = self
                .call(&session, "redact", json!({"evidence_units": [unit_json]}))
                .await
                .and_then(|result| units(&result, &session, "db_row"))
                .map(|_| ());
            self.record(
                "redact: units of this session come back as valid units",
                redacted,
            );
        }

        let refusals = [
            (
                "fetch_span",
                json!({}),
                "ERR_INVALID_PARAMS",
                "params.object_id is required",
            ),
            (
                "fetch_rows",
                json!({"view_id": "not_a_view", "fields": ["status"]}),
                "ERR_INVALID_PARAMS",
                "view_id not allowlisted",
            ),
            (
                "drop_database",
                json!({}),
                "ERR_INVALID_PARAMS",
                "operator not allowlisted",
            ),
        ];
        for (op, params, code, message) in refusals {
            let outcome = self
                .refused(Some(&session), op, params, code, message)
                .await;
            self.record(
                &format!("errors: {op} refused with {code} \"{message}\""),
                outcome,
            );
        }
        // Session credentials: every wrong one is the same 401.
        let with_token = |id: &str| Session {
            id: id.to_owned(),
            token: "0".repeat(64),
            policy_snapshot_id: String::new(),
        };
        let credentials = [
            (
                "an unknown session",
                Some(with_token("no-such-session")),
                "invalid session credentials",
            ),
            ("a call without a session token", None, "session token"),
            (
                "a wrong session token",
                Some(with_token(&session.id)),
                "invalid session credentials",
            ),
        ];
        for (what, caller, message) in credentials {
            let outcome = self
                .refused(
                    caller.as_ref(),
                    "search",
                    json!({"query": "x"}),
                    "ERR_POLICY_DENIED",
                    message,
                )
                .await;
            self.record(
                &format!("errors: {what} is ERR_POLICY_DENIED (401)"),
                outcome,
            );
        }

        // finalize: a claim citing emitted evidence is supported.
        if let Ok(rows) = &rows
            && let Some(first) = rows.first()
        {
            let cited = self.finalize(&session, Some(&first.evidence_unit_id)).await;
            self.record(
                "finalize: a claim citing session evidence is SUPPORTED",
                cited,
            );
        }
        let uncited = match self.open().await {
            Ok(other) => self.finalize(&other, None).await,
            Err(why) => Err(why),
        };
        self.record(
            "finalize: an answer citing nothing is not SUPPORTED",
            uncited,
        );
    }

    /// Finalizes with one claim, citing `evidence` when given; checks the
    /// gate supports it exactly when it cites evidence.
    async fn finalize(&mut self, session: &Session, evidence: Option<&str>) -> Result<(), String> {
        let claim = Claim {
            claim_id: String::new(),
            claim_text: "The row says what it says.".into(),
            status: claim::Status::Supported as i32,
            evidence_unit_ids: evidence.map(str::to_owned).into_iter().collect(),
        };
        let request = self.request(
            FinalizeRequest {
                session_id: session.id.clone(),
                response_text: claim.claim_text.clone(),
                claim_map: Some(ClaimMap {
                    claim_map_id: format!("contract-test-{}", session.id),
                    terminal_mode: TerminalMode::Supported as i32,
                    claims: vec![claim],
                    coverage_threshold: 0.95,
                    coverage_observed: 0.0,
                    notes: None,
                }),
                run: None,
            },
            Some(session),
        );
        let reply = self
            .client
            .finalize(request)
            .await
            .map_err(|status| format!("Finalize failed: {}", describe(&status)))?
            .into_inner();
        let supported = reply.terminal_mode == TerminalMode::Supported as i32;
        match (evidence.is_some(), supported) {
            (true, true) | (false, false) => Ok(()),
            (true, false) => Err(format!(
                "cited answer gated {}",
                render::mode(reply.terminal_mode)
            )),
            (false, true) => Err("an answer citing nothing was SUPPORTED".into()),
        }
    }
}

fn describe(status: &tonic::Status) -> String {
    match PecrError::from_status(status) {
        Some(error) => format!("{} {}", error.code.as_str(), error.message),
        None => format!("{:?} {}", status.code(), status.message()),
    }
}

/// The id of the ref naming `object_id`, after checking every ref's shape.
fn search_refs(result: &Value, object_id: &str) -> Result<String, String> {
    let refs = result
        .get("refs")
        .and_then(Value::as_array)
        .ok_or("search result has no refs array")?;
    for reference in refs {
        for key in [
            "evidence_unit_id",
            "source_system",
            "object_id",
            "version_id",
        ] {
            if !reference.get(key).is_some_and(Value::is_string) {
                return Err(format!("a search ref lacks {key}: {reference}"));
            }
        }
    }
    refs.iter()
        .find(|r| r["object_id"] == object_id)
        .and_then(|r| r["evidence_unit_id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("no search ref names {object_id}; pick a --search-query that finds it")
        })
}

fn current_version(result: &Value, object_id: &str) -> Result<String, String> {
    let versions = result
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or("list_versions result has no versions")?;
    let metadata_hash = pecr_contracts::hashing::sha256_hex(object_id.as_bytes());
    for version in versions {
        let id = version["version_id"].as_str().unwrap_or_default();
        if !is_sha256_hex(id) || !version["as_of_time"].is_string() {
            return Err(format!(
                "a version lacks a sha256 version_id or as_of_time: {version}"
            ));
        }
        if version["metadata_hash"] != metadata_hash.as_str() {
            return Err(format!("metadata_hash is not sha256(object_id): {version}"));
        }
    }
    versions
        .last()
        .and_then(|v| v["version_id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| "no version id".to_owned())
}

/// An array of units, each checked.
fn units(result: &Value, session: &Session, span_type: &str) -> Result<Vec<EvidenceUnit>, String> {
    result
        .as_array()
        .ok_or("the result is not an array of evidence units")?
        .iter()
        .map(|value| checked_unit(value, session, span_type))
        .collect()
}

/// The evidence recipe: a well-formed unit of this session whose content
/// hash and id are what the unit's own fields give.
fn checked_unit(value: &Value, session: &Session, span_type: &str) -> Result<EvidenceUnit, String> {
    let unit: EvidenceUnit = serde_json::from_value(value.clone())
        .map_err(|err| format!("not an EvidenceUnit ({err}): {value}"))?;
    if !is_sha256_hex(&unit.evidence_unit_id) {
        return Err(format!(
            "evidence_unit_id is not sha256 hex: {}",
            unit.evidence_unit_id
        ));
    }
    unit.verify()
        .map_err(|err| format!("unit {}: {err}", unit.evidence_unit_id))?;
    if unit.policy_snapshot_id != session.policy_snapshot_id {
        return Err(format!(
            "unit {} has policy_snapshot_id {} (the session's is {})",
            unit.evidence_unit_id, unit.policy_snapshot_id, session.policy_snapshot_id
        ));
    }
    if unit.span_or_row_spec["type"] != span_type {
        return Err(format!(
            "span type {} ({span_type} expected)",
            unit.span_or_row_spec["type"]
        ));
    }
    Ok(unit)
}

fn only_fields(row: &EvidenceUnit, fields: &[&str]) -> Result<(), String> {
    let content = row
        .content
        .as_ref()
        .and_then(Value::as_object)
        .ok_or("a row's content is not an object")?;
    match content.keys().find(|key| !fields.contains(&key.as_str())) {
        Some(extra) => Err(format!("a row holds {extra}, which was not asked for")),
        None => Ok(()),
    }
}

/// `contract-test against URL: P passed, F failed`, then each check.
pub fn render(report: &ContractReport) -> String {
    let mut out = format!(
        "contract-test against {}: {} passed, {} failed\n",
        report.gateway, report.passed, report.failed
    );
    for check in &report.checks {
        let mark = if check.passed { "✓" } else { "✗" };
        let _ = writeln!(out, "  {mark} {}", check.name);
        if !check.passed {
            let _ = writeln!(out, "      {}", check.detail);
        }
    }
    out
}
