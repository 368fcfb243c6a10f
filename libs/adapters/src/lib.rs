//! The gateway's data side: the filesystem corpus and PostgreSQL safe-view
//! adapters, the version store behind `as_of_time`, policy redaction, and
//! the seven allowlisted operators (gateway spec §5 and §6).
//!
//! The gateway authenticates, checks the session and budget and asks policy;
//! then it calls [`Adapters::run`] and records the returned evidence. Errors
//! are [`PecrError`]s with the spec's exact codes, statuses and messages;
//! no message carries source content, and nothing here logs content,
//! parameter values or evidence ids.
//!
//! Beyond gateway spec §5 (decisions 1 and 5; docs/decisions.md, Adapters):
//! - Corpus paths are canonicalised and confined to the root, and
//!   [`Adapters::canonical_object_id`] gives the canonical path so policy can
//!   be asked about the file actually read (symlinks under an allowed prefix).
//! - Version stores are keyed per tenant and principal ([`VersionKey`]).
//! - `as_of_time` is applied on every path: the first observation at a time
//!   wins, `fetch_rows` time-travels on its database path too, empty files
//!   are versioned, and the store sits behind [`VersionStore`]: the
//!   gateway's default keeps it in the ledger database, shared by every
//!   replica, and [`MemoryVersionStore`] keeps it in process.
//! - `search` matches terms and ranks by BM25. Policy is the gateway's:
//!   [`Adapters::search_candidates`] lists the documents holding a query
//!   term, the gateway judges each, and [`SearchCandidates::rank`] ranks
//!   only those the caller may read.

mod config;
mod corpus_index;
mod corpus_watch;
mod errors;
mod fixture;
mod fs_corpus;
mod operator;
mod operators;
mod params;
mod policy_input;
mod redaction;
mod safe_view;
mod scope;
mod version_store;

/// Locks `mutex`; a panic while it was held leaves data that is still
/// consistent here (every critical section is a plain read or replace).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

use std::sync::Arc;
use std::time::Duration;

use pecr_config::StartupError;
use pecr_contracts::evidence::EvidenceUnit;
use pecr_errors::PecrError;
use serde_json::Value;

pub use config::AdaptersConfig;
pub use fixture::{SAFEVIEW_FIXTURE_SQL, load_fixture_sql};
pub use fs_corpus::check_object_id;
pub use operator::Operator;
pub use operators::SearchCandidates;
pub use policy_input::{PolicyInputFields, policy_input_fields};
pub use redaction::{Redaction, parse_redaction};
pub use safe_view::{CATALOGUE, SafeView, missing_columns};
pub use scope::SessionScope;
#[cfg(feature = "test-suite")]
pub use version_store::suite as version_store_suite;
pub use version_store::{
    MemoryVersionStore, NewVersion, ObjectVersions, ResolveRequest, StoreFuture, StoredVersion,
    VersionKey, VersionStore,
};

/// What an operator produced: the response `result` and the units to record
/// as emitted (in order). `search` and `list_versions` emit nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorOutput {
    pub result: Value,
    pub evidence: Vec<EvidenceUnit>,
}

/// Shared state behind [`Adapters`].
pub(crate) struct AdaptersInner {
    pub(crate) config: AdaptersConfig,
    pub(crate) fs: Arc<fs_corpus::FsCorpus>,
    pub(crate) db: safe_view::SafeViewDb,
    pub(crate) fs_versions: Arc<dyn VersionStore>,
    pub(crate) pg_versions: Arc<dyn VersionStore>,
}

/// The data sources and operators; cheap to clone.
#[derive(Clone)]
pub struct Adapters {
    inner: Arc<AdaptersInner>,
}

