//! `pecr canary guard`: judges a canary's Suite 7 summary against SLO
//! gates and decides what to do. Every gate held: pass. Otherwise the next
//! step of the fallback order, from the controller's current settings:
//! disable adaptive parallelism, then batch mode, then switch the engine to
//! baseline; with nothing left to turn off, roll the release back. The
//! decision is written as JSON, Markdown and an env file of the settings to
//! apply.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::args::{EngineMode, GuardArgs};
use crate::client::Failure;
use crate::json;
use crate::suite7::{self, Gates, Summary};

/// The controller settings a fallback changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// `rlm` or `baseline`.
    pub engine: EngineMode,
    pub adaptive_parallelism: bool,
    pub batch_mode: bool,
}

/// What the guard decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Every gate held: keep the canary as it is.
    Pass,
    DisableAdaptiveParallelism,
    DisableBatchMode,
    SwitchEngineToBaseline,
    /// Nothing left to fall back to.
    Rollback,
}

#[derive(Debug, Serialize)]
pub struct Violation {
    pub scenario: String,
    pub what: String,
}

#[derive(Debug, Serialize)]
pub struct Decision {
    pub action: Action,
    /// The settings judged.
    pub current: Settings,
    /// The settings to run with next (equal to `current` on pass and
    /// rollback).
    pub next: Settings,
    pub violations: Vec<Violation>,
    /// The summary's commit and mode, for the record.
    pub commit: String,
    pub mode: String,
}

impl Decision {
    pub fn passed(&self) -> bool {
        self.action == Action::Pass
    }
}

/// `pecr canary guard`: reads the summary and gates, decides, and writes
/// the decision wherever the flags ask.
pub fn run(args: &GuardArgs) -> Result<Decision, Failure> {
    let summary = suite7::read_summary(&args.summary)?;
    let gates: Gates = json::read_file(&args.gates, "a set of SLO gates")?;
    let current = Settings {
        engine: args.engine,
        adaptive_parallelism: args.adaptive_enabled,
        batch_mode: args.batch_enabled,
    };
    let decision = decide(&summary, &gates, current);
    let write = |path: &Option<PathBuf>, text: &str| match path {
        Some(path) => json::write_file(path, text).map_err(Failure::Output),
        None => Ok(()),
    };
    write(&args.output_json, &json::pretty(&decision)?)?;
    write(&args.output_md, &markdown(&decision))?;
    write(&args.output_env, &env_file(&decision))?;
    Ok(decision)
}

/// Judges `summary` against `gates` for a canary running with `current`.
pub fn decide(summary: &Summary, gates: &Gates, current: Settings) -> Decision {
    let mut violations = Vec::new();
    for (name, gate) in &gates.scenarios {
        match summary.scenarios.iter().find(|s| &s.name == name) {
            Some(scenario) => {
                violations.extend(gate.violations(scenario).into_iter().map(|what| Violation {
                    scenario: name.clone(),
                    what,
                }))
            }
            None => violations.push(Violation {
                scenario: name.clone(),
                what: "not in the summary".to_owned(),
            }),
        }
    }
    let (action, next) = if violations.is_empty() {
        (Action::Pass, current)
    } else {
        fall_back(current)
    };
    Decision {
        action,
        current,
        next,
        violations,
        commit: summary.commit.clone(),
        mode: summary.mode.clone(),
    }
}

/// The next step of the fallback order from `current`.
fn fall_back(current: Settings) -> (Action, Settings) {
    if current.adaptive_parallelism {
        return (
            Action::DisableAdaptiveParallelism,
            Settings {
                adaptive_parallelism: false,
                ..current
            },
        );
    }
    if current.batch_mode {
        return (
            Action::DisableBatchMode,
            Settings {
                batch_mode: false,
                ..current
            },
        );
    }
    if current.engine == EngineMode::Rlm {
        return (
            Action::SwitchEngineToBaseline,
            Settings {
                engine: EngineMode::Baseline,
                ..current
            },
        );
    }
    (Action::Rollback, current)
}

/// The settings to apply, as `KEY=value` lines a shell, docker compose's
/// `env_file` or a Kubernetes ConfigMap generator reads.
pub fn env_file(decision: &Decision) -> String {
    let flag = |on: bool| if on { "1" } else { "0" };
    let next = decision.next;
    format!(
        "# pecr canary guard: {} (summary of {}, {} mode)\n\
         PECR_CONTROLLER_ENGINE={}\n\
         PECR_CONTROLLER_ADAPTIVE_PARALLELISM_ENABLED={}\n\
         PECR_CONTROLLER_BATCH_MODE_ENABLED={}\n",
        action_name(decision.action),
        decision.commit,
        decision.mode,
        next.engine.as_str(),
        flag(next.adaptive_parallelism),
        flag(next.batch_mode),
    )
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Pass => "pass",
        Action::DisableAdaptiveParallelism => "disable_adaptive_parallelism",
        Action::DisableBatchMode => "disable_batch_mode",
        Action::SwitchEngineToBaseline => "switch_engine_to_baseline",
        Action::Rollback => "rollback",
    }
}

