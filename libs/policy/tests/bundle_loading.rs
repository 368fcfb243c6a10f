//! Bundle hashing, the hash check at start-up, broken bundles, and the
//! `pecr-policy-hash` binary.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{bundle_dir, test_bundle_dir};
use pecr_contracts::{hash_canonical_json, sha256_hex};
use pecr_errors::ErrorCode;
use pecr_policy::{DecisionKey, PolicyConfig, PolicyEngine, PolicyStartupError, bundle_hash};
use serde_json::json;

fn copy_bundle(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in fs::read_dir(from).expect("bundle dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

fn load(dir: &Path, expected: Option<String>) -> Result<PolicyEngine, PolicyStartupError> {
    PolicyEngine::new(PolicyConfig {
        bundle_dir: dir.to_path_buf(),
        expected_bundle_hash: expected,
        ..PolicyConfig::default()
    })
}

fn hash(dir: &Path) -> String {
    bundle_hash(dir).expect("bundle hashes")
}

#[test]
fn hash_follows_the_documented_recipe() {
    let dir = bundle_dir();
    let file_hash = |name: &str| sha256_hex(fs::read(dir.join(name)).expect("read"));
    let expected = hash_canonical_json(&json!({
        ".manifest": file_hash(".manifest"),
        "policy.rego": file_hash("policy.rego"),
    }));
    assert_eq!(hash(&dir), expected);
    assert!(pecr_contracts::is_sha256_hex(&expected));
}

#[test]
fn hash_is_deterministic_and_independent_of_location() {
    let copy = copy_bundle(&bundle_dir());
    assert_eq!(hash(&bundle_dir()), hash(&bundle_dir()));
    assert_eq!(hash(copy.path()), hash(&bundle_dir()));
    assert_ne!(hash(&bundle_dir()), hash(&test_bundle_dir()));
}

#[test]
fn hash_changes_with_any_bundle_file_only() {
    let copy = copy_bundle(&bundle_dir());
    let dir = copy.path();
    let original = hash(dir);

    // Not bundle files: README, other extensions, hidden directories.
    fs::write(dir.join("README.md"), "changed").expect("write");
    fs::write(dir.join("notes.txt"), "x").expect("write");
    fs::create_dir(dir.join(".git")).expect("mkdir");
    fs::write(dir.join(".git/extra.rego"), "package x").expect("write");
    assert_eq!(hash(dir), original);

    let policy = dir.join("policy.rego");
    let source = fs::read_to_string(&policy).expect("read");
    fs::write(&policy, format!("{source}\n")).expect("write");
    let edited = hash(dir);
    assert_ne!(edited, original);
    fs::write(&policy, &source).expect("write");
    assert_eq!(hash(dir), original);

    fs::write(
        dir.join(".manifest"),
        r#"{"revision":"other","roots":["pecr"]}"#,
    )
    .expect("write");
    let manifest_changed = hash(dir);
    assert_ne!(manifest_changed, original);

    fs::create_dir(dir.join("lib")).expect("mkdir");
    fs::write(dir.join("lib/helpers.rego"), "package pecr.helpers\n").expect("write");
    let nested = hash(dir);
    assert_ne!(nested, manifest_changed);

    // Same bytes under another name is another bundle.
    fs::rename(dir.join("lib/helpers.rego"), dir.join("lib/other.rego")).expect("rename");
    assert_ne!(hash(dir), nested);
}

#[test]
fn a_missing_directory_is_an_io_error() {
    assert!(bundle_hash(Path::new("/nonexistent/pecr/bundle")).is_err());
}

#[tokio::test]
async fn matching_expected_hash_loads() {
    let expected = hash(&bundle_dir());
    let engine = load(&bundle_dir(), Some(expected.clone())).expect("loads");
    assert_eq!(engine.bundle_hash(), Some(expected.as_str()));
    assert_eq!(engine.backend(), "embedded");
    assert!(engine.ready().await);
}

#[test]
fn mismatched_hash_is_a_startup_error_naming_both_hashes_and_the_dir() {
    let wrong = "0".repeat(64);
    let actual = hash(&bundle_dir());
    let error = load(&bundle_dir(), Some(wrong.clone())).expect_err("must refuse");
    assert!(
        matches!(error, PolicyStartupError::BundleHashMismatch { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&actual), "{message}");
    assert!(message.contains("opa/bundle"), "{message}");
    assert!(message.contains("expected"), "{message}");
}

#[test]
fn broken_bundles_are_startup_errors() {
    let missing = load(Path::new("/nonexistent/pecr/bundle"), None).expect_err("missing");
    assert!(
        matches!(missing, PolicyStartupError::BundleRead { .. }),
        "{missing:?}"
    );

    let empty = tempfile::tempdir().expect("temp dir");
    let error = load(empty.path(), None).expect_err("empty");
    assert!(
        matches!(error, PolicyStartupError::BundleInvalid { .. }),
        "{error:?}"
    );

    let syntax = copy_bundle(&bundle_dir());
    fs::write(
        syntax.path().join("broken.rego"),
        "package pecr.authz\ndecision := {",
    )
    .expect("write");
    let error = load(syntax.path(), None).expect_err("syntax");
    assert!(error.to_string().contains("broken.rego"), "{error}");

    let bad_manifest = copy_bundle(&bundle_dir());
    fs::write(bad_manifest.path().join(".manifest"), "revision: 1").expect("write");
    let error = load(bad_manifest.path(), None).expect_err("manifest");
    assert!(error.to_string().contains(".manifest"), "{error}");

    let no_rule = tempfile::tempdir().expect("temp dir");
    fs::write(
        no_rule.path().join("p.rego"),
        "package pecr.other\n\nx := 1\n",
    )
    .expect("write");
    let error = load(no_rule.path(), None).expect_err("no decision rule");
    assert!(
        matches!(error, PolicyStartupError::BundleInvalid { .. }),
        "{error:?}"
    );

    let not_a_decision = tempfile::tempdir().expect("temp dir");
    fs::write(
        not_a_decision.path().join("p.rego"),
        "package pecr.authz\n\ndecision := \"allow\"\n",
    )
    .expect("write");
    let error = load(not_a_decision.path(), None).expect_err("bad shape");
    assert!(
        matches!(error, PolicyStartupError::BundleInvalid { .. }),
        "{error:?}"
    );
}

/// Evaluation errors and invalid shapes at run time fail closed.
#[tokio::test]
async fn runtime_evaluation_problems_fail_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(
        dir.path().join("p.rego"),
        r#"package pecr.authz

default decision := {"allow": false}

# Two different values for one input: a conflict at evaluation time.
decision := {"allow": true} if input.x == 1
decision := {"allow": false, "reason": "other"} if input.x == 1

# Not a decision object.
decision := "yes" if input.x == 2

# allow is not a boolean.
decision := {"allow": "true"} if input.x == 3
"#,
    )
    .expect("write");
    let engine = load(dir.path(), None).expect("loads");
    let key = DecisionKey::new("local", "dev", "test");
    for x in 1..=3 {
        let error = engine
            .decide(&key, &json!({ "x": x }))
            .await
            .expect_err("must fail closed");
        assert_eq!(error.code, ErrorCode::SourceUnavailable, "x={x}");
        assert_eq!(error.http_status, 503);
        assert_eq!(error.message, "policy engine unavailable");
    }
    let fine = engine
        .decide(&key, &json!({"x": 0}))
        .await
        .expect("default");
    assert!(!fine.allow);
}

#[test]
fn hash_binary_prints_the_bundle_hash() {
    let binary = env!("CARGO_BIN_EXE_pecr-policy-hash");
    let output = Command::new(binary)
        .arg(bundle_dir())
        .output()
        .expect("runs");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).expect("utf-8"),
        format!("{}\n", hash(&bundle_dir()))
    );

    let usage = Command::new(binary).output().expect("runs");
    assert_eq!(usage.status.code(), Some(2));

    let missing = Command::new(binary)
        .arg("/nonexistent/pecr/bundle")
        .output()
        .expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    assert!(!missing.stderr.is_empty());
}
