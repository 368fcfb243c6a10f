//! Filesystem operators against a temporary copy of the corpus (gateway
//! spec §5.1–§5.5, scenarios 14–17, 26, 27 and 29, golden V14/V15).

mod common;

use common::*;
use pecr_adapters::{Adapters, AdaptersConfig, Operator};
use pecr_contracts::evidence::EvidenceUnit;
use pecr_contracts::hashing::TransformStep;
use pecr_contracts::sha256_hex;
use pecr_errors::{ErrorCode, TerminalMode};
use serde_json::{Value, json};

const PUBLIC: &str = "public/public_1.txt";
const RESTRICTED: &str = "restricted/restricted_1.txt";
const INJECTION: &str = "injection/injection_1.txt";
const PUBLIC_V1: &str = "463bace3fd0318503dfc3052a7309c531d9993e2075a3618030ad513e0883579";

fn unit(value: &Value) -> EvidenceUnit {
    serde_json::from_value(value.clone()).expect("result decodes as an EvidenceUnit")
}

fn append(harness: &Harness, object_id: &str, text: &str) {
    let path = harness.path(object_id);
    let mut bytes = std::fs::read(&path).expect("read corpus file");
    bytes.extend_from_slice(text.as_bytes());
    std::fs::write(&path, bytes).expect("write corpus file");
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn golden_whole_file_ids_v14_v15() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    // Operator futures can run on any worker thread.
    let params = json!({"object_id": PUBLIC});
    assert_send(h.adapters.run(Operator::FetchSpan, &params, &dev, None))
        .await
        .expect("fetch_span");
    assert_eq!(dev.policy_snapshot_hash, V8_SNAPSHOT_DEV);
    for (object_id, id, end, line_end) in [
        (
            PUBLIC,
            "f2a54285533a2e77a3262fa16318865222116f53ef798683c85009a1c37cdf3f",
            128,
            5,
        ),
        (
            RESTRICTED,
            "de40053185638a6656b45281a4e09ab79ffeac41f90fa9c35028cb7bd543a036",
            168,
            6,
        ),
        (
            INJECTION,
            "4fae22213c13bb5ec9adf2dbe389f1b7d2f73805493ae91860279870f108cca8",
            312,
            9,
        ),
    ] {
        let out = h
            .ok(Operator::FetchSpan, json!({"object_id": object_id}), &dev)
            .await;
        assert_eq!(out.result["evidence_unit_id"], id, "{object_id}");
        assert_eq!(
            out.result["span_or_row_spec"],
            json!({"type":"text_span","start_byte":0,"end_byte":end,"line_start":1,"line_end":line_end})
        );
        assert_eq!(out.result["source_system"], "fs_corpus");
        assert_eq!(out.result["content_type"], "text/plain");
        assert_eq!(out.result["retrieved_at"], EPOCH);
        assert_eq!(out.result["as_of_time"], EPOCH);
        assert_eq!(out.result["policy_snapshot_id"], dev.policy_snapshot_id);
        assert_eq!(out.result["transform_chain"], json!([]));
        assert_eq!(out.evidence.len(), 1);
        assert_eq!(out.evidence[0].evidence_unit_id, id);
        assert_eq!(out.evidence[0].verify(), Ok(()));
        assert_eq!(unit(&out.result), out.evidence[0]);
    }
    let out = h
        .ok(Operator::FetchSpan, json!({"object_id": PUBLIC}), &dev)
        .await;
    assert_eq!(out.result["version_id"], PUBLIC_V1);
    assert_eq!(out.result["content_hash"], PUBLIC_V1);
}

