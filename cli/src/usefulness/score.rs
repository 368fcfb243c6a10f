//! Scoring the answers against the set: per answer, right means the
//! expected terminal mode, exactly the expected cited sources, and no string
//! the set forbids. The score is the share of right answers, in percent;
//! mode accuracy and source precision and recall say where the rest went.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::set::{CATEGORIES, Case, Source, UsefulnessSet};
use crate::render::{Align, fields, table};

/// What came back for one case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The terminal mode's name; None when the run failed.
    pub mode: Option<String>,
    pub sources: BTreeSet<Source>,
    /// How many forbidden strings the response held.
    pub leaks: usize,
    /// The error code of a failed run.
    pub error: Option<String>,
}

impl Outcome {
    fn mode_right(&self, case: &Case<'_>) -> bool {
        self.mode.as_deref() == Some(case.expected.mode.as_str())
    }

    fn right(&self, case: &Case<'_>) -> bool {
        self.mode_right(case) && self.sources == case.expected.sources && self.leaks == 0
    }
}

/// Counts over a group of answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    answers: usize,
    right: usize,
    mode_right: usize,
    /// Sources cited, expected, and both.
    cited: usize,
    expected: usize,
    cited_expected: usize,
    leaks: usize,
}

impl Tally {
    fn add(&mut self, case: &Case<'_>, outcome: &Outcome) {
        self.answers += 1;
        self.right += usize::from(outcome.right(case));
        self.mode_right += usize::from(outcome.mode_right(case));
        self.cited += outcome.sources.len();
        self.expected += case.expected.sources.len();
        self.cited_expected += outcome.sources.intersection(&case.expected.sources).count();
        self.leaks += outcome.leaks;
    }

    fn score(&self) -> f64 {
        percent(self.right, self.answers)
    }

    fn mode_accuracy(&self) -> f64 {
        percent(self.mode_right, self.answers)
    }

    /// Of the sources cited, the share expected (100 when none was cited).
    fn precision(&self) -> f64 {
        percent(self.cited_expected, self.cited)
    }

    /// Of the sources expected, the share cited (100 when none was expected).
    fn recall(&self) -> f64 {
        percent(self.cited_expected, self.expected)
    }

    fn json(&self) -> Value {
        json!({
            "answers": self.answers,
            "right": self.right,
            "score": round2(self.score()),
            "mode_accuracy": round2(self.mode_accuracy()),
            "source_precision": round2(self.precision()),
            "source_recall": round2(self.recall()),
            "leaks": self.leaks,
        })
    }

    fn row(&self, label: &str) -> Vec<String> {
        vec![
            label.to_owned(),
            self.answers.to_string(),
            self.right.to_string(),
            format!("{:.2}", self.score()),
            format!("{:.2}", self.mode_accuracy()),
            format!("{:.2}", self.precision()),
            format!("{:.2}", self.recall()),
        ]
    }
}

/// `part` of `whole` in percent; an empty whole is a full score.
fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// An answer that was not right, and why.
#[derive(Debug, Clone)]
struct Miss {
    id: String,
    principal: String,
    question: String,
    expected_mode: String,
    expected_sources: BTreeSet<Source>,
    outcome: Outcome,
}

/// The scores of one evaluation of a set.
#[derive(Debug, Clone)]
pub struct Report {
    set_name: String,
    questions: usize,
    principals: BTreeSet<String>,
    overall: Tally,
    by_category: BTreeMap<&'static str, Tally>,
    by_principal: BTreeMap<String, Tally>,
    /// Intents asked, and those whose every phrasing every principal got right.
    intents: usize,
    intents_right: usize,
    misses: Vec<Miss>,
}

