//! The filesystem corpus (`source_system = "fs_corpus"`, gateway spec §5.1):
//! confining object ids to the root, reading files, and the `search` index.
//!
//! Deliberate change (decision 1, reference quirk 5): besides refusing
//! targets whose canonical path leaves the root, [`FsCorpus::resolve`]
//! returns the canonical root-relative path, so the gateway can ask policy
//! about the file actually read and not only the prefix spelled in the
//! object id (a symlink under `public/` pointing into `restricted/`).

use std::collections::HashSet;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pecr_errors::PecrError;

use crate::errors::{not_found, task_failed};

/// The `source_system` of corpus evidence.
pub const SOURCE_SYSTEM: &str = "fs_corpus";

/// A confined, existing corpus object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedObject {
    /// Canonical absolute path.
    pub path: PathBuf,
    /// Canonical path relative to the canonical root, `/`-separated.
    pub canonical_id: String,
}

/// One regular file found under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// The root-relative path as walked (symlinked directories keep the
    /// link's name), `/`-separated.
    pub object_id: String,
    /// Canonical absolute path.
    pub path: PathBuf,
    /// The canonical root-relative path of the file it resolves to: the id
    /// `fetch_span` asks policy about.
    pub canonical_id: String,
}

#[derive(Debug)]
struct CachedIndex {
    built: Instant,
    root: PathBuf,
    entries: Arc<Vec<IndexEntry>>,
}

/// The corpus under one root.
#[derive(Debug)]
pub(crate) struct FsCorpus {
    root: PathBuf,
    index_ttl: Duration,
    index: Mutex<Option<CachedIndex>>,
}

/// "object_id must be a relative path without parent components" for an
/// absolute id, a `..`, a root or prefix component, or a leading `.`
/// component. Interior `.` components are accepted.
pub fn check_object_id(object_id: &str) -> Result<(), PecrError> {
    let path = Path::new(object_id);
    let safe = !path.is_absolute()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if safe {
        Ok(())
    } else {
        Err(PecrError::invalid_params(
            "object_id must be a relative path without parent components",
        ))
    }
}

fn root_missing() -> PecrError {
    PecrError::internal("filesystem corpus path does not exist")
}

fn enumeration_failed() -> PecrError {
    PecrError::internal("failed to enumerate filesystem corpus")
}

/// `/`-joined components of `path` below `root`, when it is below it.
fn relative_id(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|component| match component {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect();
    Some(parts?.join("/"))
}

impl FsCorpus {
    pub(crate) fn new(root: PathBuf, index_ttl: Duration) -> Self {
        Self {
            root,
            index_ttl,
            index: Mutex::new(None),
        }
    }

    fn canonical_root(&self) -> Result<PathBuf, PecrError> {
        std::fs::canonicalize(&self.root).map_err(|_| root_missing())
    }

    /// Confines `object_id` (already trimmed) to the root. Errors, in order:
    /// bad shape (400), root missing (500), target missing (404 "object not
    /// found"), canonical target outside the root (400 "object_id escapes
    /// corpus root").
    fn resolve_blocking(&self, object_id: &str) -> Result<ResolvedObject, PecrError> {
        check_object_id(object_id)?;
        let root = self.canonical_root()?;
        let path = std::fs::canonicalize(root.join(object_id)).map_err(|err| {
            tracing::debug!(error_kind = ?err.kind(), "corpus object cannot be resolved");
            not_found("object not found")
        })?;
        let canonical_id = relative_id(&root, &path)
            .ok_or_else(|| PecrError::invalid_params("object_id escapes corpus root"))?;
        Ok(ResolvedObject { path, canonical_id })
    }

    fn read_blocking(&self, object_id: &str) -> Result<Vec<u8>, PecrError> {
        let resolved = self.resolve_blocking(object_id)?;
        std::fs::read(&resolved.path).map_err(|err| {
            tracing::debug!(error_kind = ?err.kind(), "corpus object cannot be read");
            not_found("object not found")
        })
    }

    /// Runs filesystem work off the async threads.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&FsCorpus) -> Result<T, PecrError> + Send + 'static,
    ) -> Result<T, PecrError> {
        let corpus = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&corpus))
            .await
            .map_err(|_| task_failed())?
    }

    /// Confines and resolves an object id (see `resolve_blocking`).
    pub(crate) async fn resolve(
        self: &Arc<Self>,
        object_id: &str,
    ) -> Result<ResolvedObject, PecrError> {
        let object_id = object_id.to_owned();
        self.blocking(move |corpus| corpus.resolve_blocking(&object_id))
            .await
    }

    /// The current bytes of a confined object; a read failure (e.g. a
    /// directory) is 404 "object not found".
    pub(crate) async fn read(self: &Arc<Self>, object_id: &str) -> Result<Vec<u8>, PecrError> {
        let object_id = object_id.to_owned();
        self.blocking(move |corpus| corpus.read_blocking(&object_id))
            .await
    }

    /// Runs `scan` over the file index. If `scan` reports a read failure the
    /// index is rebuilt and the scan repeated once; a second failure is 404
    /// "object not found".
    pub(crate) async fn scan_index<T: Send + 'static>(
        self: &Arc<Self>,
        scan: impl Fn(&[IndexEntry]) -> Result<T, io::Error> + Send + 'static,
    ) -> Result<T, PecrError> {
        self.blocking(move |corpus| {
            let entries = corpus.index_blocking(false)?;
            match scan(&entries) {
                Ok(found) => Ok(found),
                Err(_) => {
                    let entries = corpus.index_blocking(true)?;
                    scan(&entries).map_err(|err| {
                        tracing::debug!(error_kind = ?err.kind(), "corpus file unreadable during search");
                        not_found("object not found")
                    })
                }
            }
        })
        .await
    }

    /// The index of regular files, cached for the index TTL (0 = rebuilt
    /// on every call) and rebuilt when the canonical root changes.
    fn index_blocking(&self, rebuild: bool) -> Result<Arc<Vec<IndexEntry>>, PecrError> {
        let root = self.canonical_root()?;
        let mut cached = self
            .index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !rebuild
            && !self.index_ttl.is_zero()
            && let Some(index) = cached.as_ref()
            && index.root == root
            && index.built.elapsed() < self.index_ttl
        {
            return Ok(Arc::clone(&index.entries));
        }
        let entries = Arc::new(walk(&root).map_err(|err| {
            tracing::warn!(error_kind = ?err.kind(), "corpus enumeration failed");
            enumeration_failed()
        })?);
        *cached = if self.index_ttl.is_zero() {
            None
        } else {
            Some(CachedIndex {
                built: Instant::now(),
                root,
                entries: Arc::clone(&entries),
            })
        };
        Ok(entries)
    }
}

