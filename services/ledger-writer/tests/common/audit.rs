//! A ledger filled through the service, `verify` run on it as the real
//! binary, and a database superuser's edits of it.

use pecr_proto::v1;
use serde_json::json;

use super::*;

/// Two finalized sessions with stored evidence and a third still open.
pub async fn fill(ledger: &mut Ledger) -> Vec<String> {
    fill_sessions(ledger, &[("s-a", true), ("s-b", true), ("s-c", false)]).await
}

/// Sessions with one stored evidence unit each, finalized or left open;
/// the evidence unit ids in order.
pub async fn fill_sessions(ledger: &mut Ledger, sessions: &[(&str, bool)]) -> Vec<String> {
    let mut evidence = Vec::new();
    for &(session_id, finalize) in sessions {
        let request = with_first_calls(session_request(session_id, "dev"), &["first"]);
        let session = record_session_request(ledger, request).await;
        let unit = text_evidence(&session, &format!("public/{session_id}.txt"), session_id);
        evidence.push(unit.evidence_unit_id.clone());
        let mut call = operator_call(&session, vec![unit.clone()]);
        call.store_content = true;
        let session = ledger
            .client
            .record_operator_call(call)
            .await
            .expect("operator call")
            .into_inner()
            .session
            .expect("session");
        ledger
            .client
            .append_event(v1::AppendEventRequest {
                event: Some(event(
                    &session,
                    "POLICY_DECISION",
                    json!({"decision": "allow"}),
                )),
            })
            .await
            .expect("append event");
        if finalize {
            let claims = vec![claim(
                "the text says so",
                v1::claim::Status::Supported,
                std::slice::from_ref(&unit.evidence_unit_id),
            )];
            ledger
                .client
                .record_finalize(finalize_request(
                    &session,
                    &format!("cm-{session_id}"),
                    claims,
                ))
                .await
                .expect("finalize");
        }
    }
    evidence
}

pub struct Verdict {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Verify exited 1 and its report names `expected`.
pub fn assert_broken(verdict: &Verdict, expected: &str) {
    assert_eq!(
        verdict.code,
        Some(1),
        "{}\n{}",
        verdict.stdout,
        verdict.stderr
    );
    assert!(verdict.stdout.contains(expected), "{}", verdict.stdout);
}

/// Runs the real binary's `verify` against the test's schema.
pub async fn verify(ledger: &Ledger) -> Verdict {
    verify_with(ledger, &[]).await
}

/// [`verify`] with more arguments.
pub async fn verify_with(ledger: &Ledger, args: &[&str]) -> Verdict {
    let output = tokio::process::Command::new(pecr_testkit::binary_path("pecr-ledger-writer"))
        .args(["verify", "--db-url", &ledger.db.url()])
        .args(args)
        .env_remove("PECR_DB_URL")
        .env_remove("PECR_LEDGER_SIGNING_KEY_FILE")
        .output()
        .await
        .expect("run verify");
    Verdict {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// As the database superuser: the append-only triggers off, then `sql`.
pub async fn tamper(ledger: &Ledger, table: &str, sql: &str) {
    ledger
        .db
        .client()
        .batch_execute(&format!("ALTER TABLE {table} DISABLE TRIGGER ALL; {sql}"))
        .await
        .unwrap_or_else(|err| panic!("tamper with {table}: {err}"));
}

pub async fn event_at(ledger: &Ledger, session_id: &str, seq: i64) -> String {
    ledger
        .db
        .client()
        .query_one(
            "SELECT event_id FROM pecr_ledger_events WHERE session_id = $1 AND chain_seq = $2",
            &[&session_id, &seq],
        )
        .await
        .expect("event at seq")
        .get(0)
}

/// As the database superuser: adds a field to one event's payload.
pub async fn forge_payload(ledger: &Ledger, event_id: &str) {
    tamper(
        ledger,
        "pecr_ledger_events",
        &format!(
            "UPDATE pecr_ledger_events SET payload_json = payload_json || '{{\"forged\": true}}' \
             WHERE event_id = '{event_id}'"
        ),
    )
    .await;
}

/// Verify exited 0.
pub fn assert_verified(verdict: &Verdict) {
    assert_eq!(
        verdict.code,
        Some(0),
        "{}\n{}",
        verdict.stdout,
        verdict.stderr
    );
}