impl Report {
    /// Scores `outcomes`, one per case, in the same order.
    pub fn new(set: &UsefulnessSet, cases: &[Case<'_>], outcomes: &[Outcome]) -> Self {
        let mut overall = Tally::default();
        let mut by_category = BTreeMap::new();
        let mut by_principal: BTreeMap<String, Tally> = BTreeMap::new();
        let mut intents: BTreeMap<&str, bool> = BTreeMap::new();
        let mut misses = Vec::new();
        let mut questions = BTreeSet::new();
        for (case, outcome) in cases.iter().zip(outcomes) {
            let question = case.question;
            questions.insert(question.id.as_str());
            overall.add(case, outcome);
            if let Some(category) = CATEGORIES.iter().find(|c| **c == question.category) {
                by_category
                    .entry(*category)
                    .or_insert_with(Tally::default)
                    .add(case, outcome);
            }
            by_principal
                .entry(case.principal.to_owned())
                .or_default()
                .add(case, outcome);
            let right = outcome.right(case);
            *intents.entry(question.intent.as_str()).or_insert(true) &= right;
            if !right {
                misses.push(Miss {
                    id: question.id.clone(),
                    principal: case.principal.to_owned(),
                    question: question.question.clone(),
                    expected_mode: case.expected.mode.clone(),
                    expected_sources: case.expected.sources.clone(),
                    outcome: outcome.clone(),
                });
            }
        }
        Self {
            set_name: set.name.clone(),
            questions: questions.len(),
            principals: by_principal.keys().cloned().collect(),
            overall,
            by_category,
            by_principal,
            intents: intents.len(),
            intents_right: intents.values().filter(|right| **right).count(),
            misses,
        }
    }

    /// The share of right answers, 0..=100, rounded to two decimals as it
    /// is printed (so `--min-score` takes the figure a report shows).
    pub fn score(&self) -> f64 {
        round2(self.overall.score())
    }

    pub fn json(&self) -> Value {
        let mut summary = self.overall.json();
        if let Value::Object(fields) = &mut summary {
            fields.insert("set".into(), json!(self.set_name));
            fields.insert("questions".into(), json!(self.questions));
            fields.insert("principals".into(), json!(self.principals));
            fields.insert("intents".into(), json!(self.intents));
            fields.insert("intents_right".into(), json!(self.intents_right));
            fields.insert("by_category".into(), rows(&self.by_category, "category"));
            fields.insert("by_principal".into(), rows(&self.by_principal, "principal"));
            fields.insert(
                "misses".into(),
                json!(self.misses.iter().map(Miss::json).collect::<Vec<_>>()),
            );
        }
        summary
    }

    pub fn text(&self) -> String {
        let overall = &self.overall;
        let mut out = fields(&[
            (
                "set",
                format!(
                    "{}: {} questions asked as {}",
                    self.set_name,
                    self.questions,
                    self.principals
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "score",
                format!(
                    "{:.2} ({} of {} answers right: terminal mode and cited sources)",
                    overall.score(),
                    overall.right,
                    overall.answers
                ),
            ),
            ("mode accuracy", format!("{:.2}", overall.mode_accuracy())),
            (
                "sources",
                format!(
                    "precision {:.2}, recall {:.2}",
                    overall.precision(),
                    overall.recall()
                ),
            ),
            (
                "intents",
                format!(
                    "{} of {} answered right in every phrasing",
                    self.intents_right, self.intents
                ),
            ),
            ("leaks", overall.leaks.to_string()),
        ]);
        let columns = [
            ("", Align::Left),
            ("answers", Align::Right),
            ("right", Align::Right),
            ("score", Align::Right),
            ("mode", Align::Right),
            ("precision", Align::Right),
            ("recall", Align::Right),
        ];
        let categories: Vec<Vec<String>> = self
            .by_category
            .iter()
            .map(|(category, tally)| tally.row(category))
            .collect();
        let principals: Vec<Vec<String>> = self
            .by_principal
            .iter()
            .map(|(principal, tally)| tally.row(principal))
            .collect();
        out.push('\n');
        out.push_str(&table(&columns, &categories));
        out.push('\n');
        out.push_str(&table(&columns, &principals));
        if !self.misses.is_empty() {
            out.push_str("\nMisses:\n");
            for miss in &self.misses {
                let _ = writeln!(out, "{}", miss.text());
            }
        }
        out
    }
}

impl Miss {
    fn got(&self) -> String {
        match (&self.outcome.error, &self.outcome.mode) {
            (Some(error), _) => format!("error {error}"),
            (None, Some(mode)) => format!("{mode} {}", list(&self.outcome.sources)),
            (None, None) => "no answer".to_owned(),
        }
    }

    fn text(&self) -> String {
        let leaks = match self.outcome.leaks {
            0 => String::new(),
            n => format!(" LEAKED {n} forbidden string(s)"),
        };
        format!(
            "  {} {} {:?}\n    expected {} {}\n    got      {}{leaks}",
            self.id,
            self.principal,
            self.question,
            self.expected_mode,
            list(&self.expected_sources),
            self.got()
        )
    }

    fn json(&self) -> Value {
        let names = |sources: &BTreeSet<Source>| {
            sources
                .iter()
                .map(|source| json!({"source_system": source.source_system, "object_id": source.object_id}))
                .collect::<Vec<_>>()
        };
        json!({
            "id": self.id,
            "principal": self.principal,
            "question": self.question,
            "expected": {"mode": self.expected_mode, "sources": names(&self.expected_sources)},
            "got": {
                "mode": self.outcome.mode,
                "sources": names(&self.outcome.sources),
                "error": self.outcome.error,
                "leaks": self.outcome.leaks,
            },
        })
    }
}

/// One tally per group, each with the group's name under `key`.
fn rows<K: serde::Serialize>(groups: &BTreeMap<K, Tally>, key: &str) -> Value {
    let rows: Vec<Value> = groups
        .iter()
        .map(|(name, tally)| {
            let mut row = tally.json();
            row[key] = json!(name);
            row
        })
        .collect();
    json!(rows)
}

fn list(sources: &BTreeSet<Source>) -> String {
    let names: Vec<String> = sources.iter().map(ToString::to_string).collect();
    format!("[{}]", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"{"name":"t","questions":[
        {"id":"q1","intent":"a","category":"answerable","question":"one?","expect":{
            "dev":{"mode":"SUPPORTED","sources":[{"source_system":"s","object_id":"x"},{"source_system":"s","object_id":"y"}]},
            "guest":{"mode":"INSUFFICIENT_PERMISSION"}}},
        {"id":"q2","intent":"a","category":"not_answerable","question":"two?","expect":{
            "dev":{"mode":"INSUFFICIENT_EVIDENCE"}}}]}"#;

    fn source(object_id: &str) -> Source {
        Source {
            source_system: "s".into(),
            object_id: object_id.into(),
        }
    }

    fn answered(mode: &str, sources: &[&str]) -> Outcome {
        Outcome {
            mode: Some(mode.into()),
            sources: sources.iter().map(|id| source(id)).collect(),
            ..Outcome::default()
        }
    }

    #[test]
    fn right_answers_need_the_mode_the_exact_sources_and_no_leak() {
        let set = UsefulnessSet::parse(SET).expect("set");
        let cases = set.cases(None).expect("cases");
        // q1 dev: mode right, one source of two and one extra; q1 guest
        // right; q2 dev right but leaked.
        let outcomes = [
            answered("SUPPORTED", &["x", "z"]),
            answered("INSUFFICIENT_PERMISSION", &[]),
            Outcome {
                leaks: 1,
                ..answered("INSUFFICIENT_EVIDENCE", &[])
            },
        ];
        let report = Report::new(&set, &cases, &outcomes);
        assert_eq!(report.overall.right, 1);
        assert_eq!(report.score(), 33.33);
        assert_eq!(report.overall.mode_accuracy(), 100.0);
        assert_eq!(report.overall.precision(), 50.0);
        assert_eq!(report.overall.recall(), 50.0);
        assert_eq!((report.intents, report.intents_right), (1, 0));
        let json = report.json();
        assert_eq!(json["score"], 33.33);
        assert_eq!(json["leaks"], 1);
        assert_eq!(json["by_category"][0]["category"], "answerable");
        assert_eq!(json["by_category"][0]["score"], 50.0);
        assert_eq!(json["by_principal"][1]["principal"], "guest");
        assert_eq!(json["misses"].as_array().map(Vec::len), Some(2));
        let text = report.text();
        assert!(text.contains("1 of 3 answers right"), "{text}");
        assert!(text.contains("got      SUPPORTED [s:x, s:z]"), "{text}");
        assert!(text.contains("LEAKED 1"), "{text}");
    }

    #[test]
    fn a_failed_run_is_a_miss_with_its_error() {
        let set = UsefulnessSet::parse(SET).expect("set");
        let cases = set.cases(Some("dev")).expect("cases");
        let failed = Outcome {
            error: Some("ERR_RATE_LIMITED".into()),
            ..Outcome::default()
        };
        let report = Report::new(
            &set,
            &cases,
            &[failed, answered("INSUFFICIENT_EVIDENCE", &[])],
        );
        assert_eq!(report.score(), 50.0);
        assert!(report.text().contains("got      error ERR_RATE_LIMITED"));
        // Nothing cited and nothing expected is full precision and recall.
        let quiet = Report::new(&set, &cases[1..], &[answered("INSUFFICIENT_EVIDENCE", &[])]);
        assert_eq!(
            (quiet.overall.precision(), quiet.overall.recall()),
            (100.0, 100.0)
        );
        assert_eq!((quiet.intents, quiet.intents_right), (1, 1));
    }
}