#[tokio::test]
async fn search_refs_match_whole_file_fetch_ids() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    // Scenario 16.
    let out = h
        .ok(
            Operator::Search,
            json!({"query": RESTRICTED_CANARY, "limit": 5}),
            &dev,
        )
        .await;
    assert!(out.evidence.is_empty(), "search emits nothing");
    let refs = out.result["refs"].as_array().expect("refs array");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["object_id"], RESTRICTED);
    assert_eq!(refs[0]["source_system"], "fs_corpus");
    assert_eq!(
        refs[0]["evidence_unit_id"],
        "de40053185638a6656b45281a4e09ab79ffeac41f90fa9c35028cb7bd543a036"
    );
    assert_eq!(
        refs[0]["version_id"],
        "944d6771dc2dba29ab361645d4d4677841120b694eb034f883b44abab61c34f1"
    );

    // Every ref id equals the whole-file fetch_span id, in rank order: each
    // file holds both terms once, so the shortest ranks first (BM25).
    let out = h
        .ok(Operator::Search, json!({"query": "fixture document"}), &dev)
        .await;
    let refs = out.result["refs"].as_array().expect("refs array");
    let ids: Vec<&str> = refs
        .iter()
        .filter_map(|r| r["object_id"].as_str())
        .collect();
    assert_eq!(ids, vec![PUBLIC, RESTRICTED, INJECTION]);
    for reference in refs {
        let fetched = h
            .ok(
                Operator::FetchSpan,
                json!({"object_id": reference["object_id"]}),
                &dev,
            )
            .await;
        assert_eq!(
            fetched.result["evidence_unit_id"],
            reference["evidence_unit_id"]
        );
        assert_eq!(fetched.result["version_id"], reference["version_id"]);
    }

    // Limits, terms whatever their case, every term needed unless
    // `match` is "any", and principals get different ids.
    let one = h
        .ok(
            Operator::Search,
            json!({"query": "fixture document", "limit": 1}),
            &dev,
        )
        .await;
    assert_eq!(one.result["refs"].as_array().map(Vec::len), Some(1));
    let loud = h
        .ok(
            Operator::Search,
            json!({"query": "FIXTURE DOCUMENTS?"}),
            &dev,
        )
        .await;
    assert_eq!(loud.result, out.result);
    let none = h
        .ok(Operator::Search, json!({"query": "fixture elephant"}), &dev)
        .await;
    assert_eq!(none.result, json!({"refs": []}));
    let any = h
        .ok(
            Operator::Search,
            json!({"query": "fixture elephant", "match": "any"}),
            &dev,
        )
        .await;
    assert_eq!(any.result, out.result);
    let stopwords = h
        .ok(Operator::Search, json!({"query": "which of the"}), &dev)
        .await;
    assert_eq!(stopwords.result, json!({"refs": []}));
    let support = h
        .ok(
            Operator::Search,
            json!({"query": "fixture document"}),
            &scope("support", EPOCH),
        )
        .await;
    let support_refs = support.result["refs"].as_array().expect("refs array");
    assert_eq!(support_refs.len(), 3);
    for (a, b) in refs.iter().zip(support_refs) {
        assert_eq!(a["object_id"], b["object_id"]);
        assert_ne!(a["evidence_unit_id"], b["evidence_unit_id"]);
    }
}

#[tokio::test]
async fn search_skips_non_utf8_and_sees_new_files_without_ttl() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    std::fs::write(h.path("public/binary.bin"), [0xff, 0xfe, b'P', b'u']).expect("write");
    std::fs::create_dir_all(h.path("public/nested")).expect("mkdir");
    std::fs::write(
        h.path("public/nested/new.txt"),
        "Public fixture document copy\n",
    )
    .expect("write");
    let out = h
        .ok(
            Operator::Search,
            json!({"query": "Public fixture document", "limit": 0}),
            &dev,
        )
        .await;
    let ids: Vec<&str> = out.result["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .filter_map(|r| r["object_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["public/nested/new.txt", PUBLIC]);
}

