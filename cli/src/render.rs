//! Readable output: what a person at a terminal wants to see first, in
//! plain text that still greps well. `--json` bypasses all of this.

use std::fmt::Write as _;

use pecr_errors::PecrError;
use pecr_proto::v1::{
    Budget, EvidenceUnitRef, ListReplaysResponse, ReplayBundle, ReplayEvaluationResult,
    RunQualityScorecard, RunResponse, TerminalMode, VerifyReplaysResponse, claim,
    run_stream_response::Event,
};

use crate::client::Service;

/// Evidence ids are 64 hex chars; 12 are plenty to tell them apart on screen.
const SHORT_ID: usize = 12;

pub fn run(response: &RunResponse) -> String {
    let mut out = String::new();
    let claims = response
        .claim_map
        .as_ref()
        .map(|map| map.claims.as_slice())
        .unwrap_or_default();
    let _ = write!(out, "{}", mode(response.terminal_mode));
    if let Some(map) = &response.claim_map {
        let _ = write!(
            out,
            " · coverage {:.2} (threshold {:.2})",
            map.coverage_observed, map.coverage_threshold
        );
    }
    let _ = writeln!(
        out,
        "\n\n{}\n",
        text_or(&response.response_text, "(no answer)")
    );

    if claims.is_empty() {
        let _ = writeln!(out, "Claims: none");
    } else {
        let _ = writeln!(out, "Claims:");
    }
    for claim in claims {
        let _ = writeln!(
            out,
            "  [{}] {}",
            claim_status(claim.status),
            claim.claim_text
        );
        for id in &claim.evidence_unit_ids {
            let _ = writeln!(out, "      {}", cited(id, &response.cited_evidence));
        }
    }
    let _ = writeln!(out);
    out.push_str(&fields(&[
        ("trace_id", dash(&response.trace_id)),
        ("run_id", dash(&response.run_id)),
        ("stop_reason", dash(&response.stop_reason)),
    ]));
    out
}

/// One line of a run's live progress; None for the events the final answer
/// shows better (its result).
pub fn run_event(event: &Event) -> Option<String> {
    Some(match event {
        Event::SessionCreated(session) => format!(
            "· session {} (policy snapshot {})",
            session.session_id, session.policy_snapshot_id
        ),
        Event::StepStarted(step) => {
            format!("· step {}: {}", step.step + 1, step.operators.join(", "))
        }
        Event::OperatorCall(call) if call.ok => {
            let mut found = Vec::new();
            if call.refs > 0 {
                found.push(plural(call.refs as usize, "hit"));
            }
            if !call.evidence_unit_ids.is_empty() {
                found.push(plural(call.evidence_unit_ids.len(), "evidence unit"));
            }
            if found.is_empty() {
                found.push("ok".to_owned());
            }
            format!("    ✓ {}  {}", call.op_name, found.join(", "))
        }
        Event::OperatorCall(call) => {
            format!("    ✗ {}  {}", call.op_name, mode(call.terminal_mode))
        }
        Event::Finalizing(finalizing) => format!(
            "· finalizing: {} ({})",
            plural(finalizing.claims as usize, "claim"),
            finalizing.stop_reason
        ),
        Event::Result(_) => return None,
    })
}

pub(crate) fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// `ab12cd34ef56  fs_corpus  docs/a.md`, from the response's own index
/// of cited evidence; ids it does not list are still shown.
fn cited(id: &str, index: &[EvidenceUnitRef]) -> String {
    match index.iter().find(|unit| unit.evidence_unit_id == id) {
        Some(unit) if unit.transform_types.is_empty() => {
            format!("{}  {}  {}", short(id), unit.source_system, unit.object_id)
        }
        Some(unit) => format!(
            "{}  {}  {}  ({} applied)",
            short(id),
            unit.source_system,
            unit.object_id,
            unit.transform_types.join(", ")
        ),
        None => format!("{}  (source not reported)", short(id)),
    }
}

