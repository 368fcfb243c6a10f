//! Where a value sits in a request body, so a refusal can name it
//! (`budget.max_bytes`, `claims[0].status`). Built on the stack while
//! decoding and rendered only when a value is refused.

use std::fmt::Write as _;

use super::DecodeError;

/// A client's member name longer than this is cut in error paths, so a
/// refusal never reflects a long piece of the body.
const MAX_KEY_CHARS: usize = 64;

#[derive(Debug, Clone, Copy)]
pub(super) enum Path<'a> {
    /// The body itself.
    Root,
    /// A member of an object (a field or a map key), as the client spelt it.
    Member(&'a Path<'a>, &'a str),
    /// An item of an array.
    Item(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub fn member(&'a self, key: &'a str) -> Self {
        Path::Member(self, key)
    }

    pub fn item(&'a self, index: usize) -> Self {
        Path::Item(self, index)
    }

    /// The JSON path, or `None` for the body itself.
    pub fn render(&self) -> Option<String> {
        let mut out = String::new();
        self.write(&mut out);
        (!out.is_empty()).then_some(out)
    }

    fn write(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Member(parent, key) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                let mut chars = key.chars();
                out.extend(chars.by_ref().take(MAX_KEY_CHARS));
                if chars.next().is_some() {
                    out.push('…');
                }
            }
            Path::Item(parent, index) => {
                parent.write(out);
                let _ = write!(out, "[{index}]");
            }
        }
    }

    /// A refusal of the value at this path.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::new(self.render(), reason)
    }

    pub fn refuse<T>(&self, reason: impl Into<String>) -> Result<T, DecodeError> {
        Err(self.error(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::Path;

    #[test]
    fn paths_render_as_json_paths() {
        let root = Path::Root;
        assert_eq!(root.render(), None);
        let claims = root.member("claims");
        let first = claims.item(0);
        let status = first.member("status");
        assert_eq!(status.render().as_deref(), Some("claims[0].status"));
        let long = "k".repeat(70);
        let cut = root.member(&long);
        assert_eq!(cut.render(), Some(format!("{}…", "k".repeat(64))));
        let item = root.item(3);
        assert_eq!(item.render().as_deref(), Some("[3]"));
    }
}