#[tokio::test]
async fn search_index_is_cached_for_its_ttl_and_rescans_after_a_read_failure() {
    // The TTL rule applies to an index without a watch.
    let h = Harness::with(|c| {
        c.search_index_ttl_ms = 60_000;
        c.search_index_watch = false;
    })
    .await;
    let dev = scope("dev", EPOCH);
    let first = h
        .ok(Operator::Search, json!({"query": "fixture"}), &dev)
        .await;
    assert_eq!(first.result["refs"].as_array().map(Vec::len), Some(3));
    // A new file is not seen while the index is fresh.
    std::fs::write(h.path("public/later.txt"), "fixture later\n").expect("write");
    let cached = h
        .ok(Operator::Search, json!({"query": "fixture"}), &dev)
        .await;
    assert_eq!(cached.result["refs"].as_array().map(Vec::len), Some(3));
    // A vanished file makes the scan fail once: the index is rebuilt.
    std::fs::remove_file(h.path(INJECTION)).expect("remove");
    let rescanned = h
        .ok(Operator::Search, json!({"query": "fixture"}), &dev)
        .await;
    let ids: Vec<&str> = rescanned.result["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .filter_map(|r| r["object_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["public/later.txt", PUBLIC, RESTRICTED]);
}

/// How long a test waits for the corpus watch to report a change.
const EVENT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn search_refs(h: &Harness, query: &str) -> Vec<Value> {
    let out = h
        .ok(
            Operator::Search,
            json!({"query": query, "limit": 0}),
            &scope("dev", EPOCH),
        )
        .await;
    out.result["refs"].as_array().cloned().expect("refs array")
}

fn ref_ids(refs: &[Value]) -> Vec<&str> {
    refs.iter()
        .filter_map(|r| r["object_id"].as_str())
        .collect()
}