pub fn replay_list(response: &ListReplaysResponse) -> String {
    if response.replays.is_empty() {
        return "No replays yet; `pecr run` stores one per run.\n".to_owned();
    }
    let rows = response
        .replays
        .iter()
        .map(|replay| {
            vec![
                replay.run_id.clone(),
                utc(replay.recorded_at_unix_ms),
                replay.engine_mode.clone(),
                mode(replay.terminal_mode),
                format!("{:.2}", replay.quality_score),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            ("RUN ID", Align::Left),
            ("RECORDED (UTC)", Align::Left),
            ("ENGINE", Align::Left),
            ("TERMINAL MODE", Align::Left),
            ("QUALITY", Align::Right),
        ],
        &rows,
    )
}

pub fn replay(bundle: &ReplayBundle) -> String {
    let meta = bundle.metadata.clone().unwrap_or_default();
    let budget = bundle.budget.unwrap_or_default();
    let mut out = fields(&[
        ("run_id", dash(&meta.run_id)),
        ("trace_id", dash(&meta.trace_id)),
        ("recorded", format!("{} UTC", utc(meta.recorded_at_unix_ms))),
        ("engine", dash(&meta.engine_mode)),
        ("query", bundle.query.clone()),
        (
            "terminal mode",
            format!(
                "{} (engine loop: {})",
                mode(meta.terminal_mode),
                mode(bundle.loop_terminal_mode)
            ),
        ),
        ("quality", format!("{:.2}", meta.quality_score)),
        ("used", usage(bundle, &budget)),
    ]);
    let _ = writeln!(out, "\n{}\n", text_or(&bundle.response_text, "(no answer)"));
    let _ = writeln!(out, "Evidence ({}):", bundle.evidence_unit_ids.len());
    for id in &bundle.evidence_unit_ids {
        let _ = writeln!(out, "  {id}");
    }
    out
}

/// `verified 12 replays: 11 the same, 1 differing`, then each difference
/// as `<run_id>: <what differs>`.
pub fn verification(response: &VerifyReplaysResponse) -> String {
    let mut out = format!(
        "verified {} {}: {} the same, {} differing\n",
        response.verified,
        if response.verified == 1 {
            "replay"
        } else {
            "replays"
        },
        response.verified.saturating_sub(response.differing),
        response.differing
    );
    for replay in &response.differences {
        for difference in &replay.differences {
            let _ = writeln!(out, "{}: {difference}", replay.run_id);
        }
    }
    out
}

fn usage(bundle: &ReplayBundle, budget: &Budget) -> String {
    // max_bytes = 0 means unlimited in the contract.
    let bytes_cap = match budget.max_bytes {
        0 => "unlimited".to_owned(),
        cap => cap.to_string(),
    };
    format!(
        "{}/{} operator calls · {}/{} bytes · depth {}/{}",
        bundle.operator_calls_used,
        budget.max_operator_calls,
        bundle.bytes_used,
        bytes_cap,
        bundle.depth_used,
        budget.max_recursion_depth
    )
}

pub fn evaluation(result: &ReplayEvaluationResult) -> String {
    let missing = if result.missing_replay_ids.is_empty() {
        "none".to_owned()
    } else {
        result.missing_replay_ids.join(", ")
    };
    let mut out = fields(&[
        (
            "evaluation",
            format!("{} ({})", result.evaluation_id, result.evaluation_name),
        ),
        (
            "result",
            if result.overall_pass { "PASS" } else { "FAIL" }.to_owned(),
        ),
        ("created", format!("{} UTC", utc(result.created_at_unix_ms))),
        (
            "runs",
            format!(
                "{} scored, {} missing",
                result.run_results.len(),
                result.missing_replay_ids.len()
            ),
        ),
        ("missing", missing),
    ]);
    if !result.run_results.is_empty() {
        let rows = result
            .run_results
            .iter()
            .map(|run| {
                vec![
                    run.run_id.clone(),
                    run.engine_mode.clone(),
                    mode(run.terminal_mode),
                    format!("{:.2}", run.quality_score),
                    format!("{:.2}", run.coverage_observed),
                ]
            })
            .collect::<Vec<_>>();
        out.push_str("\nRuns:\n");
        out.push_str(&table(
            &[
                ("RUN ID", Align::Left),
                ("ENGINE", Align::Left),
                ("TERMINAL MODE", Align::Left),
                ("QUALITY", Align::Right),
                ("COVERAGE", Align::Right),
            ],
            &rows,
        ));
    }
    if !result.scorecards.is_empty() {
        out.push_str("\nScorecards:\n");
        out.push_str(&scorecards(&result.scorecards));
    }
    out
}

pub fn scorecards(cards: &[RunQualityScorecard]) -> String {
    if cards.is_empty() {
        return "No scored runs yet.\n".to_owned();
    }
    let rows = cards
        .iter()
        .map(|card| {
            vec![
                card.engine_mode.clone(),
                card.run_count.to_string(),
                format!("{:.2}", card.average_quality_score),
                format!("{:.2}", card.minimum_quality_score),
                format!("{:.2}", card.maximum_quality_score),
                percent(card.supported_rate),
                percent(card.source_unavailable_rate),
                format!("{:.2}", card.average_coverage_observed),
            ]
        })
        .collect::<Vec<_>>();
    table(
        &[
            ("ENGINE", Align::Left),
            ("RUNS", Align::Right),
            ("AVG QUALITY", Align::Right),
            ("MIN", Align::Right),
            ("MAX", Align::Right),
            ("SUPPORTED", Align::Right),
            ("SOURCE UNAVAILABLE", Align::Right),
            ("AVG COVERAGE", Align::Right),
        ],
        &rows,
    )
}

/// `error: ERR_CODE: message` plus what a caller should do about it.
pub fn error(error: &PecrError) -> String {
    format!(
        "error: {}: {}\n  HTTP {} · terminal mode {} · {}\n",
        error.code.as_str(),
        error.message,
        error.http_status,
        error.hint.as_str_name(),
        if error.retryable {
            "retryable: trying again may succeed"
        } else {
            "not retryable"
        }
    )
}

/// `error: cannot reach the NAME at URL: CAUSE` and where to point instead.
pub fn unreachable(service: Service, url: &str, cause: &str) -> String {
    let Service { name, flag, env } = service;
    format!(
        "error: cannot reach the {name} at {url}: {cause}\n\
         hint: start the local mesh with scripts/dev-up.sh, or point {flag} \
         ({env}) at a running {name}'s gRPC address\n"
    )
}

pub(crate) fn mode(value: i32) -> String {
    TerminalMode::try_from(value)
        .map(|mode| mode.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("MODE_{value}"))
}

pub(crate) fn claim_status(value: i32) -> String {
    claim::Status::try_from(value)
        .map(|status| status.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("STATUS_{value}"))
}

fn short(id: &str) -> &str {
    id.get(..SHORT_ID).unwrap_or(id)
}

fn dash(text: &str) -> String {
    text_or(text, "-").to_owned()
}

fn text_or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.trim().is_empty() {
        fallback
    } else {
        text
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// `key  value` lines with the values lined up.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let _ = writeln!(out, "{key:<width$}  {value}");
    }
    out
}

