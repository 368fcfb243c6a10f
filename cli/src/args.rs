//! The command line: global connection flags and one subcommand per RPC
//! family. Bad values are refused here, so clap reports them (exit 2)
//! before anything touches the network.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pecr_proto::v1::Budget;
use tonic::metadata::AsciiMetadataValue;

use crate::{budget, time};

pub const DEFAULT_CONTROLLER_URL: &str = "http://127.0.0.1:50052";

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the controller answered with an error (or the call timed out), or a
     check said no: `replays verify` found a replay that re-decides
     differently, `replays gate` a regression, `eval usefulness` a score
     below --min-score, `contract-test` a failed check, `canary guard` a
     fallback, `perf compare` a regression, `release verify` a problem
  2  usage error
  3  the controller (for `contract-test`, the gateway) could not be reached

Examples:
  pecr run \"What is the customer status and plan tier?\"
  pecr --json run \"How many open incidents?\" --budget '{\"max_operator_calls\":10,\"max_bytes\":1048576,\"max_wallclock_ms\":10000,\"max_recursion_depth\":5}'
  pecr replays list --limit 5 --engine-mode rlm
  pecr replays verify --since 2026-01-01T00:00:00Z
  pecr eval submit --name nightly --min-quality-score 60
  pecr eval show 01KBX3Q6M8Z1V2W3Y4A5B6C7D8
  pecr eval usefulness --min-score 80
  pecr completions bash > ~/.local/share/bash-completion/completions/pecr
  pecr perf compare --baseline perf/baselines/suite7_short.summary.json --current target/perf/suite7/summary.json
  pecr release verify target/release-dist/0.1.0-0123456789ab --public-key release.pub --commit 0123456789ab";

/// Command-line client of the PECR controller: ask questions, inspect
/// stored runs, score them and read scorecards.
#[derive(Debug, Parser)]
#[command(name = "pecr", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags that apply to every subcommand; each can also come from the
/// environment, so a shell profile can hold the connection settings.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// gRPC endpoint of the controller: http://, or https:// for a
    /// controller that serves TLS (see --tls-ca).
    #[arg(
        long,
        global = true,
        env = "PECR_CONTROLLER_URL",
        default_value = DEFAULT_CONTROLLER_URL,
        value_name = "URL",
        value_parser = controller_url,
    )]
    pub controller: String,

    /// Principal to act as, sent as `x-pecr-principal-id`.
    #[arg(long, global = true, env = "PECR_PRINCIPAL_ID", value_name = "ID", value_parser = metadata_text)]
    pub principal: Option<String>,

    /// Local-auth shared secret, sent as `x-pecr-local-auth-secret`.
    #[arg(
        long,
        global = true,
        env = "PECR_LOCAL_AUTH_SHARED_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = metadata_text,
    )]
    pub secret: Option<String>,

    /// Bearer token (OIDC), sent as `authorization: Bearer <TOKEN>`.
    #[arg(
        long,
        global = true,
        env = "PECR_BEARER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = metadata_text,
    )]
    pub token: Option<String>,

    /// Request id to send as `x-pecr-request-id` (the server makes one otherwise).
    #[arg(long, global = true, value_name = "ID", value_parser = metadata_text)]
    pub request_id: Option<String>,

    /// Trace id to send as `x-pecr-trace-id` (the server makes one otherwise).
    #[arg(long, global = true, value_name = "ID", value_parser = metadata_text)]
    pub trace_id: Option<String>,

    /// CA certificate (PEM) the controller's certificate must chain to;
    /// without it an https:// controller is checked against the system roots.
    #[arg(long, global = true, env = "PECR_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM), for a controller that requires one.
    #[arg(
        long,
        global = true,
        env = "PECR_TLS_CLIENT_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        global = true,
        env = "PECR_TLS_CLIENT_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Name the controller's certificate must carry, when it is not the
    /// URL's host.
    #[arg(
        long,
        global = true,
        env = "PECR_CONTROLLER_TLS_SERVER_NAME",
        value_name = "NAME"
    )]
    pub tls_server_name: Option<String>,

    /// Deadline of each call in milliseconds, connecting included.
    #[arg(long, global = true, default_value_t = 30_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Print the response as the REST contract's JSON (one line) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Every subcommand: those that call the controller, and those answered