/// A one-page report: the decision, the settings, each broken gate.
pub fn markdown(decision: &Decision) -> String {
    let mut out = format!(
        "# Canary guard: `{}`\n\nSummary of commit `{}` ({} mode).\n\n",
        action_name(decision.action),
        decision.commit,
        decision.mode
    );
    let on = |flag: bool| if flag { "on" } else { "off" };
    let _ = writeln!(out, "| setting | now | next |\n| --- | --- | --- |");
    let (now, next) = (decision.current, decision.next);
    let _ = writeln!(
        out,
        "| engine | {} | {} |",
        now.engine.as_str(),
        next.engine.as_str()
    );
    let _ = writeln!(
        out,
        "| adaptive parallelism | {} | {} |",
        on(now.adaptive_parallelism),
        on(next.adaptive_parallelism)
    );
    let _ = writeln!(
        out,
        "| batch mode | {} | {} |\n",
        on(now.batch_mode),
        on(next.batch_mode)
    );
    if decision.violations.is_empty() {
        out.push_str("Every gate held.\n");
    } else {
        let _ = writeln!(out, "| scenario | broken gate |\n| --- | --- |");
        for violation in &decision.violations {
            let _ = writeln!(out, "| {} | {} |", violation.scenario, violation.what);
        }
    }
    if decision.action == Action::Rollback {
        out.push_str(
            "\nNothing is left to fall back to (baseline engine, adaptive parallelism and batch mode off): roll the release back.\n",
        );
    }
    out
}

/// The terminal's short form of the decision.
pub fn render(decision: &Decision) -> String {
    let mut out = format!("canary guard: {}\n", action_name(decision.action));
    for violation in &decision.violations {
        let _ = writeln!(out, "  {}: {}", violation.scenario, violation.what);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::suite7::tests::scenario;
    use crate::suite7::{Gate, SUMMARY_SCHEMA};

    fn summary(p95: f64) -> Summary {
        Summary {
            schema: SUMMARY_SCHEMA.into(),
            mode: "short".into(),
            commit: "abc123".into(),
            measured_at: "2026-12-06T00:00:00Z".into(),
            machine: BTreeMap::new(),
            scenarios: vec![scenario("run_rlm", p95, 0.0, 100, 0)],
        }
    }

    fn gates() -> Gates {
        Gates {
            scenarios: BTreeMap::from([(
                "run_rlm".to_owned(),
                Gate {
                    max_p95_ms: Some(100.0),
                    ..Gate::default()
                },
            )]),
        }
    }

    const ALL_ON: Settings = Settings {
        engine: EngineMode::Rlm,
        adaptive_parallelism: true,
        batch_mode: true,
    };

    #[test]
    fn held_gates_pass_and_change_nothing() {
        let decision = decide(&summary(80.0), &gates(), ALL_ON);
        assert_eq!(decision.action, Action::Pass);
        assert_eq!(decision.next, ALL_ON);
        assert!(env_file(&decision).contains("PECR_CONTROLLER_ENGINE=rlm\n"));
    }

    #[test]
    fn a_broken_gate_walks_the_fallback_order() {
        let slow = summary(150.0);
        let mut settings = ALL_ON;
        let mut steps = Vec::new();
        loop {
            let decision = decide(&slow, &gates(), settings);
            steps.push(decision.action);
            if decision.action == Action::Rollback {
                break;
            }
            settings = decision.next;
        }
        assert_eq!(
            steps,
            [
                Action::DisableAdaptiveParallelism,
                Action::DisableBatchMode,
                Action::SwitchEngineToBaseline,
                Action::Rollback,
            ]
        );
        let decision = decide(&slow, &gates(), ALL_ON);
        let env = env_file(&decision);
        assert!(
            env.contains("PECR_CONTROLLER_ADAPTIVE_PARALLELISM_ENABLED=0\n"),
            "{env}"
        );
        assert!(
            env.contains("PECR_CONTROLLER_BATCH_MODE_ENABLED=1\n"),
            "{env}"
        );
        assert!(markdown(&decision).contains("| run_rlm | p95_ms 150.000 > 100 |"));
    }

    #[test]
    fn a_gated_scenario_missing_from_the_summary_is_a_violation() {
        let mut gates = gates();
        gates
            .scenarios
            .insert("fault_ledger_restart".into(), Gate::default());
        let decision = decide(&summary(80.0), &gates, ALL_ON);
        assert_eq!(decision.action, Action::DisableAdaptiveParallelism);
        assert_eq!(decision.violations[0].what, "not in the summary");
    }
}