/// The first search result within [`EVENT_WAIT`] for which `done` holds.
async fn eventually(h: &Harness, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + EVENT_WAIT;
    loop {
        let refs = search_refs(h, query).await;
        if done(&refs) {
            return refs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "change not seen within {EVENT_WAIT:?}: {:?}",
            ref_ids(&refs)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Asserts the ids of a search by a principal new to the version store are
/// the ids of its whole-file fetch_spans (which then observe the current
/// files first).
async fn assert_refs_match_fetches(h: &Harness, query: &str, principal: &str) {
    let fresh = scope(principal, EPOCH);
    let out = h
        .ok(
            Operator::Search,
            json!({"query": query, "limit": 0}),
            &fresh,
        )
        .await;
    let refs = out.result["refs"].as_array().expect("refs array");
    assert!(!refs.is_empty());
    for reference in refs {
        let fetched = h
            .ok(
                Operator::FetchSpan,
                json!({"object_id": reference["object_id"]}),
                &fresh,
            )
            .await;
        assert_eq!(fetched.result["version_id"], reference["version_id"]);
        assert_eq!(
            fetched.result["evidence_unit_id"],
            reference["evidence_unit_id"]
        );
    }
}

/// The changes both kinds of index must follow: a file created (in a new
/// directory), a file removed, a file's content changed.
enum Change {
    Create,
    Remove,
    Rewrite,
}

const NEW_FILE: &str = "public/fresh/new.txt";

fn apply(h: &Harness, change: &Change) {
    match change {
        Change::Create => {
            std::fs::create_dir_all(h.path("public/fresh")).expect("mkdir");
            std::fs::write(h.path(NEW_FILE), "fixture document, new\n").expect("write");
        }
        Change::Remove => std::fs::remove_file(h.path(INJECTION)).expect("remove"),
        Change::Rewrite => {
            std::fs::write(h.path(PUBLIC), "fixture document, rewritten\n").expect("write")
        }
    }
}

fn shows(change: &Change, refs: &[Value]) -> bool {
    let ids = ref_ids(refs);
    match change {
        Change::Create => ids.contains(&NEW_FILE),
        Change::Remove => !ids.contains(&INJECTION),
        Change::Rewrite => refs.iter().any(|r| {
            r["object_id"] == PUBLIC
                && r["version_id"] == sha256_hex("fixture document, rewritten\n")
        }),
    }
}

#[tokio::test]
async fn watched_search_sees_created_removed_and_changed_files() {
    let h = Harness::new().await;
    let before = search_refs(&h, "fixture document").await;
    assert_eq!(ref_ids(&before), vec![PUBLIC, RESTRICTED, INJECTION]);
    // Unchanged, the index answers the same.
    assert_eq!(search_refs(&h, "fixture document").await, before);
    for (round, change) in [Change::Create, Change::Remove, Change::Rewrite]
        .iter()
        .enumerate()
    {
        apply(&h, change);
        eventually(&h, "fixture document", |refs| shows(change, refs)).await;
        assert_refs_match_fetches(&h, "fixture document", &format!("checker{round}")).await;
    }
    let after = search_refs(&h, "fixture document").await;
    // Two files of three terms, both once: the tie goes by object id.
    assert_eq!(ref_ids(&after), vec![NEW_FILE, PUBLIC, RESTRICTED]);
    // The rewritten file no longer holds the old text.
    let old = search_refs(&h, "Public fixture document").await;
    assert_eq!(ref_ids(&old), Vec::<&str>::new());
}

#[tokio::test]
async fn unwatched_search_sees_every_change_at_once() {
    let h = Harness::with(|c| c.search_index_watch = false).await;
    assert_eq!(
        ref_ids(&search_refs(&h, "fixture document").await),
        vec![PUBLIC, RESTRICTED, INJECTION]
    );
    for (round, change) in [Change::Create, Change::Remove, Change::Rewrite]
        .iter()
        .enumerate()
    {
        apply(&h, change);
        let refs = search_refs(&h, "fixture document").await;
        assert!(shows(change, &refs), "{:?}", ref_ids(&refs));
        assert_refs_match_fetches(&h, "fixture document", &format!("checker{round}")).await;
    }
}

#[tokio::test]
async fn a_watched_index_does_not_wait_for_the_ttl() {
    let h = Harness::with(|c| c.search_index_ttl_ms = 60_000).await;
    assert_eq!(search_refs(&h, "fixture document").await.len(), 3);
    apply(&h, &Change::Create);
    eventually(&h, "fixture document", |refs| shows(&Change::Create, refs)).await;
}

#[tokio::test]
async fn validation_messages() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    let cases: Vec<(Operator, Value, &str)> = vec![
        (Operator::Search, json!({}), "params.query is required"),
        (
            Operator::Search,
            json!({"query": "  "}),
            "params.query is required",
        ),
        (
            Operator::Search,
            json!({"query": 5}),
            "params.query is required",
        ),
        (
            Operator::Search,
            json!({"query": "fixture", "match": "some"}),
            "params.match must be \"all\" or \"any\"",
        ),
        (
            Operator::ListVersions,
            json!({}),
            "params.object_id is required",
        ),
        (
            Operator::FetchSpan,
            json!({"object_id": " "}),
            "params.object_id is required",
        ),
        (
            Operator::FetchSpan,
            json!([]),
            "params.object_id is required",
        ),
        (
            Operator::Diff,
            json!({"v1": "a", "v2": "b"}),
            "params.object_id is required",
        ),
        (
            Operator::Diff,
            json!({"object_id": PUBLIC, "v2": "b"}),
            "params.v1 is required",
        ),
        (
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": "a"}),
            "params.v2 is required",
        ),
        // Scenario 27.
        (
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": "not-a-sha", "v2": "also-not-a-sha"}),
            "v1 and v2 must be sha256 hex version ids",
        ),
        (
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": PUBLIC_V1, "v2": PUBLIC_V1.to_uppercase()}),
            "v1 and v2 must be sha256 hex version ids",
        ),
        (
            Operator::FetchSpan,
            json!({"object_id": "../restricted/restricted_1.txt"}),
            "object_id must be a relative path without parent components",
        ),
        (
            Operator::FetchSpan,
            json!({"object_id": "public/../restricted/restricted_1.txt"}),
            "object_id must be a relative path without parent components",
        ),
        (
            Operator::ListVersions,
            json!({"object_id": "/etc/passwd"}),
            "object_id must be a relative path without parent components",
        ),
        (
            Operator::FetchSpan,
            json!({"object_id": "./public/public_1.txt"}),
            "object_id must be a relative path without parent components",
        ),
        (
            Operator::Diff,
            json!({"object_id": "../x", "v1": PUBLIC_V1, "v2": PUBLIC_V1}),
            "object_id must be a relative path without parent components",
        ),
        (
            Operator::FetchSpan,
            json!({"object_id": PUBLIC, "start_byte": 10, "end_byte": 5}),
            "invalid span range",
        ),
        (
            Operator::FetchSpan,
            json!({"object_id": PUBLIC, "end_byte": 129}),
            "invalid span range",
        ),
    ];
    for (op, params, message) in cases {
        // Identical inputs give identical errors (scenario 27 sends twice).
        let first = h.err(op, params.clone(), &dev).await;
        let second = h.err(op, params, &dev).await;
        assert_invalid(&first, message);
        assert_eq!(first, second);
    }
}

#[tokio::test]
async fn spans_and_defaults() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    let out = h
        .ok(
            Operator::FetchSpan,
            json!({"object_id": format!(" {PUBLIC} "), "start_byte": 37, "end_byte": 127}),
            &dev,
        )
        .await;
    assert_eq!(out.result["object_id"], PUBLIC);
    assert_eq!(
        out.result["span_or_row_spec"],
        json!({"type":"text_span","start_byte":37,"end_byte":127,"line_start":3,"line_end":4})
    );
    assert_eq!(
        out.result["content"],
        "This file is safe to disclose. It is used to validate deterministic filesystem operators.\n"
    );
    assert_eq!(out.result["version_id"], PUBLIC_V1);
    // Non-integer bounds fall back to the defaults.
    let whole = h
        .ok(
            Operator::FetchSpan,
            json!({"object_id": PUBLIC, "start_byte": "5", "end_byte": -1}),
            &dev,
        )
        .await;
    assert_eq!(
        whole.result["evidence_unit_id"],
        "f2a54285533a2e77a3262fa16318865222116f53ef798683c85009a1c37cdf3f"
    );
    // An interior "." is a distinct object id for the same file.
    let dotted = h
        .ok(
            Operator::FetchSpan,
            json!({"object_id": "public/./public_1.txt"}),
            &dev,
        )
        .await;
    assert_eq!(dotted.result["object_id"], "public/./public_1.txt");
    assert_ne!(
        dotted.result["evidence_unit_id"],
        whole.result["evidence_unit_id"]
    );

    // A slice that splits a UTF-8 sequence.
    std::fs::write(h.path("public/utf8.txt"), "é\n").expect("write");
    let err = h
        .err(
            Operator::FetchSpan,
            json!({"object_id": "public/utf8.txt", "start_byte": 0, "end_byte": 1}),
            &dev,
        )
        .await;
    assert_invalid(&err, "span is not valid UTF-8");
    // An empty file is a valid empty span.
    std::fs::write(h.path("public/empty.txt"), "").expect("write");
    let empty = h
        .ok(
            Operator::FetchSpan,
            json!({"object_id": "public/empty.txt"}),
            &dev,
        )
        .await;
    assert_eq!(empty.result["content"], "");
    assert_eq!(empty.result["version_id"], sha256_hex(""));
}

#[tokio::test]
async fn missing_objects_and_roots() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    for object_id in ["public/nope.txt", "public", "nope/"] {
        let err = h
            .err(Operator::FetchSpan, json!({"object_id": object_id}), &dev)
            .await;
        assert_not_found(&err, "object not found");
    }
    let err = h
        .err(
            Operator::ListVersions,
            json!({"object_id": "public/nope.txt"}),
            &dev,
        )
        .await;
    assert_not_found(&err, "object not found");

    let missing = Adapters::connect(
        AdaptersConfig {
            fs_corpus_path: h.corpus.path().join("does-not-exist"),
            ..AdaptersConfig::default()
        },
        &h.db.url(),
    )
    .await
    .expect("connects");
    for (op, params) in [
        (Operator::FetchSpan, json!({"object_id": PUBLIC})),
        (Operator::Search, json!({"query": "x"})),
    ] {
        let err = missing
            .run(op, &params, &dev, None)
            .await
            .expect_err("root is missing");
        assert_eq!(err.code, ErrorCode::Internal);
        assert_eq!(err.http_status, 500);
        assert_eq!(err.hint, TerminalMode::SourceUnavailable);
        assert_eq!(err.message, "filesystem corpus path does not exist");
    }
}