/// Regular files under `root` (canonical), sorted by object id. File links
/// are kept when their target stays under the root. Each directory is
/// walked once, under its real path: links to directories are followed only
/// when their (in-root) target was not reached otherwise, which makes the
/// index independent of directory listing order. Entries whose relative path
/// is not a valid object id are skipped.
fn walk(root: &Path) -> io::Result<Vec<IndexEntry>> {
    let mut entries = Vec::new();
    let mut visited: HashSet<PathBuf> = HashSet::from([root.to_path_buf()]);
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    let mut linked_dirs: Vec<(String, PathBuf)> = Vec::new();
    loop {
        let Some((dir, prefix)) = pending.pop() else {
            // Real directories are exhausted: try the links, in name order.
            linked_dirs.sort();
            let mut followed = false;
            for (object_id, target) in std::mem::take(&mut linked_dirs) {
                if visited.insert(target.clone()) {
                    pending.push((target, format!("{object_id}/")));
                    followed = true;
                }
            }
            if followed {
                continue;
            }
            break;
        };
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let object_id = format!("{prefix}{name}");
            if check_object_id(&object_id).is_err() {
                continue;
            }
            let is_link = entry.file_type()?.is_symlink();
            let Ok(canonical) = std::fs::canonicalize(entry.path()) else {
                continue; // dangling link
            };
            if !canonical.starts_with(root) {
                continue;
            }
            let Ok(metadata) = std::fs::metadata(&canonical) else {
                continue;
            };
            if metadata.is_dir() {
                if is_link {
                    linked_dirs.push((object_id, canonical));
                } else if visited.insert(canonical.clone()) {
                    pending.push((canonical, format!("{object_id}/")));
                }
            } else if metadata.is_file() {
                let Some(canonical_id) = relative_id(root, &canonical) else {
                    continue;
                };
                entries.push(IndexEntry {
                    object_id,
                    path: canonical,
                    canonical_id,
                });
            }
        }
    }
    entries.sort_by(|a, b| a.object_id.cmp(&b.object_id));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_id_shapes() {
        for good in [
            "public/public_1.txt",
            "public/./public_1.txt",
            "a",
            ".hidden/x",
            "a/b/",
        ] {
            assert!(check_object_id(good).is_ok(), "{good}");
        }
        for bad in [
            "../restricted/restricted_1.txt",
            "public/../restricted/restricted_1.txt",
            "/etc/passwd",
            "./public/public_1.txt",
            "..",
            ".",
        ] {
            let err = check_object_id(bad).err().map(|e| e.message);
            assert_eq!(
                err.as_deref(),
                Some("object_id must be a relative path without parent components"),
                "{bad}"
            );
        }
    }

    #[test]
    fn relative_ids_use_slashes() {
        let root = Path::new("/srv/corpus");
        assert_eq!(
            relative_id(root, Path::new("/srv/corpus/public/a.txt")).as_deref(),
            Some("public/a.txt")
        );
        assert_eq!(relative_id(root, Path::new("/srv/other/a.txt")), None);
    }
}
