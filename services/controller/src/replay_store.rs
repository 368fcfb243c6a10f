//! Where replay bundles and evaluations live (spec 30 §12–13, decision 6):
//! PostgreSQL through ledger-writer by default, so any controller replica
//! serves any replay, or JSON files under `PECR_REPLAY_STORE_DIR`.
//! Both verify each bundle's hash on the way out; a bundle whose hash does
//! not match does not exist.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pecr_contracts::ids::{is_safe_store_id, new_ulid};
use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::{self, ledger_service_client::LedgerServiceClient};
use pecr_replay::{EngineMode, ReplayBundle, ReplayEvaluationResult};
use pecr_server::{Credentialed, TracedChannel};
use serde_json::Value;
use tonic::transport::Channel;

use crate::config::ReplayBackend;

/// Whose records these are.
#[derive(Debug, Clone)]
pub struct PrincipalKey {
    pub tenant_id: String,
    pub principal_id_hash: String,
}

#[derive(Clone)]
pub enum ReplayStore {
    Ledger {
        client: LedgerServiceClient<Credentialed<TracedChannel>>,
        timeout: Duration,
    },
    Files(PathBuf),
}

/// A fixed client message; the cause is logged as a fixed reason (and an
/// I/O error kind), never as error text that could carry paths or data.
fn store_error(reason: &'static str) -> PecrError {
    tracing::warn!(
        event = "controller.replay_store_error",
        reason,
        "replay store failed"
    );
    PecrError::new(ErrorCode::ReplayStore, "replay store unavailable")
}

fn io_error(reason: &'static str, err: &std::io::Error) -> PecrError {
    tracing::warn!(
        event = "controller.replay_store_error",
        reason,
        io_kind = ?err.kind(),
        "replay store failed"
    );
    PecrError::new(ErrorCode::ReplayStore, "replay store unavailable")
}

fn replay_not_found() -> PecrError {
    PecrError::new(ErrorCode::ReplayNotFound, "replay not found")
}

fn evaluation_not_found() -> PecrError {
    PecrError::new(ErrorCode::EvaluationNotFound, "evaluation not found")
}

/// Not-found answers pass through; every other ledger failure is a store error.
fn ledger_error(status: &tonic::Status) -> PecrError {
    match PecrError::from_status(status) {
        Some(error)
            if matches!(
                error.code,
                ErrorCode::ReplayNotFound | ErrorCode::EvaluationNotFound
            ) =>
        {
            error
        }
        Some(error) => {
            tracing::warn!(
                event = "controller.replay_store_error",
                reason = "ledger refused",
                code = error.code.as_str(),
                "replay store failed"
            );
            PecrError::new(ErrorCode::ReplayStore, "replay store unavailable")
        }
        None => {
            tracing::warn!(
                event = "controller.replay_store_error",
                reason = "ledger unreachable",
                grpc_code = ?status.code(),
                "replay store failed"
            );
            PecrError::new(ErrorCode::ReplayStore, "replay store unavailable")
        }
    }
}

fn parse_bundle(text: &str) -> Result<ReplayBundle, PecrError> {
    let value: Value =
        serde_json::from_str(text).map_err(|_| store_error("a stored bundle is not JSON"))?;
    ReplayBundle::from_json_verified(&value).map_err(|err| {
        if err.is_hash_mismatch() {
            replay_not_found()
        } else {
            store_error("a stored bundle is unparsable")
        }
    })
}

impl ReplayStore {
    /// `token` is ledger-writer's controller token, presented on every call.
    pub fn new(
        backend: &ReplayBackend,
        ledger: Channel,
        token: Option<&str>,
        timeout: Duration,
    ) -> Self {
        match backend {
            ReplayBackend::Ledger => Self::Ledger {
                client: LedgerServiceClient::new(pecr_server::credentialed(
                    pecr_server::traced(ledger),
                    token,
                )),
                timeout,
            },
            ReplayBackend::Files(dir) => Self::Files(dir.clone()),
        }
    }

    /// Creates the file store's directories (`ERR_REPLAY_STORE_INIT` at start-up).
    pub fn init(&self) -> std::io::Result<()> {
        if let Self::Files(dir) = self {
            std::fs::create_dir_all(dir.join("replays"))?;
            std::fs::create_dir_all(dir.join("evaluations"))?;
        }
        Ok(())
    }

    fn request<T>(body: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        request.set_timeout(timeout);
        request
    }

    /// True when replays live in the ledger (the gateway then records each
    /// run's bundle with its finalize).
    pub fn is_ledger(&self) -> bool {
        matches!(self, Self::Ledger { .. })
    }