#[tokio::test]
async fn symlinks_are_confined_and_resolved_canonically() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("secret.txt"), "OUTSIDE_SECRET_TEXT\n").expect("write");
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        h.path("public/escape.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), h.path("public/outdir")).expect("symlink");

    for object_id in ["public/escape.txt", "public/outdir/secret.txt"] {
        for op in [Operator::FetchSpan, Operator::ListVersions] {
            let err = h.err(op, json!({"object_id": object_id}), &dev).await;
            assert_invalid(&err, "object_id escapes corpus root");
        }
        let err = h
            .adapters
            .canonical_object_id(object_id)
            .await
            .expect_err("escapes");
        assert_invalid(&err, "object_id escapes corpus root");
    }
    let search = h
        .ok(
            Operator::Search,
            json!({"query": "OUTSIDE_SECRET_TEXT"}),
            &dev,
        )
        .await;
    assert_eq!(search.result, json!({"refs": []}));

    // A link that stays inside the root works, and the canonical path shows
    // where it really points (the gateway asks policy about that path).
    std::os::unix::fs::symlink(h.path(RESTRICTED), h.path("public/alias.txt")).expect("symlink");
    std::os::unix::fs::symlink(h.path("restricted"), h.path("public/rdir")).expect("symlink");
    assert_eq!(
        h.adapters.canonical_object_id(" public/alias.txt ").await,
        Ok(RESTRICTED.to_owned())
    );
    assert_eq!(
        h.adapters
            .canonical_object_id("public/rdir/restricted_1.txt")
            .await,
        Ok(RESTRICTED.to_owned())
    );
    assert_eq!(
        h.adapters
            .canonical_object_id("public/./public_1.txt")
            .await,
        Ok(PUBLIC.to_owned())
    );
    let err = h
        .adapters
        .canonical_object_id("../x")
        .await
        .expect_err("parent");
    assert_invalid(
        &err,
        "object_id must be a relative path without parent components",
    );
    let fetched = h
        .ok(
            Operator::FetchSpan,
            json!({"object_id": "public/alias.txt"}),
            &dev,
        )
        .await;
    assert_eq!(fetched.result["object_id"], "public/alias.txt");
    let search = h
        .ok(
            Operator::Search,
            json!({"query": RESTRICTED_CANARY, "limit": 0}),
            &dev,
        )
        .await;
    let ids: Vec<&str> = search.result["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .filter_map(|r| r["object_id"].as_str())
        .collect();
    // A link is reported as the file it resolves to, once: the gateway then
    // judges the ref exactly as a fetch_span of that file.
    assert_eq!(ids, vec![RESTRICTED]);
}

#[tokio::test]
async fn scenario_14_list_versions_gives_the_file_hash() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    for (object_id, version) in [
        (
            RESTRICTED,
            "944d6771dc2dba29ab361645d4d4677841120b694eb034f883b44abab61c34f1",
        ),
        (
            INJECTION,
            "c3a588fe2f7ad60ed96da0cef919cbf77439d20be3941856e278eb6b29011856",
        ),
    ] {
        let out = h
            .ok(
                Operator::ListVersions,
                json!({"object_id": object_id}),
                &dev,
            )
            .await;
        assert!(out.evidence.is_empty());
        assert_eq!(
            out.result,
            json!({"versions": [{
                "version_id": version,
                "as_of_time": EPOCH,
                "metadata_hash": sha256_hex(object_id),
            }]})
        );
    }
}

