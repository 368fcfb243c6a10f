//! `pecr-ledger-writer verify` over a ledger written through the service:
//! an untouched ledger verifies; an event, a chain or an evidence unit
//! edited by a database superuser (triggers disabled) is named.

mod common;

use common::audit::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn an_untouched_ledger_verifies_with_a_summary() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    let events = ledger.db.count("pecr_ledger_events").await;
    let units = ledger.db.count("pecr_evidence_units").await;
    let verdict = verify(&ledger).await;
    // Shown with --nocapture: the rate figure of perf/README.md.
    println!("{}", verdict.stdout);
    assert_verified(&verdict);
    assert!(
        verdict.stdout.contains(&format!(
            "verified: {events} events ({events} chained, 0 unchained) in 3 sessions, {units} evidence units, 2 claim maps"
        )),
        "{}",
        verdict.stdout
    );
    assert!(
        verdict.stderr.contains("pecr_ledger_events: "),
        "{}",
        verdict.stderr
    );
}

#[tokio::test]
async fn rows_without_a_chain_verify_by_their_payload_hash_and_count_as_unchained() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    let payload = json!({"written": "before the chain"});
    ledger
        .db
        .client()
        .execute(
            "INSERT INTO pecr_ledger_events (event_id, trace_id, session_id, event_type, principal_id, \
             policy_snapshot_id, payload_json, payload_hash) \
             VALUES ('00-legacy', 'trace-s-a', 's-a', 'POLICY_DECISION', 'dev', 'ps-s-a', $1::text::jsonb, $2)",
            &[&payload.to_string(), &pecr_contracts::hash_canonical_json(&payload)],
        )
        .await
        .expect("legacy event");
    let verdict = verify(&ledger).await;
    assert_verified(&verdict);
    assert!(
        verdict.stdout.contains(", 1 unchained)"),
        "{}",
        verdict.stdout
    );
}

#[tokio::test]
async fn an_edited_event_payload_is_named() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    let edited = event_at(&ledger, "s-b", 2).await;
    forge_payload(&ledger, &edited).await;
    let verdict = verify(&ledger).await;
    assert_broken(
        &verdict,
        &format!("BROKEN pecr_ledger_events id={edited} session=s-b: payload hash differs"),
    );
}

#[tokio::test]
async fn an_event_deleted_from_the_middle_of_a_chain_is_named() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    let deleted = event_at(&ledger, "s-a", 2).await;
    let next = event_at(&ledger, "s-a", 3).await;
    tamper(
        &ledger,
        "pecr_ledger_events",
        &format!("DELETE FROM pecr_ledger_events WHERE event_id = '{deleted}'"),
    )
    .await;
    let verdict = verify(&ledger).await;
    assert_broken(
        &verdict,
        &format!("BROKEN pecr_ledger_events id={next} session=s-a: chain_seq 3 follows seq 1"),
    );
    assert!(
        verdict
            .stdout
            .contains("expected seq 2; an event is missing"),
        "{}",
        verdict.stdout
    );
}

#[tokio::test]
async fn an_event_with_a_rewritten_payload_hash_breaks_its_chain_link() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    let edited = event_at(&ledger, "s-c", 1).await;
    let payload = json!({"forged": true});
    tamper(
        &ledger,
        "pecr_ledger_events",
        &format!(
            "UPDATE pecr_ledger_events SET payload_json = '{payload}', payload_hash = '{}' \
             WHERE event_id = '{edited}'",
            pecr_contracts::hash_canonical_json(&payload)
        ),
    )
    .await;
    let verdict = verify(&ledger).await;
    assert_broken(
        &verdict,
        &format!("BROKEN pecr_ledger_events id={edited} session=s-c: chain hash differs"),
    );
}

#[tokio::test]
async fn an_edited_evidence_unit_content_is_named() {
    let mut ledger = start_ledger().await;
    let evidence = fill(&mut ledger).await;
    let edited = &evidence[1];
    tamper(
        &ledger,
        "pecr_evidence_units",
        &format!(
            "UPDATE pecr_evidence_units SET payload_json = to_jsonb('forged'::text) \
             WHERE evidence_unit_id = '{edited}'"
        ),
    )
    .await;
    let verdict = verify(&ledger).await;
    assert_broken(
        &verdict,
        &format!("BROKEN pecr_evidence_units id={edited} session=s-b: content hash differs"),
    );
}

#[tokio::test]
async fn a_forged_seal_is_named() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    tamper(
        &ledger,
        "pecr_claim_maps",
        &format!(
            "UPDATE pecr_claim_maps SET sealed_chain_head = '{}' WHERE claim_map_id = 'cm-s-a'",
            "0".repeat(64)
        ),
    )
    .await;
    let verdict = verify(&ledger).await;
    assert_eq!(
        verdict.code,
        Some(1),
        "{}\n{}",
        verdict.stdout,
        verdict.stderr
    );
    assert!(
        verdict
            .stdout
            .contains("BROKEN pecr_claim_maps id=cm-s-a session=s-a: sealed chain head"),
        "{}",
        verdict.stdout
    );
}

/// Runs `scripts/ledger-backup-drill.sh` on the test's schema.
async fn backup_drill(ledger: &Ledger) -> Verdict {
    let script = pecr_testkit::workspace_root().join("scripts/ledger-backup-drill.sh");
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .args(["--db-url", &ledger.db.url()])
        .env(
            "PECR_LEDGER_WRITER_BIN",
            pecr_testkit::binary_path("pecr-ledger-writer"),
        )
        .env_remove("PECR_DB_URL")
        .output()
        .await
        .expect("run the backup drill");
    Verdict {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_backup_drill_restores_a_dump_that_verifies_and_catches_an_edit() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    let events = ledger.db.count("pecr_ledger_events").await;
    let drill = backup_drill(&ledger).await;
    assert_eq!(drill.code, Some(0), "{}\n{}", drill.stdout, drill.stderr);
    assert!(
        drill
            .stdout
            .contains(&format!("verified: {events} events ({events} chained")),
        "{}",
        drill.stdout
    );
    assert!(
        drill.stdout.contains("backup drill: passed"),
        "{}",
        drill.stdout
    );

    // An edit made before the backup survives the dump and is named in the copy.
    let edited = event_at(&ledger, "s-a", 1).await;
    forge_payload(&ledger, &edited).await;
    let drill = backup_drill(&ledger).await;
    assert_eq!(drill.code, Some(1), "{}\n{}", drill.stdout, drill.stderr);
    assert!(
        drill.stdout.contains(&format!(
            "BROKEN pecr_ledger_events id={edited} session=s-a"
        )),
        "{}",
        drill.stdout
    );
    assert!(
        drill.stdout.contains("backup drill: FAILED"),
        "{}",
        drill.stdout
    );
}
