//! The usefulness set: questions over the fixtures, each with the answer
//! every principal should get (terminal mode and cited sources). The file
//! format is described in `fixtures/usefulness/README.md`.

use std::collections::{BTreeMap, BTreeSet};

use pecr_proto::v1::{EvidenceUnitRef, TerminalMode};
use serde::Deserialize;
use tonic::metadata::AsciiMetadataValue;

/// The committed set, compiled in so the command needs no checkout.
pub const FIXTURE_SET: &str = include_str!("../../../fixtures/usefulness/questions.json");

/// What a question is, relative to the fixtures, in report order.
pub const CATEGORIES: [&str; 4] = [
    "answerable",
    "partly_answerable",
    "not_answerable",
    "not_permitted",
];

/// Where a cited evidence unit came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub source_system: String,
    pub object_id: String,
}

impl From<&EvidenceUnitRef> for Source {
    fn from(unit: &EvidenceUnitRef) -> Self {
        Self {
            source_system: unit.source_system.clone(),
            object_id: unit.object_id.clone(),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source_system, self.object_id)
    }
}

/// The answer one principal should get.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// A terminal mode's name, e.g. `SUPPORTED`.
    pub mode: String,
    /// Every source a right answer cites, and nothing else.
    #[serde(default)]
    pub sources: BTreeSet<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub id: String,
    /// The question behind the wording: phrasings of one question share it.
    pub intent: String,
    pub category: String,
    pub question: String,
    /// By principal id.
    pub expect: BTreeMap<String, Expectation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsefulnessSet {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Strings no answer may contain, whoever asks (the fixtures' canaries).
    #[serde(default)]
    pub never_in_response: Vec<String>,
    pub questions: Vec<Question>,
}

/// One question asked by one principal.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub question: &'a Question,
    pub principal: &'a str,
    pub expected: &'a Expectation,
}

impl UsefulnessSet {
    /// Parses and checks a set; the error names the first problem found.
    pub fn parse(text: &str) -> Result<Self, String> {
        let set: Self = serde_json::from_str(text).map_err(|err| err.to_string())?;
        set.check()?;
        Ok(set)
    }

    fn check(&self) -> Result<(), String> {
        if self.questions.is_empty() {
            return Err("the set has no questions".into());
        }
        let mut ids = BTreeSet::new();
        for question in &self.questions {
            let id = &question.id;
            if id.trim().is_empty() {
                return Err("a question has an empty id".into());
            }
            if !ids.insert(id.as_str()) {
                return Err(format!("question id {id:?} appears twice"));
            }
            if question.intent.trim().is_empty() {
                return Err(format!("{id}: intent is empty"));
            }
            if !CATEGORIES.contains(&question.category.as_str()) {
                return Err(format!(
                    "{id}: category {:?} is not one of {}",
                    question.category,
                    CATEGORIES.join(", ")
                ));
            }
            if question.question.contains('\0') {
                return Err(format!("{id}: the question holds a NUL character"));
            }
            if question.expect.is_empty() {
                return Err(format!("{id}: expect names no principal"));
            }
            for (principal, expected) in &question.expect {
                if principal.is_empty() || AsciiMetadataValue::try_from(principal.as_str()).is_err()
                {
                    return Err(format!(
                        "{id}: principal {principal:?} must be non-empty printable ASCII"
                    ));
                }
                if !is_terminal_mode(&expected.mode) {
                    return Err(format!(
                        "{id}: {principal}: mode {:?} is not a terminal mode",
                        expected.mode
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every (question, principal) pair to ask, in file order and principal
    /// order; only `only`'s when given.
    pub fn cases(&self, only: Option<&str>) -> Result<Vec<Case<'_>>, String> {
        let cases: Vec<Case<'_>> = self
            .questions
            .iter()
            .flat_map(|question| {
                question
                    .expect
                    .iter()
                    .filter(|(principal, _)| only.is_none_or(|only| only == principal.as_str()))
                    .map(move |(principal, expected)| Case {
                        question,
                        principal,
                        expected,
                    })
            })
            .collect();
        match (cases.is_empty(), only) {
            (true, Some(principal)) => Err(format!(
                "the set expects nothing of principal {principal:?}"
            )),
            _ => Ok(cases),
        }
    }
}

fn is_terminal_mode(name: &str) -> bool {
    TerminalMode::from_str_name(name).is_some_and(|mode| mode != TerminalMode::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_with(question: &str) -> String {
        format!(r#"{{"name":"t","questions":[{question}]}}"#)
    }

    const GOOD: &str = r#"{"id":"q1","intent":"i","category":"answerable","question":"q?","expect":{"dev":{"mode":"SUPPORTED","sources":[{"source_system":"fs_corpus","object_id":"public/public_1.txt"}]},"guest":{"mode":"INSUFFICIENT_PERMISSION"}}}"#;

    #[test]
    fn the_committed_set_parses_and_is_big_enough() {
        let set = UsefulnessSet::parse(FIXTURE_SET).expect("the fixture set is valid");
        assert!(set.questions.len() >= 30, "{}", set.questions.len());
        let categories: BTreeSet<&str> = set
            .questions
            .iter()
            .map(|question| question.category.as_str())
            .collect();
        assert_eq!(categories, CATEGORIES.into_iter().collect());
        for principal in ["dev", "support", "guest"] {
            assert_eq!(
                set.cases(Some(principal)).expect("cases").len(),
                set.questions.len(),
                "{principal} is expected on every question"
            );
        }
    }

    #[test]
    fn cases_follow_the_file_and_the_principal_filter() {
        let set = UsefulnessSet::parse(&set_with(GOOD)).expect("valid");
        let all: Vec<&str> = set
            .cases(None)
            .expect("cases")
            .iter()
            .map(|case| case.principal)
            .collect();
        assert_eq!(all, ["dev", "guest"]);
        assert_eq!(set.cases(Some("guest")).expect("cases").len(), 1);
        assert!(set.cases(Some("support")).is_err());
    }

    #[test]
    fn bad_sets_name_their_problem() {
        let cases = [
            (r#"{"name":"t","questions":[]}"#.to_owned(), "no questions"),
            (set_with(&format!("{GOOD},{GOOD}")), "appears twice"),
            (
                set_with(&GOOD.replace("answerable", "easy")),
                "category \"easy\"",
            ),
            (
                set_with(&GOOD.replace("\"SUPPORTED\"", "\"YES\"")),
                "not a terminal mode",
            ),
            (
                set_with(&GOOD.replace("\"SUPPORTED\"", "\"TERMINAL_MODE_UNSPECIFIED\"")),
                "not a terminal mode",
            ),
            (set_with(&GOOD.replace("\"dev\"", "\"d\\nv\"")), "printable"),
            (
                set_with(&GOOD.replace("\"intent\":\"i\"", "\"intent\":\" \"")),
                "intent",
            ),
            (set_with(&GOOD.replace("q?", "q\\u0000")), "NUL"),
            (
                set_with(&GOOD.replace("\"question\"", "\"query\"")),
                "unknown field",
            ),
            ("[]".to_owned(), "expected struct"),
        ];
        for (text, needle) in cases {
            let error = UsefulnessSet::parse(&text).expect_err(&text);
            assert!(error.contains(needle), "{needle:?} not in {error:?}");
        }
    }
}