#[tokio::test]
async fn scenario_15_versions_and_diff_after_a_change() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    let before = h
        .ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &dev)
        .await;
    assert_eq!(before.result["versions"][0]["version_id"], PUBLIC_V1);

    append(&h, PUBLIC, "APPENDED_MARKER_15\n");
    let v2 = sha256_hex(std::fs::read(h.path(PUBLIC)).expect("read"));
    let after = h
        .ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &dev)
        .await;
    let versions: Vec<&str> = after.result["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version_id"].as_str())
        .collect();
    let mut expected = vec![PUBLIC_V1, v2.as_str()];
    expected.sort();
    assert_eq!(versions, expected);

    let out = h
        .ok(
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": PUBLIC_V1, "v2": v2}),
            &dev,
        )
        .await;
    let units = out.result.as_array().expect("diff result is an array");
    assert_eq!(units.len(), 1);
    let unit = unit(&units[0]);
    assert_eq!(out.evidence, vec![unit.clone()]);
    assert_eq!(unit.version_id, v2);
    let patch = unit
        .content
        .as_ref()
        .and_then(Value::as_str)
        .expect("patch text");
    assert!(patch.contains("+APPENDED_MARKER_15"));
    assert!(patch.starts_with(&format!(
        "--- a/{PUBLIC}@{PUBLIC_V1}\n+++ b/{PUBLIC}@{v2}\n@@ -2,3 +2,4 @@\n"
    )));
    assert_eq!(unit.content_hash, sha256_hex(patch));
    assert_eq!(
        unit.span_or_row_spec,
        json!({"type":"text_span","start_byte":0,"end_byte":patch.len(),"line_start":1,"line_end":1 + patch.matches('\n').count()})
    );
    assert_eq!(
        unit.transform_chain,
        vec![TransformStep::new(
            "diff_unified_v1",
            json!({"object_id": PUBLIC, "v1": PUBLIC_V1, "v2": v2})
        )]
    );
    assert_eq!(unit.verify(), Ok(()));

    // Identical versions: an empty patch.
    let same = h
        .ok(
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": v2, "v2": v2}),
            &dev,
        )
        .await;
    assert_eq!(same.result[0]["content"], "");
}

