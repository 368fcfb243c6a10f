//! Isolation between callers of the gateway, each test reproducing an
//! attack on a running mesh: predictable session tokens, links that lead
//! `search` into restricted files, and foreign callers contending for a
//! session they do not own. Real binaries, real PostgreSQL, real gRPC.

mod common;

use std::time::Duration;

use common::*;
use pecr_proto::v1;
use serde_json::{Value, json};
use tonic::Code;

const RESTRICTED_CANARY: &str = "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f";

/// The ULID `steps` after `id`: what a token drawn from the ids' monotonic
/// generator would be.
fn ulid_after(id: &str, steps: u128) -> String {
    let value = ulid::Ulid::from_string(id).expect("ulid").0;
    ulid::Ulid(value.wrapping_add(steps)).to_string()
}

#[tokio::test]
async fn session_tokens_cannot_be_derived_from_anything_a_caller_sees() {
    let mut mesh = Mesh::start(Policy::Test).await;
    let mut tokens = Vec::new();
    let mut forged = mesh.session("dev").await;
    for _ in 0..5 {
        let session = mesh.session("dev").await;
        assert_eq!(session.token.len(), 64, "{}", session.token);
        assert!(session.token.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut guesses = vec![
            session.session_id.clone(),
            session.policy_snapshot_id.clone(),
            session.trace_id.clone(),
        ];
        for base in [&session.session_id, &session.policy_snapshot_id] {
            guesses.extend((1..=4).map(|steps| ulid_after(base, steps)));
        }
        for guess in guesses {
            forged.session_id = session.session_id.clone();
            forged.token = guess.clone();
            let status = forged
                .op("search", json!({"query": "public"}))
                .await
                .expect_err("guessed token");
            assert_eq!(status.code(), Code::Unauthenticated, "{guess}");
        }
        tokens.push(session.token.clone());
    }
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), tokens.len());

    // Only the token's hash is stored, and no log line carries a token.
    let logs = mesh.logs().join("\n");
    for token in &tokens {
        assert!(!logs.contains(token.as_str()), "a token was logged");
        let stored: i64 = mesh
            .db
            .client()
            .query_one(
                "SELECT count(*) FROM pecr_session_runtime r \
                 WHERE r.session_token_hash = $1 \
                 OR r::text LIKE '%' || $2 || '%'",
                &[&pecr_contracts::sha256_hex(token), token],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(stored, 1, "exactly the hash is stored");
    }
}

