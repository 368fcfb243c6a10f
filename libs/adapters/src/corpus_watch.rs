//! Watching the corpus root: a recursive filesystem watch marks the search
//! index stale whenever something under the root changes, so the index is
//! rebuilt only after a change instead of on every search.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::corpus_index::RootId;
use crate::lock;

/// Bounds the paths kept between two searches of a busy corpus. Past it a
/// new directory is still watched, by notify itself, once reported.
const MAX_NEW_DIRS: usize = 4096;

/// What the watcher's event thread tells the index.
#[derive(Debug)]
struct Signals {
    /// Something under the root changed since the index last took the mark.
    changed: AtomicBool,
    /// The watcher reported an error: changes may go unreported from now on.
    failed: AtomicBool,
    /// Paths that may be directories created or moved in since the last
    /// rebuild, at most `MAX_NEW_DIRS`.
    new_dirs: Mutex<HashSet<PathBuf>>,
}

impl Signals {
    fn record(&self, event: notify::Result<Event>) {
        match event {
            Ok(event) if is_change(&event) => {
                if may_add_directory(&event.kind) {
                    let mut new_dirs = lock(&self.new_dirs);
                    for path in event.paths {
                        if new_dirs.len() < MAX_NEW_DIRS {
                            new_dirs.insert(path);
                        }
                    }
                }
                // After the paths: a rebuild that takes this mark finds them.
                self.changed.store(true, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(_) => {
                self.failed.store(true, Ordering::SeqCst);
                self.changed.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Opening and reading a file (the index's own reads, `fetch_span`'s)
/// changes nothing; closing one opened for writing may follow writes made
/// through a memory map, which report no modification of their own.
fn is_change(event: &Event) -> bool {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => event.need_rescan(),
        _ => true,
    }
}

fn may_add_directory(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(CreateKind::Folder | CreateKind::Any | CreateKind::Other)
            | EventKind::Modify(ModifyKind::Name(_))
    )
}

/// A recursive watch of one root.
pub(crate) struct CorpusWatch {
    root: RootId,
    watcher: RecommendedWatcher,
    signals: Arc<Signals>,
}

impl std::fmt::Debug for CorpusWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorpusWatch")
            .field("root", &self.root)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

impl CorpusWatch {
    /// Watches `root` and everything below it. Links are not followed:
    /// the index only follows links whose targets are inside the root, and
    /// those directories are watched under their real paths.
    pub(crate) fn start(root: RootId) -> notify::Result<Self> {
        let signals = Arc::new(Signals {
            changed: AtomicBool::new(true),
            failed: AtomicBool::new(false),
            new_dirs: Mutex::new(HashSet::new()),
        });
        let events = Arc::clone(&signals);
        let mut watcher = RecommendedWatcher::new(
            move |event| events.record(event),
            notify::Config::default().with_follow_symlinks(false),
        )?;
        watcher.watch(&root.path, RecursiveMode::Recursive)?;
        Ok(Self {
            root,
            watcher,
            signals,
        })
    }

    pub(crate) fn root(&self) -> &RootId {
        &self.root
    }

    /// Whether changes may have gone unreported.
    pub(crate) fn has_failed(&self) -> bool {
        self.signals.failed.load(Ordering::SeqCst)
    }

    /// Whether something changed since the last call, clearing the mark.
    /// Taken before a rebuild walks, a change during the walk marks the
    /// index again.
    pub(crate) fn take_change(&self) -> bool {
        self.signals.changed.swap(false, Ordering::SeqCst)
    }

    /// Watches the directories created since the last call, before the
    /// rebuild walks them. notify adds its own watch of a new directory only
    /// after reporting it, so without this a file written into it at once
    /// could be missed by a rebuild that ran in between.
    pub(crate) fn watch_new_dirs(&mut self) {
        let paths = std::mem::take(&mut *lock(&self.signals.new_dirs));
        for path in paths {
            let is_real_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            if !is_real_dir {
                continue;
            }
            match self.watcher.watch(&path, RecursiveMode::Recursive) {
                Ok(()) => {}
                // Gone again: its removal is a change of its own.
                Err(err) if is_not_found(&err) => {}
                Err(_) => self.signals.failed.store(true, Ordering::SeqCst),
            }
        }
    }
}

fn is_not_found(err: &notify::Error) -> bool {
    match &err.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// A loggable kind of a watcher error (never its paths or messages).
pub(crate) fn error_kind(err: &notify::Error) -> String {
    match &err.kind {
        notify::ErrorKind::Io(io) => format!("io {:?}", io.kind()),
        notify::ErrorKind::PathNotFound => "path not found".to_owned(),
        notify::ErrorKind::MaxFilesWatch => "watch limit reached".to_owned(),
        notify::ErrorKind::Generic(_) => "generic".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The watch of the current root, or why search has none.
#[derive(Debug)]
pub(crate) enum RootWatch {
    /// Turned off by configuration.
    Disabled,
    /// No root seen yet.
    NotStarted,
    Running(CorpusWatch),
    /// The watch of this root could not start or failed; another root (a
    /// replaced root) gets a new try.
    Failed(RootId),
}

impl RootWatch {
    pub(crate) fn new(enabled: bool) -> Self {
        if enabled {
            Self::NotStarted
        } else {
            Self::Disabled
        }
    }

    /// The healthy watch of `root`, started when `root` is new; None when
    /// search must do without one. Logs one warning per root whose watch
    /// cannot start or fails.
    pub(crate) fn of_root(&mut self, root: &RootId) -> Option<&mut CorpusWatch> {
        let start = match self {
            Self::Disabled => return None,
            Self::Failed(failed) => failed != root,
            Self::NotStarted => true,
            Self::Running(watch) if watch.root() != root => true,
            Self::Running(watch) => {
                if watch.has_failed() {
                    tracing::warn!(
                        "corpus watch failed; search walks the corpus as without a watch"
                    );
                    *self = Self::Failed(root.clone());
                }
                false
            }
        };
        if start {
            *self = match CorpusWatch::start(root.clone()) {
                Ok(watch) => Self::Running(watch),
                Err(err) => {
                    tracing::warn!(
                        error_kind = %error_kind(&err),
                        "corpus watch cannot start; search walks the corpus as without a watch"
                    );
                    Self::Failed(root.clone())
                }
            };
        }
        match self {
            Self::Running(watch) => Some(watch),
            _ => None,
        }
    }
}
