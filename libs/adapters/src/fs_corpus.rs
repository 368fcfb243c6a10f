//! The filesystem corpus (`source_system = "fs_corpus"`, gateway spec §5.1):
//! confining object ids to the root, reading files, and keeping the `search`
//! index (`corpus_index`) fresh, with a watch of the root (`corpus_watch`)
//! or by the TTL.
//!
//! Confinement (decision 1): besides refusing
//! targets whose canonical path leaves the root, [`FsCorpus::resolve`]
//! returns the canonical root-relative path, so the gateway can ask policy
//! about the file actually read and not only the prefix spelled in the
//! object id (a symlink under `public/` pointing into `restricted/`).

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pecr_errors::PecrError;
use tokio::time::Instant;

use crate::corpus_index::{CorpusIndex, IndexEntry, RootId};
use crate::corpus_watch::RootWatch;
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

#[derive(Debug)]
struct CachedIndex {
    /// On tokio's clock (the system's unless a test pauses it), so the TTL
    /// can be crossed with `advance`.
    built: Instant,
    root: RootId,
    /// Built under a healthy watch, with content; such an index is never
    /// served by the TTL rule.
    watched: bool,
    index: Arc<CorpusIndex>,
}

/// The search index and what keeps it fresh.
#[derive(Debug)]
struct IndexState {
    cached: Option<CachedIndex>,
    watch: RootWatch,
}