/// A link under `public/` pointing into `restricted/`: `search` must report
/// the file it resolves to and judge it as `fetch_span` would, so `support`
/// learns nothing about the restricted file, however it probes.
#[tokio::test]
async fn search_judges_and_reports_links_by_the_file_they_resolve_to() {
    let mesh = Mesh::start(Policy::Test).await;
    std::os::unix::fs::symlink(
        mesh.corpus.join("restricted/restricted_1.txt"),
        mesh.corpus.join("public/alias.txt"),
    )
    .expect("file link");
    std::os::unix::fs::symlink(
        mesh.corpus.join("restricted"),
        mesh.corpus.join("public/rdir"),
    )
    .expect("directory link");
    let restricted_hash = pecr_contracts::sha256_hex(
        std::fs::read(mesh.corpus.join("restricted/restricted_1.txt")).expect("read"),
    );

    let mut support = mesh.session("support").await;
    // Growing substrings of the canary: an oracle would answer some of them.
    let mut probes: Vec<String> = ("PECR_CANARY_R".len()..=RESTRICTED_CANARY.len())
        .step_by(6)
        .map(|len| RESTRICTED_CANARY[..len].to_owned())
        .collect();
    probes.push("restricted content".into());
    for probe in &probes {
        let result = support
            .op("search", json!({"query": probe, "limit": 0}))
            .await
            .expect("search");
        let text = result.to_string();
        assert_eq!(result, json!({"refs": []}), "probe {probe:?} found {text}");
        assert!(!text.contains(&restricted_hash));
    }
    // A term in both a public file and the linked one finds only the public file.
    let result = support
        .op("search", json!({"query": "fixture document", "limit": 0}))
        .await
        .expect("search");
    let ids: Vec<&str> = result["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .filter_map(|r| r["object_id"].as_str())
        .collect();
    assert!(
        ids.iter().all(|id| !id.starts_with("restricted/")
            && !id.contains("alias")
            && !id.contains("rdir")),
        "{ids:?}"
    );
    assert!(ids.contains(&"public/public_1.txt"), "{ids:?}");

    // dev may read the restricted file: it gets one ref, named by its target.
    let mut dev = mesh.session("dev").await;
    let result = dev
        .op("search", json!({"query": RESTRICTED_CANARY, "limit": 0}))
        .await
        .expect("search");
    assert_eq!(
        result["refs"]
            .as_array()
            .expect("refs")
            .iter()
            .map(|r| (r["object_id"].clone(), r["version_id"].clone()))
            .collect::<Vec<_>>(),
        vec![(json!("restricted/restricted_1.txt"), json!(restricted_hash))]
    );

    // simulate resolves the path the same way.
    for object_id in ["public/alias.txt", "public/rdir/restricted_1.txt"] {
        let decision = mesh
            .client()
            .simulate_policy(call(
                "support",
                None,
                v1::SimulatePolicyRequest {
                    action: "operator_call".into(),
                    params: json!({"op_name": "fetch_span", "object_id": object_id}).to_string(),
                    ..v1::SimulatePolicyRequest::default()
                },
            ))
            .await
            .expect("simulate")
            .into_inner();
        assert!(!decision.allow, "{object_id} resolves into restricted/");
    }
    let allowed = mesh
        .client()
        .simulate_policy(call(
            "support",
            None,
            v1::SimulatePolicyRequest {
                action: "operator_call".into(),
                params: json!({"op_name": "fetch_span", "object_id": "public/public_1.txt"})
                    .to_string(),
                ..v1::SimulatePolicyRequest::default()
            },
        ))
        .await
        .expect("simulate")
        .into_inner();
    assert!(allowed.allow);
}

/// A foreign caller is refused before the session's lock: while the owner's
/// call holds the lock (its safe-view read blocked on a table lock the test
/// holds), an intruder gets its 401 at once instead of queueing for it.
#[tokio::test]
async fn a_foreign_caller_is_refused_without_waiting_for_the_session_lock() {
    let mesh = Mesh::start(Policy::Test).await;
    let owner = mesh.session("dev").await;
    let observer = mesh.db.client();
    let (holder, connection) = tokio_postgres::connect(&mesh.db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    holder
        .batch_execute("BEGIN; LOCK TABLE pecr_fixture_customers IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock the fixture table");

    let mut owner_call = owner.clone();
    let pending = tokio::spawn(async move {
        owner_call
            .op(
                "fetch_rows",
                json!({"view_id": "safe_customer_view_public", "fields": ["status"]}),
            )
            .await
    });
    // Wait until the owner's read is blocked in PostgreSQL: the gateway took
    // the session lock before it.
    let mut blocked = false;
    for _ in 0..200 {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query ILIKE '%safe_customer_view_public%'",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        if waiting > 0 {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(blocked, "the owner's read never reached PostgreSQL");

    let mut intruder = mesh.session("support").await;
    intruder.session_id = owner.session_id.clone();
    intruder.token = owner.token.clone();
    let status = intruder
        .op("search", json!({"query": "public"}))
        .await
        .expect_err("intruder");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(!pending.is_finished(), "the owner still holds the session");

    holder.batch_execute("COMMIT").await.expect("unlock");
    let result: Value = pending.await.expect("join").expect("owner's call");
    assert!(result.to_string().contains("cust_public_1"), "{result}");
}