/// locally.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Controller(ControllerCommand),

    /// Print a shell completion script for pecr to stdout.
    #[command(after_help = "\
Load it for the current shell, or save it where your shell looks:
  bash:  source <(pecr completions bash)
  zsh:   pecr completions zsh > \"${fpath[1]}/_pecr\"
  fish:  pecr completions fish > ~/.config/fish/completions/pecr.fish")]
    Completions(CompletionsArgs),

    /// Check the operator contract through a running gateway's public API:
    /// every operator's answer shape, its error codes and the evidence
    /// recipe (hashes recomputed). For adapter implementers and release
    /// checks; acts as --principal, who must be allowed every operator.
    #[command(after_help = "\
Example, against scripts/dev-up.sh:
  pecr --principal dev contract-test --gateway http://127.0.0.1:50051

Exits 0 when every check passes, 1 otherwise (each failed check says why).")]
    ContractTest(ContractArgs),

    /// Canary rollouts.
    #[command(subcommand)]
    Canary(CanaryCommand),

    /// Verify a release directory offline (and sign one, for scripts/release.sh).
    #[command(subcommand)]
    Release(crate::release::ReleaseCommand),

    /// Read Suite 7 summaries (perf/suite7.sh): compare one with a
    /// baseline, or lay several side by side. Local; calls no service.
    #[command(subcommand)]
    Perf(crate::perf::PerfCommand),
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Judge a canary's Suite 7 summary against SLO gates and decide:
    /// pass, or the next fallback (adaptive parallelism off, then batch
    /// mode off, then the baseline engine), or roll back.
    #[command(after_help = "\
Exits 0 on pass and 1 when a fallback or a rollback is decided; the env file
holds the controller settings to apply either way.