    pub async fn store_bundle(
        &self,
        owner: &PrincipalKey,
        bundle: &ReplayBundle,
    ) -> Result<(), PecrError> {
        let json = bundle.to_json();
        match self {
            Self::Ledger { client, timeout } => {
                let request = v1::StoreReplayBundleRequest {
                    tenant_id: owner.tenant_id.clone(),
                    bundle: json.to_string(),
                };
                client
                    .clone()
                    .store_replay_bundle(Self::request(request, *timeout))
                    .await
                    .map_err(|status| ledger_error(&status))?;
                Ok(())
            }
            Self::Files(dir) => {
                let path = dir
                    .join("replays")
                    .join(format!("{}.json", bundle.metadata.run_id));
                write_atomically(&path, &json).await
            }
        }
    }

    /// The caller's bundle `run_id`; 404 when unsafe, missing, another's or tampered with.
    pub async fn load_bundle(
        &self,
        owner: &PrincipalKey,
        run_id: &str,
    ) -> Result<ReplayBundle, PecrError> {
        if !is_safe_store_id(run_id) {
            return Err(replay_not_found());
        }
        let bundle = match self {
            Self::Ledger { client, timeout } => {
                let request = v1::LoadReplayBundleRequest {
                    tenant_id: owner.tenant_id.clone(),
                    principal_id_hash: owner.principal_id_hash.clone(),
                    run_id: run_id.to_owned(),
                };
                let reply = client
                    .clone()
                    .load_replay_bundle(Self::request(request, *timeout))
                    .await
                    .map_err(|status| ledger_error(&status))?;
                parse_bundle(&reply.into_inner().bundle)?
            }
            Self::Files(dir) => {
                let path = dir.join("replays").join(format!("{run_id}.json"));
                let text = read_optional(&path).await?.ok_or_else(replay_not_found)?;
                parse_bundle(&text)?
            }
        };
        if bundle.metadata.principal_id_hash != owner.principal_id_hash {
            return Err(replay_not_found());
        }
        Ok(bundle)
    }

    /// The caller's bundles among `run_ids` by run id, read in one store
    /// operation (one ledger call). Ids that are unsafe, missing, another
    /// principal's or tampered with have no entry; an unparsable stored
    /// bundle fails the whole read.
    pub async fn load_bundles(
        &self,
        owner: &PrincipalKey,
        run_ids: &[String],
    ) -> Result<HashMap<String, ReplayBundle>, PecrError> {
        let wanted: BTreeSet<&str> = run_ids
            .iter()
            .map(String::as_str)
            .filter(|id| is_safe_store_id(id))
            .collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let texts = match self {
            Self::Ledger { client, timeout } => {
                let request = v1::LoadReplayBundlesRequest {
                    tenant_id: owner.tenant_id.clone(),
                    principal_id_hash: owner.principal_id_hash.clone(),
                    run_ids: wanted.iter().map(|id| (*id).to_owned()).collect(),
                };
                client
                    .clone()
                    .load_replay_bundles(Self::request(request, *timeout))
                    .await
                    .map_err(|status| ledger_error(&status))?
                    .into_inner()
                    .bundles
            }
            Self::Files(dir) => {
                let mut texts = Vec::new();
                for run_id in &wanted {
                    let path = dir.join("replays").join(format!("{run_id}.json"));
                    texts.extend(read_optional(&path).await?);
                }
                texts
            }
        };
        let mut found = HashMap::new();
        for text in &texts {
            let bundle = match parse_bundle(text) {
                Ok(bundle) => bundle,
                Err(err) if err.code == ErrorCode::ReplayNotFound => continue,
                Err(err) => return Err(err),
            };
            if bundle.metadata.principal_id_hash == owner.principal_id_hash
                && wanted.contains(bundle.metadata.run_id.as_str())
            {
                found.insert(bundle.metadata.run_id.clone(), bundle);
            }
        }
        Ok(found)
    }

    /// The caller's newest `limit` valid bundles, newest first.
    pub async fn list_bundles(
        &self,
        owner: &PrincipalKey,
        engine_mode: Option<EngineMode>,
        limit: u32,
    ) -> Result<Vec<ReplayBundle>, PecrError> {
        let texts = match self {
            Self::Ledger { client, timeout } => {
                let request = v1::ListReplayBundlesRequest {
                    tenant_id: owner.tenant_id.clone(),
                    principal_id_hash: owner.principal_id_hash.clone(),
                    engine_mode: engine_mode.map(|mode| mode.as_str().to_owned()),
                    limit,
                };
                client
                    .clone()
                    .list_replay_bundles(Self::request(request, *timeout))
                    .await
                    .map_err(|status| ledger_error(&status))?
                    .into_inner()
                    .bundles
            }
            Self::Files(dir) => read_json_files(&dir.join("replays")).await?,
        };
        let mut bundles: Vec<ReplayBundle> = texts
            .iter()
            .filter_map(|text| parse_bundle(text).ok())
            .filter(|bundle| bundle.metadata.principal_id_hash == owner.principal_id_hash)
            .filter(|bundle| engine_mode.is_none_or(|mode| bundle.metadata.engine_mode == mode))
            .collect();
        bundles.sort_by(|a, b| {
            b.metadata
                .recorded_at_unix_ms
                .cmp(&a.metadata.recorded_at_unix_ms)
        });
        bundles.truncate(limit as usize);
        Ok(bundles)
    }

