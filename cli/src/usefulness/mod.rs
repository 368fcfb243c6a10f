//! `pecr eval usefulness`: asks every question of a usefulness set as each
//! principal it names, through the controller's Run, and scores the
//! terminal modes and cited sources against the set's expectations.

mod score;
mod set;

use std::path::PathBuf;

use clap::Args;
use pecr_proto::v1::{RunRequest, RunResponse};

use crate::args::Global;
use crate::client::{Controller, Failure};
use crate::commands::Output;
use score::{Outcome, Report};
pub use set::Source;
use set::{Case, UsefulnessSet};

#[derive(Debug, Args)]
#[command(after_help = "\
Asks each question of the set as every principal the set names (only
--principal's when given; with --token, name the token's principal) and
compares each answer's terminal mode and cited sources (source system and
object id) with the set's. An answer is right when both match exactly and
it holds none of the set's forbidden strings. Prints the score (the share
of right answers, in percent), mode accuracy, source precision and recall,
per category and per principal, then every miss. Each run gets the whole
--timeout-ms. Exits 1 only when the score is below --min-score.")]
pub struct UsefulnessArgs {
    /// The usefulness set (JSON, see fixtures/usefulness/README.md);
    /// without it, the committed fixtures/usefulness/questions.json.
    #[arg(long, value_name = "FILE")]
    pub set: Option<PathBuf>,

    /// Exit 1 when the score is below this, 0..=100.
    #[arg(long, value_name = "X", value_parser = score_arg)]
    pub min_score: Option<f64>,
}

fn score_arg(text: &str) -> Result<f64, String> {
    crate::args::number_in(text, 0.0..=100.0, "a number from 0 to 100")
}

/// Runs the set and prints the report (as JSON with `json`).
pub async fn execute(
    controller: &Controller,
    global: &Global,
    args: &UsefulnessArgs,
    json: bool,
) -> Result<Output, Failure> {
    let set = load(args)?;
    let only = global.principal.as_deref().filter(|p| !p.is_empty());
    let cases = set.cases(only).map_err(Failure::Usage)?;
    let mut outcomes = Vec::with_capacity(cases.len());
    for case in &cases {
        outcomes.push(ask(controller, case, &set.never_in_response).await?);
    }
    let report = Report::new(&set, &cases, &outcomes);
    let text = if json {
        format!("{}\n", report.json())
    } else {
        report.text()
    };
    Ok(Output {
        text,
        passed: args.min_score.is_none_or(|floor| report.score() >= floor),
    })
}

fn load(args: &UsefulnessArgs) -> Result<UsefulnessSet, Failure> {
    let (text, name) = match &args.set {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|err| Failure::Usage(format!("--set {}: {err}", path.display())))?,
            path.display().to_string(),
        ),
        None => (set::FIXTURE_SET.to_owned(), "the fixture set".to_owned()),
    };
    UsefulnessSet::parse(&text).map_err(|err| Failure::Usage(format!("{name}: {err}")))
}

/// One run as the case's principal. A controller that cannot be reached
/// stops the command; an error answer is the case's outcome.
async fn ask(
    controller: &Controller,
    case: &Case<'_>,
    forbidden: &[String],
) -> Result<Outcome, Failure> {
    let request = RunRequest {
        query: case.question.question.clone(),
        budget: None,
    };
    let run = controller
        .as_principal(case.principal)?
        .call(request, |mut c, r| async move { c.run(r).await })
        .await;
    match run {
        Ok(response) => Ok(outcome(&response, forbidden)),
        Err(Failure::Call(error)) => Ok(Outcome {
            error: Some(error.code.as_str().to_owned()),
            ..Outcome::default()
        }),
        Err(failure) => Err(failure),
    }
}

fn outcome(response: &RunResponse, forbidden: &[String]) -> Outcome {
    let everything = format!("{response:?}");
    Outcome {
        mode: Some(crate::render::mode(response.terminal_mode)),
        sources: response.cited_evidence.iter().map(Source::from).collect(),
        leaks: forbidden
            .iter()
            .filter(|text| !text.is_empty() && everything.contains(text.as_str()))
            .count(),
        error: None,
    }
}