// Handlers share one `Adapters` across tasks.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Adapters>();
};

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Adapters {
    /// Builds the safe-view pool and checks the catalogue views, with
    /// in-process version stores ([`MemoryVersionStore`]) for files and rows.
    /// Errors: a malformed URL or missing views/columns → `ERR_INVALID_CONFIG`
    /// (naming each missing view and column); no connection or a failed
    /// introspection → `ERR_DB_UNAVAILABLE`.
    pub async fn connect(config: AdaptersConfig, db_url: &str) -> Result<Self, StartupError> {
        let fs_versions = Arc::new(MemoryVersionStore::new(
            config.fs_version_cache_max_bytes,
            config.fs_version_cache_max_total_bytes,
            config.fs_version_cache_max_versions_per_object,
        ));
        let pg_versions = Arc::new(MemoryVersionStore::new(
            config.fs_version_cache_max_bytes,
            config.fs_version_cache_max_total_bytes,
            config.fs_version_cache_max_versions_per_object,
        ));
        Self::connect_with_stores(config, db_url, fs_versions, pg_versions).await
    }

    /// [`Adapters::connect`] with caller-supplied version stores (one for
    /// file versions, one for row snapshots).
    pub async fn connect_with_stores(
        config: AdaptersConfig,
        db_url: &str,
        fs_versions: Arc<dyn VersionStore>,
        pg_versions: Arc<dyn VersionStore>,
    ) -> Result<Self, StartupError> {
        let db = safe_view::SafeViewDb::new(db_url, config.pg_query_timeout_ms)?;
        db.check_schema().await?;
        let fs = Arc::new(fs_corpus::FsCorpus::new(
            config.fs_corpus_path.clone(),
            Duration::from_millis(config.search_index_ttl_ms),
            config.search_index_watch,
        ));
        Ok(Self {
            inner: Arc::new(AdaptersInner {
                config,
                fs,
                db,
                fs_versions,
                pg_versions,
            }),
        })
    }

    pub fn config(&self) -> &AdaptersConfig {
        &self.inner.config
    }

    /// Runs an allowlisted operator for a session. `redaction` is the
    /// parsed policy redaction; it applies to `fetch_rows`, `aggregate` and
    /// `redact` only.
    pub async fn run(
        &self,
        op: Operator,
        params: &Value,
        scope: &SessionScope,
        redaction: Option<&Redaction>,
    ) -> Result<OperatorOutput, PecrError> {
        use tracing::Instrument;
        let span = match op {
            Operator::FetchRows | Operator::Aggregate => {
                tracing::info_span!("adapter.pg_safeview", op_name = op.name())
            }
            Operator::Redact => tracing::info_span!("adapter.redact"),
            _ => tracing::info_span!("adapter.fs_corpus", op_name = op.name()),
        };
        operators::run(&self.inner, op, params, scope, redaction)
            .instrument(span)
            .await
    }

    /// The first half of `search` (params as for [`Operator::Search`]): the
    /// documents holding a query term, to be judged by policy and then
    /// ranked with [`SearchCandidates::rank`].
    pub async fn search_candidates(&self, params: &Value) -> Result<SearchCandidates, PecrError> {
        use tracing::Instrument;
        let span = tracing::info_span!("adapter.fs_corpus", op_name = Operator::Search.name());
        operators::search_candidates(&self.inner, params)
            .instrument(span)
            .await
    }

    /// The canonical corpus path (root-relative, `/`-separated) that
    /// `object_id` resolves to, with the same errors as `fetch_span`. The
    /// gateway asks policy about this path as well as the raw object id, so
    /// a symlink under an allowed prefix cannot reach a file elsewhere.
    pub async fn canonical_object_id(&self, object_id: &str) -> Result<String, PecrError> {
        let object_id = object_id.trim();
        if object_id.is_empty() {
            return Err(PecrError::invalid_params("params.object_id is required"));
        }
        Ok(self.inner.fs.resolve(object_id).await?.canonical_id)
    }

    /// The canonical id of every file the corpus holds now, sorted and
    /// deduplicated: what policy is asked about when a file is read.
    pub async fn object_ids(&self) -> Result<Vec<String>, PecrError> {
        self.inner
            .fs
            .scan_index(|entries| {
                let mut ids: Vec<String> = entries
                    .iter()
                    .map(|entry| entry.canonical_id.clone())
                    .collect();
                ids.sort();
                ids.dedup();
                Ok(ids)
            })
            .await
    }

    /// Whether the safe-view database answers `SELECT 1` within `timeout`.
    pub async fn ping_db(&self, timeout: Duration) -> bool {
        self.inner.db.ping(timeout).await
    }
}
