//! `SHA256SUMS` in the format `sha256sum` writes and `sha256sum -c` checks:
//! one `<64 lowercase hex>  <name>` line per file, sorted by name.

use crate::files::{is_hex, is_plain_name};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub sha256: String,
}

pub fn render(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|entry| format!("{}  {}\n", entry.sha256, entry.name))
        .collect()
}

/// The entries of a `SHA256SUMS` text; a line that is not an entry, a name
/// that would leave the directory and a name listed twice are errors
/// naming the line.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.is_empty() {
            continue;
        }
        // sha256sum marks binary mode with `*` in place of the second space.
        let parsed = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .filter(|(digest, name)| is_hex(digest, 64) && is_plain_name(name));
        let Some((digest, name)) = parsed else {
            return Err(format!(
                "line {number} is not `<64 lowercase hex digits>  <file name>`"
            ));
        };
        if entries.iter().any(|entry| entry.name == name) {
            return Err(format!("line {number} lists {name} a second time"));
        }
        entries.push(Entry {
            name: name.to_owned(),
            sha256: digest.to_owned(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn rendered_entries_parse_back() {
        let entries = vec![
            Entry {
                name: "a.tar.gz".to_owned(),
                sha256: A.to_owned(),
            },
            Entry {
                name: "b c.tar.gz".to_owned(),
                sha256: A.to_owned(),
            },
        ];
        let text = render(&entries);
        assert_eq!(text, format!("{A}  a.tar.gz\n{A}  b c.tar.gz\n"));
        assert_eq!(parse(&text), Ok(entries));
    }

    #[test]
    fn binary_mode_lines_and_blank_lines_are_read() {
        let parsed = parse(&format!("{A} *a.tar.gz\n\n")).expect("parses");
        assert_eq!(parsed[0].name, "a.tar.gz");
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line) in [
            (format!("{A}  a\nnonsense\n"), "line 2"),
            (format!("{}  a\n", &A[1..]), "line 1"),
            (format!("{}  a\n", A.to_uppercase()), "line 1"),
            (format!("{A}  ../etc/passwd\n"), "line 1"),
            (format!("{A}  a/b\n"), "line 1"),
            (format!("{A}  a\n{A}  a\n"), "line 2"),
            (format!("{A} a\n"), "line 1"),
        ] {
            let err = parse(&text).expect_err(&text);
            assert!(err.starts_with(line), "{text:?}: {err}");
        }
    }
}
