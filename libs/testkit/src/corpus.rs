//! A private copy of the fixture corpus, for tests that change files under
//! a running gateway without disturbing other tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::workspace_root;

static NEXT_CORPUS: AtomicU32 = AtomicU32::new(0);

/// A fresh copy of `fixtures/fs_corpus` in the temporary folder, named
/// `<prefix>-<pid>-<n>`, so every call in every test process gets its own.
pub fn scratch_corpus(prefix: &str) -> PathBuf {
    let corpus = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT_CORPUS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&corpus);
    copy_dir(&workspace_root().join("fixtures/fs_corpus"), &corpus);
    corpus
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|err| panic!("mkdir {}: {err}", to.display()));
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|err| panic!("read {}: {err}", from.display()))
    {
        let entry = entry.unwrap_or_else(|err| panic!("entry: {err}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|err| panic!("copy: {err}"));
        }
    }
}
