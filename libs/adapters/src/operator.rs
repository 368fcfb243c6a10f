//! The allowlisted operators.

/// The seven operators the gateway runs; any other name is not allowlisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    Search,
    ListVersions,
    FetchSpan,
    Diff,
    FetchRows,
    Aggregate,
    Redact,
}

impl Operator {
    pub const ALL: [Operator; 7] = [
        Operator::Search,
        Operator::ListVersions,
        Operator::FetchSpan,
        Operator::Diff,
        Operator::FetchRows,
        Operator::Aggregate,
        Operator::Redact,
    ];

    /// The operator with exactly this wire name (case-sensitive, untrimmed).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The wire name, e.g. `fetch_rows`.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Search => "search",
            Operator::ListVersions => "list_versions",
            Operator::FetchSpan => "fetch_span",
            Operator::Diff => "diff",
            Operator::FetchRows => "fetch_rows",
            Operator::Aggregate => "aggregate",
            Operator::Redact => "redact",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Operator::ALL {
            assert_eq!(Operator::parse(op.name()), Some(op));
        }
        assert_eq!(Operator::parse("drop_database"), None);
        assert_eq!(Operator::parse("Search"), None);
        assert_eq!(Operator::parse(" search"), None);
    }
}
