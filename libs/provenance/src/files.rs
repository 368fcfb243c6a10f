//! The file operations both sides share: names, digests, bounded reads.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::TARBALL_SUFFIX;

/// A file name that stays inside the release directory: no separator, not
/// `.` or `..`, nothing `sha256sum` would escape.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| matches!(c, '/' | '\\') || c.is_control())
}

/// The hex SHA-256 of a file's bytes, read as a stream.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// A file's text, refused past `limit` bytes so a hostile file cannot fill
/// memory.
pub fn read_text(path: &Path, limit: u64) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|err| format!("cannot read it: {err}"))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read it: {err}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// The names of the tarballs in `dir`, sorted; anything that is not a
/// regular file is an error.
pub fn tarballs(dir: &Path) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(TARBALL_SUFFIX) {
            continue;
        }
        if !entry.path().is_file() {
            return Err(format!("{name}: not a regular file"));
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// Lowercase hex of exactly `len` digits.
pub fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A full git object id: SHA-1 (40 hex digits) or SHA-256 (64).
pub fn is_object_id(text: &str) -> bool {
    is_hex(text, 40) || is_hex(text, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_stay_in_the_directory() {
        for name in ["pecr-1.0.tar.gz", "a b", "ü.tar.gz"] {
            assert!(is_plain_name(name), "{name}");
        }
        for name in ["", ".", "..", "../x", "a/b", "a\\b", "a\nb", "a\tb"] {
            assert!(!is_plain_name(name), "{name:?}");
        }
    }

    #[test]
    fn a_text_past_its_limit_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        std::fs::write(&path, "12345").expect("write");
        assert_eq!(read_text(&path, 5), Ok("12345".to_owned()));
        assert!(read_text(&path, 4).is_err());
        std::fs::write(&path, [0xff, 0xfe]).expect("write");
        assert!(read_text(&path, 5).is_err());
    }
}
