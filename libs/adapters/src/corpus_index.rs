//! The `search` index: every regular file under the corpus root and, when a
//! watcher keeps the index fresh, each file's term counts with the hashes a
//! search ref needs, so a search neither walks the tree nor reads, cuts or
//! hashes files.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::fs_corpus::{check_object_id, relative_id};

/// Most file bytes the index reads into memory. A larger corpus is indexed
/// by path only and searched by reading files per call, so the gateway's
/// memory does not grow with the corpus (the same figure as the version
/// store's default total cap).
pub(crate) const MAX_CONTENT_BYTES: u64 = 64 * 1024 * 1024;

/// Which directory the root is: its canonical path and, on Unix, device and
/// inode, so a root deleted and made anew at the same path is a new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RootId {
    pub path: PathBuf,
    device: u64,
    inode: u64,
}

impl RootId {
    pub(crate) fn of(canonical_root: PathBuf) -> io::Result<Self> {
        let metadata = std::fs::metadata(&canonical_root)?;
        let (device, inode) = device_and_inode(&metadata);
        Ok(Self {
            path: canonical_root,
            device,
            inode,
        })
    }
}

#[cfg(unix)]
fn device_and_inode(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

#[cfg(not(unix))]
fn device_and_inode(_metadata: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// The terms of a text ([`pecr_contracts::terms`]): how often each occurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TermCounts {
    counts: HashMap<String, u32>,
    /// How many terms the text holds, repeats counted (BM25's length).
    pub length: u32,
}

impl TermCounts {
    pub(crate) fn of(text: &str) -> Self {
        let mut counts: HashMap<String, u32> = HashMap::new();
        let mut length: u32 = 0;
        for term in pecr_contracts::terms::terms(text) {
            length = length.saturating_add(1);
            let count = counts.entry(term).or_default();
            *count = count.saturating_add(1);
        }
        Self { counts, length }
    }

    /// How often `term` occurs.
    pub(crate) fn count(&self, term: &str) -> u32 {
        self.counts.get(term).copied().unwrap_or(0)
    }
}

/// What a search needs of one UTF-8 file: its terms to match and rank it,
/// the hashes of its ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedText {
    pub terms: TermCounts,
    /// `sha256_hex` of the bytes: the `version_id` of a whole-file `fetch_span`.
    pub version_id: String,
    /// The `content_hash` of a whole-file unit (of the canonical text).
    pub content_hash: String,
    /// The `text_span` of the whole file.
    pub whole_file: Value,
}

impl IndexedText {
    pub(crate) fn new(text: &str) -> Self {
        Self::with_terms(text, TermCounts::of(text))
    }

    /// `text` with its terms already counted: hashes it.
    pub(crate) fn with_terms(text: &str, terms: TermCounts) -> Self {
        let bytes = text.as_bytes();
        Self {
            terms,
            version_id: pecr_contracts::sha256_hex(bytes),
            content_hash: pecr_contracts::hashing::text_content_hash(text),
            whole_file: crate::operators::text_span(bytes, 0, bytes.len()),
        }
    }

    /// How often `term` occurs.
    pub(crate) fn count(&self, term: &str) -> u32 {
        self.terms.count(term)
    }
}

/// What the index holds of a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileContent {
    /// UTF-8 text: its term counts and hashes.
    Text(Arc<IndexedText>),
    /// Not UTF-8: search skips it.
    NotText,
    /// Not held (index by path only, over [`MAX_CONTENT_BYTES`], or
    /// unreadable when indexed): search reads the file when it gets to it.
    Unread,
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
    pub content: FileContent,
}

/// The files under one root, sorted by object id.
#[derive(Debug)]
pub(crate) struct CorpusIndex {
    pub entries: Vec<IndexEntry>,
}

impl CorpusIndex {
    /// Paths only: every file's content is [`FileContent::Unread`].
    pub(crate) fn paths(root: &Path) -> io::Result<Self> {
        Ok(Self {
            entries: walk(root)?,
        })
    }

    /// Paths and content, each file read once however many links reach it.
    /// Over [`MAX_CONTENT_BYTES`] in all, no content is kept.
    pub(crate) fn with_content(root: &Path) -> io::Result<Self> {
        let mut entries = walk(root)?;
        if !load_content(&mut entries, MAX_CONTENT_BYTES) {
            tracing::debug!("corpus exceeds the content index cap; search reads files per call");
            for entry in &mut entries {
                entry.content = FileContent::Unread;
            }
        }
        Ok(Self { entries })
    }
}