Example:
  pecr canary guard --summary target/perf/suite7/summary.json \\
    --gates perf/gates/canary.json --engine rlm \\
    --output-json target/perf/canary_guard.json \\
    --output-md target/perf/canary_guard.md \\
    --output-env target/perf/canary_fallback.env")]
    Guard(GuardArgs),
}

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The canary's Suite 7 summary (`pecr.suite7.v1`).
    #[arg(long, value_name = "FILE")]
    pub summary: std::path::PathBuf,

    /// SLO gates by scenario (JSON).
    #[arg(long, value_name = "FILE")]
    pub gates: std::path::PathBuf,

    /// The canary's engine (PECR_CONTROLLER_ENGINE).
    #[arg(long, value_enum)]
    pub engine: EngineMode,

    /// Whether the canary runs with adaptive parallelism
    /// (PECR_CONTROLLER_ADAPTIVE_PARALLELISM_ENABLED).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub adaptive_enabled: bool,

    /// Whether the canary runs in batch mode (PECR_CONTROLLER_BATCH_MODE_ENABLED).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub batch_enabled: bool,

    /// Write the decision as JSON here.
    #[arg(long, value_name = "FILE")]
    pub output_json: Option<std::path::PathBuf>,

    /// Write the one-page report (Markdown) here.
    #[arg(long, value_name = "FILE")]
    pub output_md: Option<std::path::PathBuf>,

    /// Write the settings to apply (KEY=value lines) here.
    #[arg(long, value_name = "FILE")]
    pub output_env: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ContractArgs {
    /// The gateway's gRPC URL.
    #[arg(
        long,
        env = "PECR_GATEWAY_URL",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub gateway: String,

    /// A corpus object the principal may read (fetch_span, list_versions, diff).
    #[arg(long, default_value = "public/public_1.txt", value_name = "ID")]
    pub object_id: String,

    /// A search query that finds --object-id.
    #[arg(long, default_value = "Public fixture document", value_name = "TEXT")]
    pub search_query: String,

    /// A safe view the principal may read (fetch_rows, aggregate, redact).
    #[arg(long, default_value = "safe_customer_view_public", value_name = "VIEW")]
    pub view_id: String,

    /// Comma-separated fields of --view-id to fetch.
    #[arg(
        long,
        default_value = "customer_id,status,plan_tier",
        value_name = "LIST"
    )]
    pub fields: String,

    /// A group-by field of --view-id for aggregate.
    #[arg(long, default_value = "plan_tier", value_name = "FIELD")]
    pub group_by: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells `pecr completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// The subcommands that make one call to the controller.
#[derive(Debug, Subcommand)]
pub enum ControllerCommand {
    /// Answer a question end to end (ControllerService/Run).
    #[command(after_help = "\
Prints the terminal mode, the answer, each claim with the evidence it cites
(short evidence id, source system, object id), then the trace id, run id and
stop reason. The run is stored as a replay under its run id.")]
    Run(RunArgs),

    /// Inspect stored runs (replay bundles).
    #[command(subcommand)]
    Replays(ReplaysCommand),

    /// Score stored runs, show a stored evaluation, or score the usefulness set.
    #[command(subcommand)]
    Eval(EvalCommand),

    /// Per-engine quality scorecards over your newest runs (GetScorecards).
    Scorecards(ScorecardsArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The question to answer.
    pub query: String,

    /// Budget as the REST contract's JSON object; absent means the server's
    /// defaults. Keys: max_operator_calls, max_bytes, max_wallclock_ms,
    /// max_recursion_depth (all required) and max_parallelism (optional).
    /// Unknown keys are refused.
    #[arg(long, value_name = "JSON", value_parser = budget_arg)]
    pub budget: Option<Budget>,
}

#[derive(Debug, Subcommand)]
pub enum ReplaysCommand {
    /// List your newest replays, newest first (ListReplays).
    List(ListArgs),

    /// Show one replay bundle (GetReplay).
    Show {
        /// The run id printed by `pecr run` (`<trace_id>-<ULID>`).
        run_id: String,
    },

    /// Re-run the finalize gate on your stored replays and check that each
    /// comes out the same (VerifyReplays).
    #[command(after_help = "\
Each replay's stored claim map, evidence ids and usage go through the
finalize gate again; the replay is the same when its terminal mode, its
coverage (exactly) and every claim's status and id come out as stored.
Prints `verified N replays: S the same, D differing`, then one line per
difference. Exits 1 when any replay differs.")]
    Verify(VerifyArgs),

    /// The replay regression gate: check your newest stored runs against a
    /// committed expectation set (terminal mode, cited sources, claim
    /// statuses per question).
    #[command(after_help = "\
The expectation set is JSON: {\"expectations\": [{\"principal\": \"dev\",
\"question\": \"…\", \"terminal_mode\": \"SUPPORTED\", \"cited_sources\":
[{\"source_system\": \"pg_safeview\", \"object_id\": \"…\"}],
\"claim_statuses\": [\"SUPPORTED\"]}]}. The entries of --principal are
checked against the newest stored run of each question. Exits 1 on any
regression, a question without a stored run included.

Example, as CI runs it (ask first, then gate):
  pecr --principal dev replays gate --expect fixtures/regression/expectations.json --ask")]
    Gate(GateArgs),
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The expectation set (JSON).
    #[arg(long, value_name = "FILE")]
    pub expect: std::path::PathBuf,

    /// Ask each of the principal's questions once before gating.
    #[arg(long)]
    pub ask: bool,

    /// How many of the newest runs to search for each question.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only replays recorded at or after this time: RFC 3339 in UTC
    /// (2026-01-31T12:00:00Z) or Unix milliseconds.
    #[arg(long, value_name = "TIME", value_parser = since_arg)]
    pub since: Option<u64>,

    /// Most replays to verify, newest first (the server caps it).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Only runs of this engine.
    #[arg(long, value_name = "MODE")]
    pub engine_mode: Option<EngineMode>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Most entries to return (the server caps it).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Only runs of this engine.
    #[arg(long, value_name = "MODE")]
    pub engine_mode: Option<EngineMode>,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score stored runs and store the evaluation (SubmitEvaluation).
    #[command(after_help = "\
Without --replay-id the controller scores your latest runs. The evaluation
passes when every scored run reaches --min-quality-score, the share of
SOURCE_UNAVAILABLE runs stays at or below --max-source-unavailable-rate, and
no requested run id is missing.")]
    Submit(SubmitArgs),

    /// Show a stored evaluation (GetEvaluation).
    Show {
        /// The evaluation id printed by `pecr eval submit`.
        evaluation_id: String,
    },

    /// Ask the usefulness set's questions and score the answers (Run).
    Usefulness(crate::usefulness::UsefulnessArgs),
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// A name for this evaluation.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// A run id to score; repeat for several.
    #[arg(long = "replay-id", value_name = "RUN_ID")]
    pub replay_ids: Vec<String>,

    /// Only score runs of this engine.
    #[arg(long, value_name = "MODE")]
    pub engine_mode: Option<EngineMode>,

    /// Lowest passing quality score, 0..=100 (server default 0).
    #[arg(long, value_name = "X", value_parser = finite_number)]
    pub min_quality_score: Option<f64>,

    /// Highest passing share of SOURCE_UNAVAILABLE runs, 0..=1 (server default 1).
    #[arg(long, value_name = "Y", value_parser = finite_number)]
    pub max_source_unavailable_rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct ScorecardsArgs {
    /// How many of your newest runs to aggregate (the server caps it).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Only this engine's scorecard.
    #[arg(long, value_name = "MODE")]
    pub engine_mode: Option<EngineMode>,
}

/// The engines the contract knows; a validated string on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineMode {
    Baseline,
    Rlm,
}

impl EngineMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Rlm => "rlm",
        }
    }

    pub fn as_wire(self) -> String {
        self.as_str().to_owned()
    }
}

fn budget_arg(text: &str) -> Result<Budget, String> {
    budget::parse(text)
}

fn since_arg(text: &str) -> Result<u64, String> {
    time::unix_ms(text)
}

/// http:// or https:// with a host; anything else would only fail later
/// as a confusing connection error.
fn controller_url(text: &str) -> Result<String, String> {
    let uri: tonic::codegen::http::Uri =
        text.parse().map_err(|err| format!("not a URL ({err})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(text.to_owned()),
        _ => Err("expected http://HOST:PORT or https://HOST:PORT".into()),
    }
}

/// Metadata must be visible ASCII; checking here turns a bad value into a
/// usage error instead of a failed call.
fn metadata_text(text: &str) -> Result<String, String> {
    AsciiMetadataValue::try_from(text)
        .map(|_| text.to_owned())
        .map_err(|_| "must be printable ASCII (it is sent as gRPC metadata)".to_owned())
}

/// A flag's number, refused with "expected EXPECTED" outside `range`.
pub fn number_in(raw: &str, range: RangeInclusive<f64>, expected: &str) -> Result<f64, String> {
    let value: f64 = raw.parse().map_err(|_| format!("not a number: {raw}"))?;
    if value.is_finite() && range.contains(&value) {
        Ok(value)
    } else {
        Err(format!("expected {expected}"))
    }
}

fn finite_number(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(number) if number.is_finite() => Ok(number),
        _ => Err("expected a finite number".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["pecr", "replays", "list", "--json", "--limit", "3"])
            .expect("parses");
        assert!(cli.global.json);
        assert!(matches!(
            cli.command,
            Command::Controller(ControllerCommand::Replays(ReplaysCommand::List(ListArgs {
                limit: Some(3),
                ..
            })))
        ));
    }

    #[test]
    fn replays_verify_takes_a_time_in_either_form() {
        for since in ["2023-11-14T22:13:20Z", "1700000000000"] {
            let cli = Cli::try_parse_from(["pecr", "replays", "verify", "--since", since])
                .expect("parses");
            let Command::Controller(ControllerCommand::Replays(ReplaysCommand::Verify(args))) =
                cli.command
            else {
                panic!("wrong command");
            };
            assert_eq!(args.since, Some(1_700_000_000_000), "{since}");
        }
    }

    #[test]
    fn eval_submit_takes_repeated_replay_ids() {
        let cli = Cli::try_parse_from([
            "pecr",
            "eval",
            "submit",
            "--name",
            "n",
            "--replay-id",
            "a",
            "--replay-id",
            "b",
            "--engine-mode",
            "rlm",
        ])
        .expect("parses");
        let Command::Controller(ControllerCommand::Eval(EvalCommand::Submit(args))) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(args.replay_ids, ["a", "b"]);
        assert_eq!(args.engine_mode, Some(EngineMode::Rlm));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["pecr", "--controller", "ftp://x:1", "scorecards"][..],
            &["pecr", "--tls-cert", "c.pem", "scorecards"],
            &["pecr", "--controller", "nope", "scorecards"],
            &["pecr", "--principal", "a\nb", "scorecards"],
            &[
                "pecr",
                "eval",
                "submit",
                "--name",
                "n",
                "--min-quality-score",
                "NaN",
            ],
            &["pecr", "run", "q", "--budget", "{}"],
            &["pecr", "scorecards", "--engine-mode", "fast"],
            &["pecr", "replays", "verify", "--since", "yesterday"],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }

    /// Every line of the top-level help's "Examples:" section, as a shell
    /// would hand it to pecr: an example that no longer parses, or that a
    /// shell would not pass through as written, fails here.
    #[test]
    fn the_help_examples_parse() {
        let help = Cli::command().render_long_help().to_string();
        let examples: Vec<&str> = help
            .lines()
            .skip_while(|line| line.trim() != "Examples:")
            .skip(1)
            .map_while(|line| line.strip_prefix("  pecr "))
            .collect();
        assert!(examples.len() >= 6, "too few examples found in:\n{help}");
        for example in examples {
            let words =
                shell_words(example).unwrap_or_else(|problem| panic!("{example:?}: {problem}"));
            let argv = std::iter::once("pecr".to_owned()).chain(words);
            if let Err(err) = Cli::try_parse_from(argv) {
                panic!("the help example `pecr {example}` does not parse:\n{err}");
            }
        }
    }

    /// Splits a command line as a POSIX shell would for the quoting the
    /// examples use ('…', "…" with \" and \\), stopping at a redirection
    /// (which the shell would take away from the command); any other
    /// unquoted shell syntax is refused, since the shell would act on it.
    fn shell_words(line: &str) -> Result<Vec<String>, String> {
        let mut words = Vec::new();
        let mut word: Option<String> = None;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                ' ' => words.extend(word.take()),
                '>' if word.is_none() => break,
                '\'' => {
                    let quoted: String = chars.by_ref().take_while(|&c| c != '\'').collect();
                    word.get_or_insert_with(String::new).push_str(&quoted);
                }
                '"' => {
                    let current = word.get_or_insert_with(String::new);
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => current.extend(chars.next()),
                            Some('$' | '`') => return Err("expansion inside double quotes".into()),
                            Some(c) => current.push(c),
                            None => return Err("unclosed double quote".into()),
                        }
                    }
                }
                '<' | '>' | '|' | '&' | ';' | '$' | '`' | '(' | ')' | '*' | '?' | '[' => {
                    return Err(format!("unquoted {c:?} is shell syntax"));
                }
                c => word.get_or_insert_with(String::new).push(c),
            }
        }
        words.extend(word);
        Ok(words)
    }

    #[test]
    fn shell_words_splits_like_a_shell() {
        assert_eq!(
            shell_words(r#"--json run "a \"b\"" --budget '{"x":1}' > out"#),
            Ok(vec![
                "--json".to_owned(),
                "run".to_owned(),
                "a \"b\"".to_owned(),
                "--budget".to_owned(),
                r#"{"x":1}"#.to_owned(),
            ])
        );
        assert!(shell_words("eval show <EVALUATION_ID>").is_err());
        assert!(shell_words("run \"unclosed").is_err());
    }
}