#[tokio::test]
async fn diff_errors() {
    let h = Harness::with(|c| c.fs_diff_max_bytes = 64).await;
    let dev = scope("dev", EPOCH);
    let unknown = "0".repeat(64);
    let err = h
        .err(
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": PUBLIC_V1, "v2": unknown}),
            &dev,
        )
        .await;
    assert_not_found(&err, "requested version not found");

    h.ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &dev)
        .await;
    append(
        &h,
        PUBLIC,
        "more text that makes the patch longer than sixty-four bytes\n",
    );
    let v2 = sha256_hex(std::fs::read(h.path(PUBLIC)).expect("read"));
    let err = h
        .err(
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": PUBLIC_V1, "v2": v2}),
            &dev,
        )
        .await;
    assert_invalid(&err, "diff exceeds size cap");

    std::fs::write(h.path("public/bin.txt"), [0xff, 0x00]).expect("write");
    let bin = sha256_hex([0xff, 0x00]);
    let err = h
        .err(
            Operator::Diff,
            json!({"object_id": "public/bin.txt", "v1": bin, "v2": bin}),
            &dev,
        )
        .await;
    assert_invalid(&err, "version v1 is not valid UTF-8");
}

#[tokio::test]
async fn scenario_17_and_26_content_is_returned_verbatim() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    let restricted = h
        .ok(Operator::FetchSpan, json!({"object_id": RESTRICTED}), &dev)
        .await;
    assert!(is_hex64(&restricted.result["evidence_unit_id"]));
    assert!(
        restricted.result["content"]
            .as_str()
            .is_some_and(|text| text.contains(RESTRICTED_CANARY))
    );
    let injection = h
        .ok(Operator::FetchSpan, json!({"object_id": INJECTION}), &dev)
        .await;
    let expected = std::fs::read_to_string(fixture_corpus().join(INJECTION)).expect("read");
    assert_eq!(injection.result["content"], expected.as_str());
    assert!(expected.contains(INJECTION_CANARY));
}