/// Fills in each entry's content; false as soon as the files read exceed
/// `cap` bytes in all.
fn load_content(entries: &mut [IndexEntry], cap: u64) -> bool {
    let mut loaded: HashMap<String, FileContent> = HashMap::new();
    let mut remaining = cap;
    for entry in entries.iter_mut() {
        if let Some(content) = loaded.get(&entry.canonical_id) {
            entry.content = content.clone();
            continue;
        }
        let content = match read_at_most(&entry.path, remaining) {
            Ok(Some(bytes)) => {
                remaining -= bytes.len() as u64;
                match String::from_utf8(bytes) {
                    Ok(text) => FileContent::Text(Arc::new(IndexedText::new(&text))),
                    Err(_) => FileContent::NotText,
                }
            }
            Ok(None) => return false,
            // Left unread: search reads it per call, with that read's error handling.
            Err(_) => FileContent::Unread,
        };
        loaded.insert(entry.canonical_id.clone(), content.clone());
        entry.content = content;
    }
    true
}

/// The file's bytes, or None when it holds more than `limit`.
fn read_at_most(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
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
                    content: FileContent::Unread,
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

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let canonical = std::fs::canonicalize(dir.path()).expect("canonical");
        (dir, canonical)
    }

    fn content_of<'a>(index: &'a CorpusIndex, object_id: &str) -> &'a FileContent {
        &index
            .entries
            .iter()
            .find(|entry| entry.object_id == object_id)
            .unwrap_or_else(|| panic!("{object_id} is indexed"))
            .content
    }

    #[test]
    fn content_holds_text_and_the_hashes_of_the_bytes() {
        let (_dir, root) = root();
        std::fs::create_dir(root.join("d")).expect("mkdir");
        std::fs::write(root.join("d/a.txt"), "one\r\ntwo\n").expect("write");
        std::fs::write(root.join("b.bin"), [0xff, 0xfe]).expect("write");
        std::os::unix::fs::symlink(root.join("d/a.txt"), root.join("link.txt")).expect("link");

        let index = CorpusIndex::with_content(&root).expect("index");
        let ids: Vec<&str> = index.entries.iter().map(|e| e.object_id.as_str()).collect();
        assert_eq!(ids, vec!["b.bin", "d/a.txt", "link.txt"]);
        let FileContent::Text(text) = content_of(&index, "d/a.txt") else {
            panic!("a.txt is text");
        };
        assert_eq!(
            (text.count("one"), text.count("two"), text.terms.length),
            (1, 1, 2)
        );
        assert_eq!(text.version_id, pecr_contracts::sha256_hex("one\r\ntwo\n"));
        // The content hash is of the canonical text, not of the bytes.
        assert_eq!(text.content_hash, pecr_contracts::sha256_hex("one\ntwo\n"));
        assert_eq!(text.whole_file["end_byte"], 9);
        assert_eq!(text.whole_file["line_end"], 3);
        // A link shares its target's content.
        assert_eq!(
            content_of(&index, "link.txt"),
            content_of(&index, "d/a.txt")
        );
        assert_eq!(content_of(&index, "b.bin"), &FileContent::NotText);

        let paths = CorpusIndex::paths(&root).expect("paths");
        assert!(
            paths
                .entries
                .iter()
                .all(|e| e.content == FileContent::Unread)
        );
    }

    #[test]
    fn content_over_the_cap_is_not_kept() {
        let (_dir, root) = root();
        std::fs::write(root.join("a.txt"), "12345").expect("write");
        std::fs::write(root.join("b.txt"), "67890").expect("write");
        let mut entries = walk(&root).expect("walk");
        assert!(load_content(&mut entries, 10), "10 bytes fit in 10");
        let mut entries = walk(&root).expect("walk");
        assert!(!load_content(&mut entries, 9), "10 bytes exceed 9");
        assert_eq!(read_at_most(&root.join("a.txt"), 4).expect("read"), None);
        assert_eq!(
            read_at_most(&root.join("a.txt"), 5).expect("read"),
            Some(b"12345".to_vec())
        );
    }

    #[test]
    fn a_root_made_anew_at_the_same_path_is_another_root() {
        let (dir, root) = root();
        let corpus = root.join("corpus");
        std::fs::create_dir(&corpus).expect("mkdir");
        let first = RootId::of(corpus.clone()).expect("root");
        assert_eq!(RootId::of(corpus.clone()).expect("root"), first);
        std::fs::rename(&corpus, root.join("old")).expect("rename");
        std::fs::create_dir(&corpus).expect("mkdir");
        assert_ne!(RootId::of(corpus).expect("root"), first);
        drop(dir);
    }
}
