//! Checking a release directory offline with one public key: the files
//! against `SHA256SUMS`, the envelope's signature, the signed statement
//! against `SHA256SUMS`, and optionally the commit it claims.

use std::collections::BTreeMap;
use std::path::Path;

use pecr_signing::PublicKey;

use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::files::{is_object_id, read_text, sha256_file, tarballs};
use crate::statement::{BUILD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_TYPE, Statement};
use crate::sums::{self, Entry};
use crate::{PROVENANCE_FILE, SUMS_FILE};

/// `SHA256SUMS` is a line per file; the envelope a few kilobytes per file.
const SUMS_LIMIT: u64 = 1 << 20;
const PROVENANCE_LIMIT: u64 = 16 << 20;

/// A release that passed every check.
#[derive(Debug)]
pub struct Verified {
    pub artifacts: Vec<Entry>,
    pub statement: Statement,
}

/// Checks the release in `dir`; on failure, every problem found, each
/// naming the file or field at fault. `commit`, when given, is a hex
/// prefix (7 digits at least) the statement's commit must start with.
pub fn verify(dir: &Path, key: &PublicKey, commit: Option<&str>) -> Result<Verified, Vec<String>> {
    let mut problems = Vec::new();
    let sums = check_files(dir, &mut problems);
    let statement = match open_statement(dir, key) {
        Ok(statement) => statement,
        Err(problem) => {
            problems.push(problem);
            return Err(problems);
        }
    };
    check_statement(&statement, sums.as_deref(), commit, &mut problems);
    match sums {
        Some(artifacts) if problems.is_empty() => Ok(Verified {
            artifacts,
            statement,
        }),
        _ => Err(problems),
    }
}

/// Every `SHA256SUMS` line matches its file and every tarball is listed;
/// returns the entries when `SHA256SUMS` could be read.
fn check_files(dir: &Path, problems: &mut Vec<String>) -> Option<Vec<Entry>> {
    let entries = match read_text(&dir.join(SUMS_FILE), SUMS_LIMIT).and_then(|t| sums::parse(&t)) {
        Ok(entries) => entries,
        Err(err) => {
            problems.push(format!("{SUMS_FILE}: {err}"));
            return None;
        }
    };
    if entries.is_empty() {
        problems.push(format!("{SUMS_FILE}: lists no file"));
    }
    for entry in &entries {
        match sha256_file(&dir.join(&entry.name)) {
            Ok(actual) if actual == entry.sha256 => {}
            Ok(actual) => problems.push(format!(
                "{}: its SHA-256 is {actual}, {SUMS_FILE} says {}",
                entry.name, entry.sha256
            )),
            Err(err) => problems.push(format!("{}: listed in {SUMS_FILE}, but {err}", entry.name)),
        }
    }
    match tarballs(dir) {
        Ok(names) => {
            for name in names {
                if !entries.iter().any(|entry| entry.name == name) {
                    problems.push(format!("{name}: not listed in {SUMS_FILE}"));
                }
            }
        }
        Err(err) => problems.push(err),
    }
    Some(entries)
}

/// The statement, once the envelope's signature checks out.
fn open_statement(dir: &Path, key: &PublicKey) -> Result<Statement, String> {
    let text = read_text(&dir.join(PROVENANCE_FILE), PROVENANCE_LIMIT)
        .map_err(|err| format!("{PROVENANCE_FILE}: {err}"))?;
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(format!(
            "{PROVENANCE_FILE}: expected one DSSE envelope on one line"
        ));
    };
    let envelope: Envelope = serde_json::from_str(line)
        .map_err(|err| format!("{PROVENANCE_FILE}: not a DSSE envelope: {err}"))?;
    let payload = envelope
        .open(key)
        .map_err(|err| format!("{PROVENANCE_FILE}: the signature does not verify: {err}"))?;
    // The type is signed (it is part of the PAE), so this is the signer's claim.
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "{PROVENANCE_FILE}: the payload type is {:?}, not {IN_TOTO_PAYLOAD_TYPE:?}",
            envelope.payload_type
        ));
    }
    serde_json::from_slice(&payload).map_err(|err| {
        format!("{PROVENANCE_FILE}: the signed payload is not a PECR release statement: {err}")
    })
}

