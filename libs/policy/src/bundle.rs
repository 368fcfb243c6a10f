//! Reading a policy bundle directory and hashing it.
//!
//! A bundle file is any regular file whose name ends in `.rego`, or is
//! exactly `.manifest`, anywhere under the directory. Hidden directories
//! (name starting with `.`) and symlinked directories are not walked, so a
//! checkout's `.git` or a link loop never changes the hash. Other files
//! (README.md, …) are not part of the bundle; in particular data documents
//! (`data.json`) are not loaded: the policy must be self-contained.

use std::io;
use std::path::Path;

use pecr_contracts::{hash_canonical_json, sha256_hex};
use serde_json::{Map, Value};

/// One bundle file: its `/`-separated path relative to the bundle root.
#[derive(Debug, Clone)]
pub(crate) struct BundleFile {
    pub relative_path: String,
    pub bytes: Vec<u8>,
}

impl BundleFile {
    pub fn is_rego(&self) -> bool {
        self.relative_path.ends_with(".rego")
    }
}

/// The bundle hash of `dir`, as a 64-char lowercase hex string.
///
/// Recipe: list the bundle files (see the module doc), build the JSON object
/// `{relative_path: sha256_hex(file bytes)}` with `/` as the path separator,
/// and take `hash_canonical_json` of it (sha256 of the canonical JSON, keys
/// sorted bytewise). The result depends only on paths and contents, not on
/// timestamps, permissions or directory order. An empty bundle hashes `{}`.
pub fn bundle_hash(dir: &Path) -> io::Result<String> {
    Ok(hash_files(&read_bundle(dir)?))
}

pub(crate) fn hash_files(files: &[BundleFile]) -> String {
    let digests: Map<String, Value> = files
        .iter()
        .map(|file| {
            (
                file.relative_path.clone(),
                Value::String(sha256_hex(&file.bytes)),
            )
        })
        .collect();
    hash_canonical_json(&Value::Object(digests))
}

/// Reads every bundle file under `dir`, sorted by relative path.
pub(crate) fn read_bundle(dir: &Path) -> io::Result<Vec<BundleFile>> {
    let mut files = Vec::new();
    walk(dir, "", &mut files)?;
    files.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, files: &mut Vec<BundleFile>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|name| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bundle file name is not UTF-8: {name:?}"),
            )
        })?;
        let relative_path = format!("{prefix}{name}");
        // file_type() does not follow symlinks; metadata() below does, so a
        // symlinked file counts by its target's bytes.
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if !name.starts_with('.') {
                walk(&entry.path(), &format!("{relative_path}/"), files)?;
            }
            continue;
        }
        let is_bundle_file = name.ends_with(".rego") || name == ".manifest";
        if is_bundle_file && std::fs::metadata(entry.path())?.is_file() {
            let bytes = std::fs::read(entry.path())?;
            files.push(BundleFile {
                relative_path,
                bytes,
            });
        }
    }
    Ok(())
}
