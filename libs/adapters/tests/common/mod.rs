//! Shared set-up: a fresh PostgreSQL schema with the safe-view fixture and
//! a temporary copy of the corpus.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pecr_adapters::{
    Adapters, AdaptersConfig, Operator, OperatorOutput, Redaction, SAFEVIEW_FIXTURE_SQL,
    SessionScope, load_fixture_sql,
};
use pecr_contracts::hashing::{PolicySnapshotInputs, policy_snapshot_hash};
use pecr_errors::{ErrorCode, PecrError, TerminalMode};
use pecr_testkit::TestDatabase;
use serde_json::Value;

pub const EPOCH: &str = "1970-01-01T00:00:00Z";
pub const T1: &str = "2026-01-01T00:00:00Z";
pub const T2: &str = "2026-02-01T00:00:00Z";
pub const V8_SNAPSHOT_DEV: &str =
    "fbaa1a39f1f98474a7eded447a9d1df4c7f150a9fb1e9e4e87d70057e8f5c5df";
pub const EMPTY_OBJECT_HASH: &str =
    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

pub const RESTRICTED_CANARY: &str = "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f";
pub const INJECTION_CANARY: &str = "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c";

pub struct Harness {
    pub db: TestDatabase,
    pub corpus: tempfile::TempDir,
    pub adapters: Adapters,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create corpus dir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

pub fn fixture_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/fs_corpus")
}

/// A database with the fixture loaded (no adapters yet).
pub async fn fixture_db() -> TestDatabase {
    let db = TestDatabase::create().await;
    load_fixture_sql(db.client(), SAFEVIEW_FIXTURE_SQL)
        .await
        .expect("fixture loads");
    db
}

impl Harness {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut AdaptersConfig)) -> Self {
        let db = fixture_db().await;
        let corpus = tempfile::tempdir().expect("temp dir");
        copy_tree(&fixture_corpus(), corpus.path());
        let mut config = AdaptersConfig {
            fs_corpus_path: corpus.path().to_path_buf(),
            ..AdaptersConfig::default()
        };
        adjust(&mut config);
        let adapters = Adapters::connect(config, &db.url())
            .await
            .expect("adapters connect");
        Self {
            db,
            corpus,
            adapters,
        }
    }

    pub fn path(&self, object_id: &str) -> PathBuf {
        self.corpus.path().join(object_id)
    }

    pub async fn run(
        &self,
        op: Operator,
        params: Value,
        scope: &SessionScope,
        redaction: Option<&Redaction>,
    ) -> Result<OperatorOutput, PecrError> {
        self.adapters.run(op, &params, scope, redaction).await
    }

    pub async fn ok(&self, op: Operator, params: Value, scope: &SessionScope) -> OperatorOutput {
        match self.run(op, params.clone(), scope, None).await {
            Ok(output) => output,
            Err(err) => panic!("{} {params} failed: {err}", op.name()),
        }
    }

    pub async fn err(&self, op: Operator, params: Value, scope: &SessionScope) -> PecrError {
        match self.run(op, params.clone(), scope, None).await {
            Ok(output) => panic!("{} {params} succeeded: {}", op.name(), output.result),
            Err(err) => err,
        }
    }
}

/// A local-mode session of `principal` at `as_of` (bundle `a`×64).
pub fn scope(principal: &str, as_of: &str) -> SessionScope {
    scope_in("local", principal, as_of)
}

pub fn scope_in(tenant: &str, principal: &str, as_of: &str) -> SessionScope {
    let bundle = "a".repeat(64);
    let hash = policy_snapshot_hash(&PolicySnapshotInputs {
        principal_id: principal,
        tenant_id: tenant,
        principal_roles: &[],
        principal_attrs_hash: EMPTY_OBJECT_HASH,
        policy_bundle_hash: &bundle,
        as_of_time: as_of,
    });
    SessionScope {
        tenant_id: tenant.to_owned(),
        principal_id: principal.to_owned(),
        as_of_time: as_of.to_owned(),
        policy_snapshot_id: format!("ps_{principal}_{as_of}"),
        policy_snapshot_hash: hash,
        emitted_evidence_ids: BTreeSet::new(),
    }
}

/// Asserts a 400 `ERR_INVALID_PARAMS` with this message.
pub fn assert_invalid(err: &PecrError, message: &str) {
    assert_eq!(err.message, message);
    assert_eq!(err.code, ErrorCode::InvalidParams, "{message}");
    assert_eq!(err.http_status, 400, "{message}");
    assert_eq!(err.hint, TerminalMode::InsufficientEvidence, "{message}");
    assert!(!err.retryable, "{message}");
}

/// Asserts a 404 `ERR_SOURCE_UNAVAILABLE`, not retryable, with this message.
pub fn assert_not_found(err: &PecrError, message: &str) {
    assert_eq!(err.message, message);
    assert_eq!(err.code, ErrorCode::SourceUnavailable, "{message}");
    assert_eq!(err.http_status, 404, "{message}");
    assert_eq!(err.hint, TerminalMode::SourceUnavailable, "{message}");
    assert!(!err.retryable, "{message}");
}

pub fn is_hex64(value: &Value) -> bool {
    value.as_str().is_some_and(pecr_contracts::is_sha256_hex)
}