#[tokio::test]
async fn scenario_29_fs_staleness() {
    let h = Harness::new().await;
    let marker = "STALENESS_MARKER_29";
    let t1 = scope("dev", T1);
    let listed = h
        .ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &t1)
        .await;
    assert_eq!(listed.result["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.result["versions"][0]["version_id"], PUBLIC_V1);
    let v1 = h
        .ok(Operator::FetchSpan, json!({"object_id": PUBLIC}), &t1)
        .await;
    assert_eq!(v1.result["version_id"], PUBLIC_V1);

    append(&h, PUBLIC, &format!("{marker}\n"));
    let t2 = scope("dev", T2);
    let listed = h
        .ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &t2)
        .await;
    let versions: Vec<&str> = listed.result["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version_id"].as_str())
        .collect();
    assert!(versions.len() >= 2 && versions.contains(&PUBLIC_V1));
    let v2 = h
        .ok(Operator::FetchSpan, json!({"object_id": PUBLIC}), &t2)
        .await;
    assert!(
        v2.result["content"]
            .as_str()
            .is_some_and(|t| t.contains(marker))
    );
    assert_ne!(v2.result["version_id"], PUBLIC_V1);

    // A new session at t1 still sees V1, even after listing versions first
    // (the first observation at t1 is kept).
    let again = scope("dev", T1);
    h.ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &again)
        .await;
    let old = h
        .ok(Operator::FetchSpan, json!({"object_id": PUBLIC}), &again)
        .await;
    assert_eq!(old.result["version_id"], PUBLIC_V1);
    assert!(
        old.result["content"]
            .as_str()
            .is_some_and(|t| !t.contains(marker))
    );
    assert_eq!(
        old.result["evidence_unit_id"],
        v1.result["evidence_unit_id"]
    );

    // Between t1 and t2 the t1 version is the one in force; after t2 the
    // live file is read.
    let between = scope("dev", "2026-01-15T00:00:00Z");
    let mid = h
        .ok(Operator::FetchSpan, json!({"object_id": PUBLIC}), &between)
        .await;
    assert_eq!(mid.result["version_id"], PUBLIC_V1);
    let later = scope("dev", "2026-03-01T00:00:00Z");
    let live = h
        .ok(Operator::FetchSpan, json!({"object_id": PUBLIC}), &later)
        .await;
    assert_eq!(live.result["version_id"], v2.result["version_id"]);
}

#[tokio::test]
async fn version_lists_are_per_principal() {
    let h = Harness::new().await;
    let dev = scope("dev", EPOCH);
    h.ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &dev)
        .await;
    append(&h, PUBLIC, "changed\n");
    let dev_list = h
        .ok(Operator::ListVersions, json!({"object_id": PUBLIC}), &dev)
        .await;
    assert_eq!(
        dev_list.result["versions"].as_array().map(Vec::len),
        Some(2)
    );
    // Support never observed V1, so it sees only the current version.
    let support_list = h
        .ok(
            Operator::ListVersions,
            json!({"object_id": PUBLIC}),
            &scope("support", EPOCH),
        )
        .await;
    assert_eq!(
        support_list.result["versions"].as_array().map(Vec::len),
        Some(1)
    );
    assert_ne!(support_list.result["versions"][0]["version_id"], PUBLIC_V1);
    // Nor can it diff against V1 it never saw.
    let v2 = support_list.result["versions"][0]["version_id"].clone();
    let err = h
        .err(
            Operator::Diff,
            json!({"object_id": PUBLIC, "v1": PUBLIC_V1, "v2": v2}),
            &scope("support", EPOCH),
        )
        .await;
    assert_not_found(&err, "requested version not found");
}
