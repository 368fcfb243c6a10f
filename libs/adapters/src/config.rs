//! The adapters' settings. The gateway reads them from its environment;
//! each field names its variable and default (gateway spec §10).

use std::path::PathBuf;

/// Limits and locations of the data sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptersConfig {
    /// `PECR_FS_CORPUS_PATH`, default `fixtures/fs_corpus`: the corpus root,
    /// canonicalised at each use.
    pub fs_corpus_path: PathBuf,
    /// `PECR_FS_VERSION_CACHE_MAX_BYTES`, default 2097152: byte cap of each
    /// principal in each version store (one for files, one for row
    /// snapshots); 0 disables caching.
    pub fs_version_cache_max_bytes: u64,
    /// `PECR_FS_VERSION_CACHE_MAX_TOTAL_BYTES`, default 67108864: byte cap of
    /// each version store across principals (at least the per-principal cap).
    pub fs_version_cache_max_total_bytes: u64,
    /// `PECR_FS_VERSION_CACHE_MAX_VERSIONS_PER_OBJECT`, default 16 (at least 1 is used).
    pub fs_version_cache_max_versions_per_object: usize,
    /// `PECR_FS_DIFF_MAX_BYTES`, default 32768: longest diff patch; 0 = no cap.
    pub fs_diff_max_bytes: u64,
    /// `PECR_PG_SAFEVIEW_QUERY_TIMEOUT_MS`, default 200: the transaction-local
    /// `statement_timeout` of every safe-view query.
    pub pg_query_timeout_ms: u64,
    /// `PECR_PG_SAFEVIEW_MAX_ROWS`, default 200: `fetch_rows` LIMIT.
    pub pg_max_rows: u32,
    /// `PECR_PG_SAFEVIEW_MAX_FIELDS`, default 50: most fields one `fetch_rows` may ask for.
    pub pg_max_fields: usize,
    /// `PECR_PG_SAFEVIEW_MAX_GROUPS`, default 200: `aggregate` LIMIT.
    pub pg_max_groups: u32,
    /// `PECR_CACHE_TTL_MS`, default 0: lifetime of the `search` file index
    /// when it is not watched (below); 0 rebuilds it on every call.
    pub search_index_ttl_ms: u64,
    /// Default true (not read from the environment): `search` answers from
    /// an in-memory index of the corpus's content, rebuilt when a watch of
    /// the root reports a change. Off, or when the watch cannot start, the
    /// index follows `search_index_ttl_ms`.
    pub search_index_watch: bool,
}

impl Default for AdaptersConfig {
    fn default() -> Self {
        Self {
            fs_corpus_path: PathBuf::from("fixtures/fs_corpus"),
            fs_version_cache_max_bytes: 2_097_152,
            fs_version_cache_max_total_bytes: 67_108_864,
            fs_version_cache_max_versions_per_object: 16,
            fs_diff_max_bytes: 32_768,
            pg_query_timeout_ms: 200,
            pg_max_rows: 200,
            pg_max_fields: 50,
            pg_max_groups: 200,
            search_index_ttl_ms: 0,
            search_index_watch: true,
        }
    }
}