#[derive(Clone, Copy)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A plain table: columns two spaces apart, numbers right-aligned.
pub(crate) fn table(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns
        .iter()
        .map(|(name, _)| name.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|(name, _)| (*name).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for ((cell, width), (_, align)) in row.iter().zip(&widths).zip(columns) {
            if !line.is_empty() {
                line.push_str("  ");
            }
            let _ = match align {
                Align::Left => write!(line, "{cell:<width$}"),
                Align::Right => write!(line, "{cell:>width$}"),
            };
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, without a date crate: the civil-from-days
/// algorithm (H. Hinnant) over unsigned days since 1970-01-01.
fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, time) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        time / 3_600,
        time % 3_600 / 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_errors::ErrorCode;
    use pecr_proto::v1::{Claim, ClaimMap, ReplayBundleMetadata, ReplayRunScore};

    fn sample_run() -> RunResponse {
        let sky = format!("3f2a9c1b0d4e{}", "0".repeat(52));
        let rain = format!("77aa88bb99cc{}", "1".repeat(52));
        RunResponse {
            terminal_mode: TerminalMode::Supported as i32,
            trace_id: "trace-1".into(),
            claim_map: Some(ClaimMap {
                claim_map_id: "cm".into(),
                terminal_mode: TerminalMode::Supported as i32,
                claims: vec![
                    Claim {
                        claim_id: "c1".into(),
                        claim_text: "The sky is blue.".into(),
                        status: claim::Status::Supported as i32,
                        evidence_unit_ids: vec![sky.clone(), rain.clone()],
                    },
                    Claim {
                        claim_id: "c2".into(),
                        claim_text: "It may rain.".into(),
                        status: claim::Status::Assumption as i32,
                        evidence_unit_ids: vec![],
                    },
                ],
                coverage_threshold: 0.5,
                coverage_observed: 1.0,
                notes: None,
            }),
            response_text: "The sky is blue.".into(),
            run_id: "trace-1-01JABC".into(),
            stop_reason: "finalized".into(),
            cited_evidence: vec![EvidenceUnitRef {
                evidence_unit_id: sky,
                source_system: "fs_corpus".into(),
                object_id: "weather/sky.md".into(),
                version_id: "v3".into(),
                transform_types: vec!["redaction".into()],
            }],
        }
    }

    #[test]
    fn live_steps_name_calls_and_outcomes_and_not_the_result() {
        use pecr_proto::v1::{RunFinalizing, RunOperatorCall, RunStepStarted};
        let step = Event::StepStarted(RunStepStarted {
            step: 0,
            operators: vec!["search".into(), "lookup_evidence".into()],
        });
        assert_eq!(
            run_event(&step).as_deref(),
            Some("· step 1: search, lookup_evidence")
        );
        let found = Event::OperatorCall(RunOperatorCall {
            step: 0,
            op_name: "search".into(),
            ok: true,
            terminal_mode: TerminalMode::Supported as i32,
            evidence_unit_ids: vec!["e1".into()],
            refs: 3,
            bytes: 10,
        });
        assert_eq!(
            run_event(&found).as_deref(),
            Some("    ✓ search  3 hits, 1 evidence unit")
        );
        let denied = Event::OperatorCall(RunOperatorCall {
            op_name: "fetch_rows".into(),
            terminal_mode: TerminalMode::InsufficientPermission as i32,
            ..RunOperatorCall::default()
        });
        assert_eq!(
            run_event(&denied).as_deref(),
            Some("    ✗ fetch_rows  INSUFFICIENT_PERMISSION")
        );
        let finalizing = Event::Finalizing(RunFinalizing {
            stop_reason: "plan_complete".into(),
            claims: 2,
        });
        assert_eq!(
            run_event(&finalizing).as_deref(),
            Some("· finalizing: 2 claims (plan_complete)")
        );
        assert_eq!(run_event(&Event::Result(sample_run())), None);
    }

    #[test]
    fn a_run_shows_mode_answer_claims_and_their_sources() {
        let text = run(&sample_run());
        assert!(text.starts_with("SUPPORTED · coverage 1.00"), "{text}");
        assert!(text.contains("\nThe sky is blue.\n"), "{text}");
        assert!(text.contains("[SUPPORTED] The sky is blue."), "{text}");
        assert!(text.contains("[ASSUMPTION] It may rain."), "{text}");
        assert!(
            text.contains("      3f2a9c1b0d4e  fs_corpus  weather/sky.md  (redaction applied)\n"),
            "{text}"
        );
        assert!(
            text.contains("77aa88bb99cc  (source not reported)"),
            "{text}"
        );
        assert!(!text.contains(&"0".repeat(13)), "ids are shortened: {text}");
        assert!(text.contains("run_id       trace-1-01JABC"), "{text}");
        assert!(text.contains("stop_reason  finalized"), "{text}");
    }

    #[test]
    fn an_empty_run_still_reads_well() {
        let text = run(&RunResponse::default());
        assert!(
            text.starts_with("TERMINAL_MODE_UNSPECIFIED\n\n(no answer)"),
            "{text}"
        );
        assert!(text.contains("Claims: none"), "{text}");
        assert!(text.contains("trace_id     -"), "{text}");
    }

    #[test]
    fn replays_list_as_a_table() {
        let text = replay_list(&ListReplaysResponse {
            replays: vec![ReplayBundleMetadata {
                run_id: "t-01J".into(),
                engine_mode: "rlm".into(),
                recorded_at_unix_ms: 1_700_000_000_000,
                terminal_mode: TerminalMode::SourceUnavailable as i32,
                quality_score: 12.5,
                ..Default::default()
            }],
        });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("RUN ID  RECORDED (UTC)"), "{text}");
        assert!(lines[1].contains("2023-11-14 22:13:20"), "{text}");
        assert!(lines[1].contains("SOURCE_UNAVAILABLE"), "{text}");
        assert!(lines[1].ends_with("  12.50"), "{text}");
        assert!(replay_list(&ListReplaysResponse::default()).contains("No replays"));
    }

    #[test]
    fn a_replay_summarises_usage_and_evidence() {
        let text = replay(&ReplayBundle {
            metadata: Some(ReplayBundleMetadata {
                run_id: "t-01J".into(),
                terminal_mode: TerminalMode::Supported as i32,
                ..Default::default()
            }),
            query: "why?".into(),
            budget: Some(Budget {
                max_operator_calls: 10,
                max_bytes: 0,
                max_wallclock_ms: 1,
                max_recursion_depth: 5,
                max_parallelism: None,
            }),
            operator_calls_used: 3,
            bytes_used: 2048,
            depth_used: 1,
            evidence_unit_ids: vec!["e1".into(), "e2".into()],
            response_text: "because".into(),
            ..Default::default()
        });
        assert!(text.contains("query          why?"), "{text}");
        assert!(
            text.contains("3/10 operator calls · 2048/unlimited bytes · depth 1/5"),
            "{text}"
        );
        assert!(text.contains("Evidence (2):\n  e1\n  e2\n"), "{text}");
    }

    #[test]
    fn a_verification_sums_up_then_lists_each_difference() {
        use pecr_proto::v1::DifferingReplay;
        let text = verification(&VerifyReplaysResponse {
            verified: 12,
            differing: 1,
            differences: vec![DifferingReplay {
                run_id: "t-01J".into(),
                differences: vec!["coverage: stored 1, re-decided 0.5".into(), "x".into()],
            }],
        });
        assert_eq!(
            text,
            "verified 12 replays: 11 the same, 1 differing\n\
             t-01J: coverage: stored 1, re-decided 0.5\n\
             t-01J: x\n"
        );
        assert_eq!(
            verification(&VerifyReplaysResponse::default()),
            "verified 0 replays: 0 the same, 0 differing\n"
        );
    }

    #[test]
    fn an_evaluation_shows_verdict_missing_ids_and_scores() {
        let text = evaluation(&ReplayEvaluationResult {
            evaluation_id: "ev1".into(),
            evaluation_name: "nightly".into(),
            missing_replay_ids: vec!["gone".into()],
            run_results: vec![ReplayRunScore {
                run_id: "t-01J".into(),
                engine_mode: "baseline".into(),
                terminal_mode: TerminalMode::Supported as i32,
                quality_score: 90.0,
                coverage_observed: 1.0,
                ..Default::default()
            }],
            scorecards: vec![RunQualityScorecard {
                engine_mode: "baseline".into(),
                run_count: 1,
                supported_rate: 1.0,
                ..Default::default()
            }],
            overall_pass: false,
            ..Default::default()
        });
        assert!(text.contains("evaluation  ev1 (nightly)"), "{text}");
        assert!(text.contains("result      FAIL"), "{text}");
        assert!(text.contains("missing     gone"), "{text}");
        assert!(text.contains("90.00"), "{text}");
        assert!(text.contains("100.0%"), "{text}");
    }

    #[test]
    fn errors_name_code_message_and_hints() {
        let error = PecrError::new(ErrorCode::RateLimited, "too many requests");
        let text = super::error(&error);
        assert!(
            text.starts_with("error: ERR_RATE_LIMITED: too many requests\n"),
            "{text}"
        );
        assert!(text.contains("HTTP 429"), "{text}");
        assert!(text.contains("retryable"), "{text}");
    }

    #[test]
    fn an_error_status_round_trips_into_the_message() {
        let status = tonic::Status::from(
            PecrError::new(
                ErrorCode::InvalidParams,
                "invalid budget: max_bytes out of range",
            )
            .with_http(400),
        );
        let error = PecrError::from_status(&status).expect("carries a PECR error");
        let text = super::error(&error);
        assert!(
            text.starts_with("error: ERR_INVALID_PARAMS: invalid budget: max_bytes out of range\n"),
            "{text}"
        );
        assert!(text.contains("HTTP 400"), "{text}");
        assert!(
            text.contains("terminal mode INSUFFICIENT_EVIDENCE"),
            "{text}"
        );
        assert!(text.contains("not retryable"), "{text}");
    }

    #[test]
    fn utc_dates_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_709_251_199_999), "2024-02-29 23:59:59");
    }
}