fn check_statement(
    statement: &Statement,
    sums: Option<&[Entry]>,
    commit: Option<&str>,
    problems: &mut Vec<String>,
) {
    let definition = &statement.predicate.build_definition;
    for (field, actual, expected) in [
        ("_type", &statement.statement_type, STATEMENT_TYPE),
        (
            "predicateType",
            &statement.predicate_type,
            SLSA_PROVENANCE_V1,
        ),
        ("buildType", &definition.build_type, BUILD_TYPE),
    ] {
        if actual != expected {
            problems.push(format!(
                "statement: {field} is {actual:?}, not {expected:?}"
            ));
        }
    }
    let mut subjects = BTreeMap::new();
    for subject in &statement.subject {
        let digest = subject.digest.get("sha256");
        if subjects.insert(subject.name.as_str(), digest).is_some() {
            problems.push(format!("statement: subject {} appears twice", subject.name));
        }
    }
    if let Some(sums) = sums {
        for entry in sums {
            match subjects.get(entry.name.as_str()) {
                None => problems.push(format!(
                    "{}: listed in {SUMS_FILE}, but not a subject of the signed statement",
                    entry.name
                )),
                Some(Some(digest)) if **digest == entry.sha256 => {}
                Some(digest) => problems.push(format!(
                    "{}: the signed statement gives SHA-256 {}, {SUMS_FILE} says {}",
                    entry.name,
                    digest.map_or("(none)", |d| d.as_str()),
                    entry.sha256
                )),
            }
        }
        for name in subjects.keys() {
            if !sums.iter().any(|entry| entry.name == *name) {
                problems.push(format!(
                    "{name}: a subject of the signed statement, but not listed in {SUMS_FILE}"
                ));
            }
        }
    }
    let source = &definition.external_parameters.source;
    let recorded = source.commit().unwrap_or_default();
    if !is_object_id(recorded) {
        problems.push(format!(
            "statement: the source commit {recorded:?} is not a full hex object id"
        ));
    } else if let Some(expected) = commit {
        let expected = expected.to_ascii_lowercase();
        if expected.len() < 7 || !recorded.starts_with(&expected) {
            problems.push(format!(
                "statement: the release was built from commit {recorded}, not {expected}"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::{BuildFacts, attest};
    use pecr_signing::SigningKey;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn release() -> (tempfile::TempDir, SigningKey) {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("a.tar.gz"), b"a").expect("write");
        std::fs::write(dir.path().join("b.tar.gz"), b"b").expect("write");
        let key = SigningKey::generate().expect("key");
        let facts = BuildFacts {
            commit: COMMIT.to_owned(),
            ..BuildFacts::default()
        };
        attest(dir.path(), &key, &facts).expect("attest");
        (dir, key)
    }

    fn problems(dir: &Path, key: &PublicKey, commit: Option<&str>) -> String {
        verify(dir, key, commit).expect_err("refused").join("\n")
    }

    #[test]
    fn a_fresh_release_verifies_and_names_its_commit() {
        let (dir, key) = release();
        let verified = verify(dir.path(), key.public_key(), Some("0123456")).expect("verifies");
        assert_eq!(verified.artifacts.len(), 2);
        let source = &verified
            .statement
            .predicate
            .build_definition
            .external_parameters
            .source;
        assert_eq!(source.commit(), Some(COMMIT));
        assert!(verify(dir.path(), key.public_key(), Some(COMMIT)).is_ok());
    }

    #[test]
    fn a_changed_or_unlisted_file_is_named() {
        let (dir, key) = release();
        std::fs::write(dir.path().join("a.tar.gz"), b"A").expect("write");
        std::fs::write(dir.path().join("c.tar.gz"), b"c").expect("write");
        let found = problems(dir.path(), key.public_key(), None);
        assert!(found.contains("a.tar.gz: its SHA-256 is"), "{found}");
        assert!(found.contains("c.tar.gz: not listed"), "{found}");
    }

    #[test]
    fn sums_must_equal_the_signed_subjects() {
        let (dir, key) = release();
        let sums_path = dir.path().join(SUMS_FILE);
        let text = std::fs::read_to_string(&sums_path).expect("read");
        // A consistent SHA256SUMS for a swapped file is still caught.
        std::fs::write(dir.path().join("b.tar.gz"), b"B").expect("write");
        let swapped = sha256_file(&dir.path().join("b.tar.gz")).expect("digest");
        let second = text.lines().nth(1).expect("two lines");
        let rewritten = text.replace(second, &format!("{swapped}  b.tar.gz"));
        std::fs::write(&sums_path, rewritten).expect("write");
        let found = problems(dir.path(), key.public_key(), None);
        assert!(
            found.contains("b.tar.gz: the signed statement gives"),
            "{found}"
        );
    }

    #[test]
    fn another_key_or_commit_is_refused() {
        let (dir, key) = release();
        let found = problems(
            dir.path(),
            SigningKey::generate().expect("key").public_key(),
            None,
        );
        assert!(found.contains("signature does not verify"), "{found}");
        let found = problems(dir.path(), key.public_key(), Some("fedcba9"));
        assert!(
            found.contains(&format!("built from commit {COMMIT}, not fedcba9")),
            "{found}"
        );
        let found = problems(dir.path(), key.public_key(), Some("0123"));
        assert!(found.contains("not 0123"), "{found}");
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let (dir, key) = release();
        let provenance = dir.path().join(PROVENANCE_FILE);
        for (text, expected) in [
            ("", "expected one DSSE envelope"),
            ("{}\n{}\n", "expected one DSSE envelope"),
            ("[1,2", "not a DSSE envelope"),
            (
                r#"{"payload":"%","payloadType":"x","signatures":[]}"#,
                "not base64",
            ),
            (
                r#"{"payload":"","payloadType":"x","signatures":[]}"#,
                "no signature",
            ),
        ] {
            std::fs::write(&provenance, text).expect("write");
            let found = problems(dir.path(), key.public_key(), None);
            assert!(found.contains(expected), "{text:?}: {found}");
        }
        // Validly signed, but not a statement.
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"[]", &key);
        let line = serde_json::to_string(&envelope).expect("json");
        std::fs::write(&provenance, line).expect("write");
        let found = problems(dir.path(), key.public_key(), None);
        assert!(found.contains("not a PECR release statement"), "{found}");
        std::fs::remove_file(dir.path().join(SUMS_FILE)).expect("remove");
        let found = problems(dir.path(), key.public_key(), None);
        assert!(found.contains("SHA256SUMS: cannot read it"), "{found}");
    }
}