    pub async fn store_evaluation(
        &self,
        owner: &PrincipalKey,
        evaluation: &ReplayEvaluationResult,
    ) -> Result<(), PecrError> {
        let json = serde_json::to_value(evaluation)
            .map_err(|_| store_error("evaluation not encodable"))?;
        match self {
            Self::Ledger { client, timeout } => {
                let request = v1::StoreEvaluationRequest {
                    tenant_id: owner.tenant_id.clone(),
                    evaluation: json.to_string(),
                };
                client
                    .clone()
                    .store_evaluation(Self::request(request, *timeout))
                    .await
                    .map_err(|status| ledger_error(&status))?;
                Ok(())
            }
            Self::Files(dir) => {
                let path = dir
                    .join("evaluations")
                    .join(format!("{}.json", evaluation.evaluation_id));
                write_atomically(&path, &json).await
            }
        }
    }

    pub async fn load_evaluation(
        &self,
        owner: &PrincipalKey,
        evaluation_id: &str,
    ) -> Result<ReplayEvaluationResult, PecrError> {
        if !is_safe_store_id(evaluation_id) {
            return Err(evaluation_not_found());
        }
        let text = match self {
            Self::Ledger { client, timeout } => {
                let request = v1::LoadEvaluationRequest {
                    tenant_id: owner.tenant_id.clone(),
                    principal_id_hash: owner.principal_id_hash.clone(),
                    evaluation_id: evaluation_id.to_owned(),
                };
                client
                    .clone()
                    .load_evaluation(Self::request(request, *timeout))
                    .await
                    .map_err(|status| ledger_error(&status))?
                    .into_inner()
                    .evaluation
            }
            Self::Files(dir) => {
                let path = dir
                    .join("evaluations")
                    .join(format!("{evaluation_id}.json"));
                read_optional(&path)
                    .await?
                    .ok_or_else(evaluation_not_found)?
            }
        };
        let evaluation: ReplayEvaluationResult = serde_json::from_str(&text)
            .map_err(|_| store_error("a stored evaluation is unparsable"))?;
        if evaluation.principal_id_hash != owner.principal_id_hash {
            return Err(evaluation_not_found());
        }
        Ok(evaluation)
    }

    /// Deletes records older than `retention_days` (0 keeps everything).
    pub async fn prune(&self, retention_days: u32) -> Result<(), PecrError> {
        if retention_days == 0 {
            return Ok(());
        }
        match self {
            Self::Ledger { client, timeout } => {
                let request = v1::PruneReplaysRequest { retention_days };
                client
                    .clone()
                    .prune_replays(Self::request(request, *timeout))
                    .await
                    .map_err(|status| ledger_error(&status))?;
                Ok(())
            }
            Self::Files(dir) => {
                let max_age = Duration::from_secs(u64::from(retention_days) * 86_400);
                for sub in ["replays", "evaluations"] {
                    prune_dir(&dir.join(sub), max_age).await?;
                }
                Ok(())
            }
        }
    }
}

/// Pretty JSON written to a temporary name in the same directory, then renamed.
async fn write_atomically(path: &Path, json: &Value) -> Result<(), PecrError> {
    let text =
        serde_json::to_string_pretty(json).map_err(|_| store_error("record not encodable"))?;
    let tmp = path.with_extension(format!("json.tmp-{}", new_ulid()));
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|err| io_error("write failed", &err))?;
    if tokio::fs::rename(&tmp, path).await.is_err() {
        let _ = tokio::fs::remove_file(path).await;
        if let Err(err) = tokio::fs::rename(&tmp, path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_error("rename failed", &err));
        }
    }
    Ok(())
}

async fn read_optional(path: &Path) -> Result<Option<String>, PecrError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error("read failed", &err)),
    }
}

/// Every `*.json` file of a directory (unreadable entries are skipped).
async fn read_json_files(dir: &Path) -> Result<Vec<String>, PecrError> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|err| io_error("list failed", &err))?;
    let mut texts = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|err| io_error("list failed", &err))?
    {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "json")
            && let Ok(text) = tokio::fs::read_to_string(&path).await
        {
            texts.push(text);
        }
    }
    Ok(texts)
}

async fn prune_dir(dir: &Path, max_age: Duration) -> Result<(), PecrError> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|err| io_error("prune failed", &err))?;
    let now = SystemTime::now();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|err| io_error("prune failed", &err))?
    {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let modified = entry.metadata().await.and_then(|meta| meta.modified());
        if let Ok(modified) = modified
            && now.duration_since(modified).is_ok_and(|age| age > max_age)
        {
            tokio::fs::remove_file(&path)
                .await
                .map_err(|err| io_error("prune failed", &err))?;
        }
    }
    Ok(())
}
