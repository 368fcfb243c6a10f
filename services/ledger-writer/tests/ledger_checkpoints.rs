//! Signed checkpoints through the real service: written on demand and
//! periodically, checked by `verify` with the auditor's public key, by the
//! `VerifyLedger` RPC over a time range, and by `openssl` alone, as an
//! auditor who does not trust the database would.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::audit::*;
use common::*;
use pecr_proto::v1;
use pecr_testkit::TestDatabase;

/// An Ed25519 key pair made the way the RUNBOOK tells operators to.
struct KeyFiles {
    dir: tempfile::TempDir,
    private: PathBuf,
    public: PathBuf,
}

fn openssl(args: &[&str]) -> std::process::Output {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn key_files(name: &str) -> KeyFiles {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pecr-{name}-"))
        .tempdir()
        .expect("key dir");
    let private = dir.path().join("ledger-signing.pem");
    let public = dir.path().join("ledger-signing.pub.pem");
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", path(&private)]);
    openssl(&[
        "pkey",
        "-in",
        path(&private),
        "-pubout",
        "-out",
        path(&public),
    ]);
    KeyFiles {
        dir,
        private,
        public,
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A ledger-writer on a fresh database, signing with `keys`, writing a
/// checkpoint every `interval_secs` (0: on demand only).
async fn signed_ledger_every(keys: &KeyFiles, interval_secs: u32) -> Ledger {
    let db = TestDatabase::create().await;
    let url = db.url();
    start_ledger_with_env(
        db,
        &[
            ("PECR_DB_URL", url),
            (
                "PECR_LEDGER_SIGNING_KEY_FILE",
                path(&keys.private).to_owned(),
            ),
            (
                "PECR_LEDGER_CHECKPOINT_INTERVAL_SECS",
                interval_secs.to_string(),
            ),
        ],
    )
    .await
}

async fn signed_ledger(keys: &KeyFiles) -> Ledger {
    signed_ledger_every(keys, 0).await
}

async fn checkpoint(ledger: &mut Ledger) -> v1::CreateCheckpointResponse {
    ledger
        .auditor
        .create_checkpoint(v1::CreateCheckpointRequest {})
        .await
        .expect("create checkpoint")
        .into_inner()
}

/// Two checkpoints: s-a and s-b, then s-d (s-c stays open).
async fn two_checkpoints(ledger: &mut Ledger) -> [v1::LedgerCheckpoint; 2] {
    fill(ledger).await;
    let first = checkpoint(ledger).await;
    fill_sessions(ledger, &[("s-d", true)]).await;
    let second = checkpoint(ledger).await;
    assert!(first.created && second.created);
    [
        first.checkpoint.expect("first"),
        second.checkpoint.expect("second"),
    ]
}

#[tokio::test]
async fn a_checkpoint_covers_the_sessions_finalized_since_the_last_one_and_is_signed() {
    let keys = key_files("checkpoint");
    let mut ledger = signed_ledger(&keys).await;
    let [first, second] = two_checkpoints(&mut ledger).await;
    assert_eq!((first.checkpoint_seq, first.session_count), (1, 2));
    assert_eq!((second.checkpoint_seq, second.session_count), (2, 1));
    assert_eq!(second.prev_checkpoint_hash, first.checkpoint_hash);
    assert!(first.signed && !first.signature.is_empty());

    // Nothing finalized since: nothing written, the newest returned.
    let again = checkpoint(&mut ledger).await;
    assert!(!again.created);
    assert_eq!(again.checkpoint.expect("newest").checkpoint_seq, 2);

    let verdict = verify_with(&ledger, &["--public-key", path(&keys.public)]).await;
    assert_verified(&verdict);
    assert!(
        verdict
            .stdout
            .contains("2 checkpoints (2 signed, 0 unsigned)"),
        "{}",
        verdict.stdout
    );
    assert!(
        verdict
            .stdout
            .contains(&format!("--public-key {}", path(&keys.public))),
        "{}",
        verdict.stdout
    );
}

#[tokio::test]
async fn an_auditor_verifies_a_checkpoint_with_openssl_and_the_public_key_alone() {
    let keys = key_files("openssl");
    let mut ledger = signed_ledger(&keys).await;
    let [first, _] = two_checkpoints(&mut ledger).await;
    let dir = keys.dir.path();
    let document = dir.join("checkpoint-1.json");
    let signature = dir.join("checkpoint-1.sig");
    std::fs::write(&document, &first.document).expect("document");
    std::fs::write(&signature, hex::decode(&first.signature).expect("hex")).expect("signature");
    let output = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        path(&keys.public),
        "-rawin",
        "-in",
        path(&document),
        "-sigfile",
        path(&signature),
    ]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("Signature Verified Successfully"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // The document hashes to the checkpoint's hash, which the next one links.
    assert_eq!(
        pecr_contracts::sha256_hex(&first.document),
        first.checkpoint_hash
    );
}

#[tokio::test]
async fn a_swapped_signed_checkpoint_is_named_by_the_signature_check() {
    let keys = key_files("swap");
    let mut ledger = signed_ledger(&keys).await;
    two_checkpoints(&mut ledger).await;
    tamper(
        &ledger,
        "pecr_ledger_checkpoints",
        "UPDATE pecr_ledger_checkpoints AS c SET signature = o.signature \
         FROM pecr_ledger_checkpoints AS o WHERE c.checkpoint_seq + o.checkpoint_seq = 3",
    )
    .await;
    let verdict = verify_with(&ledger, &["--public-key", path(&keys.public)]).await;
    assert_broken(
        &verdict,
        "BROKEN pecr_ledger_checkpoints id=1: signature does not verify",
    );
}

#[tokio::test]
async fn a_checkpoint_re_signed_with_another_key_is_named() {
    let keys = key_files("resign");
    let mut ledger = signed_ledger(&keys).await;
    two_checkpoints(&mut ledger).await;
    // The superuser forges checkpoint 2 with a key of their own.
    let forger = key_files("forger");
    let forged_key = {
        let pem = std::fs::read(&forger.private).expect("forger key");
        pecr_ledger_writer::checkpoint::signing::SigningKey::from_pem(&pem).expect("key")
    };
    let row = ledger
        .db
        .client()
        .query_one(
            "SELECT document FROM pecr_ledger_checkpoints WHERE checkpoint_seq = 2",
            &[],
        )
        .await
        .expect("checkpoint 2");
    let mut document =
        pecr_ledger_writer::checkpoint::document::Document::parse(row.get(0)).expect("document");
    document.public_key = Some(forged_key.public_key().to_hex());
    let text = document.text();
    tamper(
        &ledger,
        "pecr_ledger_checkpoints",
        &format!(
            "UPDATE pecr_ledger_checkpoints SET document = '{text}', checkpoint_hash = '{}', \
             signature = '{}', public_key = '{}' WHERE checkpoint_seq = 2",
            pecr_contracts::sha256_hex(&text),
            forged_key.sign(text.as_bytes()),
            forged_key.public_key().to_hex()
        ),
    )
    .await;
    // Trusting what the database records, the forgery holds together…
    let trusting = verify(&ledger).await;
    assert_eq!(trusting.code, Some(0), "{}", trusting.stdout);
    assert!(
        trusting.stdout.contains("give --public-key"),
        "{}",
        trusting.stdout
    );
    // …and the auditor's key names it.
    let verdict = verify_with(&ledger, &["--public-key", path(&keys.public)]).await;
    assert_broken(
        &verdict,
        "BROKEN pecr_ledger_checkpoints id=2: signed by key",
    );
}

#[tokio::test]
async fn without_a_key_checkpoints_are_unsigned_and_say_so() {
    let mut ledger = start_ledger().await;
    fill(&mut ledger).await;
    let written = checkpoint(&mut ledger)
        .await
        .checkpoint
        .expect("checkpoint");
    assert!(!written.signed && written.signature.is_empty() && written.public_key.is_empty());
    assert!(written.document.contains(r#""public_key":null"#));
    let verdict = verify(&ledger).await;
    assert_verified(&verdict);
    assert!(
        verdict
            .stdout
            .contains("1 checkpoints (0 signed, 1 unsigned)")
            && verdict.stdout.contains(
                "1 checkpoints are unsigned: they were written without PECR_LEDGER_SIGNING_KEY_FILE"
            ),
        "{}",
        verdict.stdout
    );
}

#[tokio::test]
async fn checkpoints_are_written_periodically() {
    let keys = key_files("periodic");
    let mut ledger = signed_ledger_every(&keys, 1).await;
    fill(&mut ledger).await;
    pecr_testkit::eventually("a periodic checkpoint", Duration::from_secs(20), || {
        let db = &ledger.db;
        async move { (db.count("pecr_checkpoint_sessions").await == 2).then_some(()) }
    })
    .await;
    let verdict = verify_with(&ledger, &["--public-key", path(&keys.public)]).await;
    assert_verified(&verdict);
}

#[tokio::test]
async fn verify_ledger_checks_a_time_range_and_names_what_is_broken() {
    let keys = key_files("rpc");
    let mut ledger = signed_ledger(&keys).await;
    two_checkpoints(&mut ledger).await;
    let whole = ledger
        .auditor
        .verify_ledger(v1::VerifyLedgerRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(whole.verified, "{whole:?}");
    let counts = whole.counts.expect("counts");
    assert_eq!(
        (
            counts.sessions,
            counts.claim_maps,
            counts.signed_checkpoints
        ),
        (4, 3, 2)
    );
    assert!(
        whole
            .signatures_checked_with
            .contains("PECR_LEDGER_SIGNING_KEY_FILE"),
        "{whole:?}"
    );

    let edited = event_at(&ledger, "s-b", 2).await;
    forge_payload(&ledger, &edited).await;
    let broken = ledger
        .auditor
        .verify_ledger(v1::VerifyLedgerRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(!broken.verified);
    let item = broken.broken.expect("broken item");
    assert_eq!(
        (
            item.table.as_str(),
            item.id.as_str(),
            item.session_id.as_str()
        ),
        ("pecr_ledger_events", edited.as_str(), "s-b")
    );
    assert!(item.what.starts_with("payload hash differs"), "{item:?}");

    // A range that holds only s-d (created after the others) verifies.
    let created_d: f64 = ledger
        .db
        .client()
        .query_one(
            "SELECT extract(epoch FROM created_at)::float8 * 1000 FROM pecr_sessions WHERE session_id = 's-d'",
            &[],
        )
        .await
        .expect("s-d")
        .get(0);
    let later = ledger
        .auditor
        .verify_ledger(v1::VerifyLedgerRequest {
            since_unix_ms: created_d.floor() as u64,
            until_unix_ms: 0,
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(later.verified, "{later:?}");
    assert_eq!(later.counts.expect("counts").sessions, 1);

    let refused = ledger
        .auditor
        .verify_ledger(v1::VerifyLedgerRequest {
            since_unix_ms: 10,
            until_unix_ms: 5,
        })
        .await
        .expect_err("a backwards range");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn only_the_auditor_checkpoints_and_verifies() {
    let mut ledger = start_ledger().await;
    let gateway = ledger
        .client
        .verify_ledger(v1::VerifyLedgerRequest::default())
        .await
        .expect_err("the gateway may not");
    assert_eq!(gateway.code(), tonic::Code::PermissionDenied);
    let controller = ledger
        .controller
        .create_checkpoint(v1::CreateCheckpointRequest {})
        .await
        .expect_err("the controller may not");
    assert_eq!(controller.code(), tonic::Code::PermissionDenied);
    assert!(!checkpoint(&mut ledger).await.created);
}