/// The corpus under one root.
#[derive(Debug)]
pub(crate) struct FsCorpus {
    root: PathBuf,
    index_ttl: Duration,
    index: Mutex<IndexState>,
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
pub(crate) fn relative_id(root: &Path, path: &Path) -> Option<String> {
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
    /// `watch`: keep the search index in memory, rebuilt after changes
    /// reported by a watch of the root (see `index_blocking`).
    pub(crate) fn new(root: PathBuf, index_ttl: Duration, watch: bool) -> Self {
        Self {
            root,
            index_ttl,
            index: Mutex::new(IndexState {
                cached: None,
                watch: RootWatch::new(watch),
            }),
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

    /// Runs `scan` over the index's entries. If `scan` reports a read
    /// failure (only content the index does not hold is read) the index is
    /// rebuilt and the scan repeated once; a second failure is 404 "object
    /// not found".
    pub(crate) async fn scan_index<T: Send + 'static>(
        self: &Arc<Self>,
        scan: impl Fn(&[IndexEntry]) -> Result<T, io::Error> + Send + 'static,
    ) -> Result<T, PecrError> {
        self.blocking(move |corpus| {
            let index = corpus.index_blocking(false)?;
            match scan(&index.entries) {
                Ok(found) => Ok(found),
                Err(_) => {
                    let index = corpus.index_blocking(true)?;
                    scan(&index.entries).map_err(|err| {
                        tracing::debug!(error_kind = ?err.kind(), "corpus file unreadable during search");
                        not_found("object not found")
                    })
                }
            }
        })
        .await
    }

    /// The search index of the current root (rebuilt when the canonical
    /// root, or the directory behind it, changes).
    ///
    /// With a healthy watch of the root the index holds every file's text
    /// and hashes and is rebuilt only after the watch reported a change, so
    /// the TTL plays no part. Without one (turned off, or the watch cannot
    /// start or failed) the index holds paths only, as the TTL rule wants:
    /// cached for the TTL, or rebuilt on every call when it is 0.
    fn index_blocking(&self, rebuild: bool) -> Result<Arc<CorpusIndex>, PecrError> {
        let root = RootId::of(self.canonical_root()?).map_err(|_| root_missing())?;
        let mut guard = crate::lock(&self.index);
        let state = &mut *guard;
        if let Some(watch) = state.watch.of_root(&root) {
            let changed = watch.take_change();
            if !rebuild
                && !changed
                && let Some(cached) = state.cached.as_ref()
                && cached.watched
                && cached.root == root
            {
                return Ok(Arc::clone(&cached.index));
            }
            watch.watch_new_dirs();
            if !watch.has_failed() {
                // A failed build leaves no index to serve.
                state.cached = None;
                let index = Arc::new(build(&root, CorpusIndex::with_content)?);
                state.cached = Some(CachedIndex {
                    built: Instant::now(),
                    root,
                    watched: true,
                    index: Arc::clone(&index),
                });
                return Ok(index);
            }
        }
        if !rebuild
            && !self.index_ttl.is_zero()
            && let Some(cached) = state.cached.as_ref()
            && !cached.watched
            && cached.root == root
            && cached.built.elapsed() < self.index_ttl
        {
            return Ok(Arc::clone(&cached.index));
        }
        state.cached = None;
        let index = Arc::new(build(&root, CorpusIndex::paths)?);
        if !self.index_ttl.is_zero() {
            state.cached = Some(CachedIndex {
                built: Instant::now(),
                root,
                watched: false,
                index: Arc::clone(&index),
            });
        }
        Ok(index)
    }
}

fn build(
    root: &RootId,
    index: impl FnOnce(&Path) -> io::Result<CorpusIndex>,
) -> Result<CorpusIndex, PecrError> {
    index(&root.path).map_err(|err| {
        tracing::warn!(error_kind = ?err.kind(), "corpus enumeration failed");
        enumeration_failed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus_index::FileContent;

    /// How long a test waits for a change to be reported.
    const EVENT_WAIT: Duration = Duration::from_secs(2);

    fn corpus_at(root: &Path, watch: bool, ttl: Duration) -> FsCorpus {
        FsCorpus::new(root.to_path_buf(), ttl, watch)
    }

    fn temp_corpus(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        for (object_id, text) in files {
            write(&root, object_id, text);
        }
        (dir, root)
    }

    fn write(root: &Path, object_id: &str, text: &str) {
        let path = root.join(object_id);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    fn index(corpus: &FsCorpus) -> Arc<CorpusIndex> {
        corpus.index_blocking(false).expect("index")
    }

    fn ids(index: &CorpusIndex) -> Vec<&str> {
        index.entries.iter().map(|e| e.object_id.as_str()).collect()
    }

    /// Whether the index holds `text` as the content of `object_id` (by
    /// the hash of its bytes: the index keeps terms and hashes, not text).
    fn holds(index: &CorpusIndex, object_id: &str, text: &str) -> bool {
        index
            .entries
            .iter()
            .find(|entry| entry.object_id == object_id)
            .is_some_and(|entry| match &entry.content {
                FileContent::Text(indexed) => {
                    indexed.version_id == pecr_contracts::sha256_hex(text)
                }
                _ => false,
            })
    }

    /// The first index within [`EVENT_WAIT`] for which `done` holds.
    fn eventually(corpus: &FsCorpus, done: impl Fn(&CorpusIndex) -> bool) -> Arc<CorpusIndex> {
        let deadline = std::time::Instant::now() + EVENT_WAIT;
        loop {
            let index = index(corpus);
            if done(&index) {
                return index;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no change seen within {EVENT_WAIT:?}: {:?}",
                ids(&index)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn watched_index_is_kept_until_something_changes() {
        let (_dir, root) = temp_corpus(&[("a.txt", "alpha\n"), ("d/b.txt", "beta\n")]);
        let corpus = corpus_at(&root, true, Duration::ZERO);
        let first = index(&corpus);
        assert_eq!(ids(&first), vec!["a.txt", "d/b.txt"]);
        assert!(holds(&first, "a.txt", "alpha\n"));
        // The index's own reads and other readers change nothing.
        std::fs::read(root.join("a.txt")).expect("read");
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            Arc::ptr_eq(&first, &index(&corpus)),
            "rebuilt without a change"
        );

        write(&root, "c.txt", "gamma\n");
        let second = eventually(&corpus, |index| ids(index).contains(&"c.txt"));
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(
            Arc::ptr_eq(&second, &index(&corpus)),
            "rebuilt without a change"
        );
    }

    #[test]
    fn watched_index_sees_new_removed_and_changed_files() {
        let (_dir, root) = temp_corpus(&[("a.txt", "alpha\n"), ("b.txt", "beta\n")]);
        let corpus = corpus_at(&root, true, Duration::ZERO);
        assert_eq!(ids(&index(&corpus)), vec!["a.txt", "b.txt"]);

        // A file written into a new directory at once.
        write(&root, "new/deeper/c.txt", "gamma\n");
        eventually(&corpus, |index| holds(index, "new/deeper/c.txt", "gamma\n"));
        // And one written there later, through the new directory's watch.
        write(&root, "new/deeper/d.txt", "delta\n");
        eventually(&corpus, |index| ids(index).contains(&"new/deeper/d.txt"));

        std::fs::remove_file(root.join("b.txt")).expect("remove");
        eventually(&corpus, |index| !ids(index).contains(&"b.txt"));

        write(&root, "a.txt", "alpha changed\n");
        let index = eventually(&corpus, |index| holds(index, "a.txt", "alpha changed\n"));
        let Some(FileContent::Text(text)) = index.entries.first().map(|e| &e.content) else {
            panic!("a.txt is first and text");
        };
        assert_eq!(
            text.version_id,
            pecr_contracts::sha256_hex("alpha changed\n")
        );
    }

    #[test]
    fn files_written_into_new_directories_during_searches_are_seen() {
        let (_dir, root) = temp_corpus(&[("a.txt", "alpha\n")]);
        let corpus = Arc::new(corpus_at(&root, true, Duration::ZERO));
        index(&corpus);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let searcher = {
            let (corpus, stop) = (Arc::clone(&corpus), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    index(&corpus);
                }
            })
        };
        for round in 0..40 {
            let object_id = format!("d{round}/e/f.txt");
            write(&root, &object_id, "phi\n");
            eventually(&corpus, |index| ids(index).contains(&object_id.as_str()));
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        searcher.join().expect("searcher");
    }

    #[test]
    fn watched_index_follows_file_links() {
        let (_dir, root) = temp_corpus(&[("real/a.txt", "alpha\n")]);
        std::os::unix::fs::symlink(root.join("real/a.txt"), root.join("link.txt")).expect("link");
        let corpus = corpus_at(&root, true, Duration::ZERO);
        assert_eq!(ids(&index(&corpus)), vec!["link.txt", "real/a.txt"]);
        write(&root, "real/a.txt", "alpha changed\n");
        eventually(&corpus, |index| holds(index, "link.txt", "alpha changed\n"));
    }

    #[test]
    fn a_replaced_root_is_indexed_anew_at_once() {
        let (_dir, base) = temp_corpus(&[("one/a.txt", "alpha\n"), ("two/b.txt", "beta\n")]);
        let root = base.join("root");
        std::os::unix::fs::symlink(base.join("one"), &root).expect("link");
        let corpus = corpus_at(&root, true, Duration::ZERO);
        assert_eq!(ids(&index(&corpus)), vec!["a.txt"]);

        // The canonical root changes: no event is needed.
        std::fs::remove_file(&root).expect("unlink");
        std::os::unix::fs::symlink(base.join("two"), &root).expect("link");
        assert_eq!(ids(&index(&corpus)), vec!["b.txt"]);

        // Same canonical path, another directory.
        std::fs::rename(base.join("two"), base.join("old")).expect("rename");
        write(&base, "two/c.txt", "gamma\n");
        assert_eq!(ids(&index(&corpus)), vec!["c.txt"]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_watch_the_ttl_rule_holds() {
        let (_dir, root) = temp_corpus(&[("a.txt", "alpha\n")]);
        let every_call = corpus_at(&root, false, Duration::ZERO);
        let first = index(&every_call);
        assert!(
            first
                .entries
                .iter()
                .all(|e| e.content == FileContent::Unread)
        );
        assert!(!Arc::ptr_eq(&first, &index(&every_call)));

        let ttl = Duration::from_secs(60);
        let timed = corpus_at(&root, false, ttl);
        let cached = index(&timed);
        write(&root, "b.txt", "beta\n");
        tokio::time::advance(ttl - Duration::from_millis(1)).await;
        assert!(Arc::ptr_eq(&cached, &index(&timed)), "cached for the TTL");
        assert_eq!(ids(&index(&every_call)), vec!["a.txt", "b.txt"]);
        // A read failure's rebuild bypasses the TTL.
        let rebuilt = timed.index_blocking(true).expect("index");
        assert_eq!(ids(&rebuilt), vec!["a.txt", "b.txt"]);

        // Once the TTL has passed, the next call builds anew.
        write(&root, "c.txt", "gamma\n");
        assert!(Arc::ptr_eq(&rebuilt, &index(&timed)), "a new TTL began");
        tokio::time::advance(ttl).await;
        assert_eq!(ids(&index(&timed)), vec!["a.txt", "b.txt", "c.txt"]);
    }

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
