//! The RLM engine against the real gateway (spec 30 §16 scenarios 23–30, 37):
//! the spec's bridge (spec 30 §10.7, `scripts/rlm/pecr_rlm_bridge.py`) with
//! its mock backend, stub bridges for every
//! protocol fault, fair batch order read back from the ledger, and no bridge
//! process left behind. Needs a controller built with `--features rlm`
//! (scripts/test.sh builds it so).

use std::ops::Range;
use std::path::PathBuf;

use pecr_errors::ErrorCode;
use pecr_mesh_tests::{
    Mesh, MeshOptions, as_principal, budget, client_for, error_of, replay, traced_run,
};
use pecr_proto::v1::controller_service_client::ControllerServiceClient;
use pecr_proto::v1::{self, TerminalMode};
use pecr_testkit::{ServiceProcess, http_get, workspace_root};
use tonic::transport::Channel;

fn stub(name: &str) -> PathBuf {
    workspace_root().join("tests/mesh/fixtures/rlm").join(name)
}

fn bridge() -> PathBuf {
    workspace_root().join("scripts/rlm/pecr_rlm_bridge.py")
}

/// A controller on the mesh running the RLM engine with `script`.
async fn rlm_controller(
    mesh: &Mesh,
    script: PathBuf,
    extra: &[(&'static str, &str)],
) -> ServiceProcess {
    let mut env: Vec<(&'static str, String)> = vec![
        ("PECR_CONTROLLER_ENGINE", "rlm".into()),
        ("PECR_RLM_SANDBOX_ACK", "1".into()),
        ("PECR_RLM_SCRIPT_PATH", script.display().to_string()),
    ];
    env.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
    mesh.start_controller(&env).await
}

/// `script` under a path of its own (a link in `target/tmp/<dir>`), so the
/// other tests' process counts never see this test's bridges.
fn own_path(script: PathBuf, dir: &str) -> PathBuf {
    let own = workspace_root().join("target/tmp").join(dir);
    std::fs::create_dir_all(&own).expect("scratch dir");
    let linked = own.join(script.file_name().expect("a file name"));
    let _ = std::fs::remove_file(&linked);
    std::os::unix::fs::symlink(&script, &linked).expect("link the bridge");
    linked
}

/// Trace ids are ULIDs; one per run keeps ledger lookups apart.
fn trace(n: u8) -> String {
    format!("01JR5M00000000000000000{n:03}")
}

/// Asks `question` as `dev` once per trace number in `traces`: every run
/// must fail in the bridge (`why` is the panic message when one does not).
async fn runs_fail_in_the_bridge(
    client: &mut ControllerServiceClient<Channel>,
    question: &str,
    traces: Range<u8>,
    why: &str,
) {
    for n in traces {
        let status = client
            .run(traced_run("dev", question, None, &trace(n)))
            .await
            .expect_err(why);
        assert_eq!(error_of(&status).code, ErrorCode::RlmBridgeFailed);
    }
}

/// Bridge processes still running from `script`.
fn processes_running(script: &std::path::Path) -> usize {
    let needle = script.display().to_string();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
                .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(&needle))
                .count()
        })
        .unwrap_or(0)
}

async fn metric(controller: &ServiceProcess, name: &str) -> String {
    http_get(&controller.http_url("/metrics"))
        .await
        .body
        .lines()
        .find(|line| line.starts_with(name))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn scenarios_23_24_the_reference_bridge_batches_fetch_span() {
    let mesh = Mesh::start().await;
    // 23: batch mode, parallelism 2; support's search finds two documents.
    let batched = rlm_controller(&mesh, bridge(), &[]).await;
    let response = client_for(&batched)
        .await
        .run(traced_run(
            "support",
            "fixture document",
            Some(budget(100, 1_048_576, 10_000, 5, Some(2))),
            &trace(0),
        ))
        .await
        .expect("run")
        .into_inner();
    assert_eq!(response.stop_reason, "rlm_done");
    assert_eq!(
        response.response_text,
        "UNKNOWN: insufficient evidence to answer the query."
    );
    let bundle = replay(&mut client_for(&batched).await, "support", &response.run_id).await;
    assert_eq!(bundle.operator_calls_used, 5);
    assert_eq!(bundle.depth_used, 4);
    assert_eq!(bundle.evidence_ref_count, 2);
    assert_eq!(
        bundle.metadata.as_ref().map(|m| m.engine_mode.as_str()),
        Some("rlm")
    );
    assert_eq!(
        mesh.operator_calls(&trace(0)).await,
        [
            "list_versions",
            "fetch_rows",
            "search",
            "fetch_span",
            "fetch_span"
        ]
    );
    // Both spans went through the concurrent batch dispatcher.
    assert_eq!(
        metric(
            &batched,
            "pecr_controller_operator_queue_wait_seconds_count"
        )
        .await,
        "pecr_controller_operator_queue_wait_seconds_count 2"
    );

    // 24: batch mode off runs the same calls one at a time.
    let sequential = rlm_controller(
        &mesh,
        bridge(),
        &[("PECR_CONTROLLER_BATCH_MODE_ENABLED", "0")],
    )
    .await;
    let response = client_for(&sequential)
        .await
        .run(traced_run(
            "support",
            "fixture document",
            Some(budget(100, 1_048_576, 10_000, 5, Some(4))),
            &trace(1),
        ))
        .await
        .expect("run")
        .into_inner();
    assert_eq!(response.stop_reason, "rlm_done");
    assert_eq!(mesh.operator_calls(&trace(1)).await.len(), 5);
    assert_eq!(
        metric(
            &sequential,
            "pecr_controller_operator_queue_wait_seconds_count"
        )
        .await,
        "pecr_controller_operator_queue_wait_seconds_count 0"
    );
    assert_eq!(processes_running(&bridge()), 0);
}

#[tokio::test]
async fn scenarios_25_26_fair_batches_and_per_operator_caps() {
    let mesh = Mesh::start().await;
    let fair = rlm_controller(
        &mesh,
        stub("batch_fair.py"),
        &[(
            "PECR_OPERATOR_CONCURRENCY_POLICIES",
            r#"{"fetch_span":{"fairness_weight":2}}"#,
        )],
    )
    .await;
    let response = client_for(&fair)
        .await
        .run(traced_run(
            "dev",
            "q",
            Some(budget(100, 1_048_576, 10_000, 5, Some(1))),
            &trace(2),
        ))
        .await
        .expect("run")
        .into_inner();
    assert_eq!(response.stop_reason, "rlm_done");
    // Width 1: the ledger order is the start order.
    assert_eq!(
        mesh.operator_calls(&trace(2)).await,
        ["search", "fetch_span", "fetch_span", "search", "search"]
    );

    let capped = rlm_controller(
        &mesh,
        stub("batch_caps.py"),
        &[(
            "PECR_OPERATOR_CONCURRENCY_POLICIES",
            r#"{"search":{"max_in_flight":1},"fetch_span":{"max_in_flight":1}}"#,
        )],
    )
    .await;
    let response = client_for(&capped)
        .await
        .run(traced_run(
            "dev",
            "q",
            Some(budget(100, 1_048_576, 10_000, 5, Some(4))),
            &trace(3),
        ))
        .await
        .expect("run")
        .into_inner();
    assert_eq!(response.stop_reason, "rlm_done");
    assert_eq!(mesh.operator_calls(&trace(3)).await.len(), 6);
}

#[tokio::test]
async fn scenarios_27_to_30_bridge_faults_fail_cleanly_and_leave_no_process() {
    let mesh = Mesh::start().await;
    // 27: a legacy bridge answers `start` with `done`; no operator is called.
    let legacy = rlm_controller(&mesh, stub("legacy_done.py"), &[]).await;
    let response = client_for(&legacy)
        .await
        .run(traced_run("dev", "q", None, &trace(4)))
        .await
        .expect("run")
        .into_inner();
    assert_eq!(response.response_text, "UNKNOWN: legacy bridge");
    assert!(mesh.operator_calls(&trace(4)).await.is_empty());

    // (stub script, extra settings, expected code, expected message part)
    type Fault = (
        &'static str,
        &'static [(&'static str, &'static str)],
        ErrorCode,
        &'static str,
    );
    let faults: [Fault; 5] = [
        ("bad_version.py", &[], ErrorCode::RlmBridgeProtocol, ""),
        (
            "not_allowlisted.py",
            &[],
            ErrorCode::RlmBridgeFailed,
            "reason=bridge_operator_not_allowlisted",
        ),
        (
            "exits_early.py",
            &[],
            ErrorCode::RlmBridgeFailed,
            "reason=bridge_eof",
        ),
        ("garbage.py", &[], ErrorCode::RlmBridgeProtocol, ""),
        (
            "",
            &[("PECR_RLM_BACKEND", "other")],
            ErrorCode::RlmBridgeFailed,
            "reason=bridge_eof",
        ),
    ];
    for (index, (name, extra, code, reason)) in faults.into_iter().enumerate() {
        let script = if name.is_empty() {
            bridge()
        } else {
            stub(name)
        };
        let controller = rlm_controller(&mesh, script.clone(), extra).await;
        let trace_id = trace(5 + index as u8);
        let status = client_for(&controller)
            .await
            .run(traced_run("dev", "q", None, &trace_id))
            .await
            .expect_err("bridge fault");
        let error = error_of(&status);
        assert_eq!(
            (error.code, error.http_status),
            (code, 500),
            "{name}: {error:?}"
        );
        assert!(error.message.contains(reason), "{name}: {}", error.message);
        assert_eq!(error.hint, TerminalMode::SourceUnavailable);
        assert!(
            mesh.operator_calls(&trace_id).await.is_empty(),
            "{name} reached the gateway"
        );
        assert_eq!(
            processes_running(&script),
            0,
            "{name} left its bridge running"
        );
        // The failed run stored nothing.
        let replays = client_for(&controller)
            .await
            .list_replays(as_principal("dev", v1::ListReplaysRequest::default()))
            .await
            .expect("list")
            .into_inner()
            .replays;
        assert!(
            replays.iter().all(|meta| meta.trace_id != trace_id),
            "{name}"
        );
    }

    // A silent bridge is killed at the wall-clock budget. It never exits by
    // itself, so only the budget can end the run; the outer 30 s turns a
    // missing budget stop into a failure instead of a hang.
    let silent = rlm_controller(&mesh, stub("silent.py"), &[]).await;
    let mut client = client_for(&silent).await;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        client.run(traced_run(
            "dev",
            "q",
            Some(budget(10, 0, 300, 5, None)),
            &trace(12),
        )),
    )
    .await
    .expect("the wall-clock budget ended the run")
    .expect("a budget stop still finalizes")
    .into_inner();
    assert_eq!(response.stop_reason, "budget_max_wallclock_ms");
    assert_eq!(processes_running(&stub("silent.py")), 0);
}

#[tokio::test]
async fn scenario_37_scorecards_compare_the_engines() {
    let mesh = Mesh::start().await;
    let mut baseline = mesh.client().await;
    let supported = baseline
        .run(traced_run(
            "dev",
            "What is the customer status and plan tier?",
            None,
            &trace(13),
        ))
        .await
        .expect("baseline run")
        .into_inner();
    assert_eq!(supported.terminal_mode, TerminalMode::Supported as i32);

    let missing = rlm_controller(&mesh, stub("missing_source.py"), &[]).await;
    let unavailable = client_for(&missing)
        .await
        .run(traced_run("dev", "q", None, &trace(14)))
        .await
        .expect("rlm run")
        .into_inner();
    assert_eq!(unavailable.stop_reason, "operator_error");
    assert_eq!(
        unavailable.terminal_mode,
        TerminalMode::SourceUnavailable as i32
    );

    let cards = baseline
        .get_scorecards(as_principal("dev", v1::GetScorecardsRequest::default()))
        .await
        .expect("scorecards")
        .into_inner()
        .scorecards;
    assert_eq!(cards.len(), 2);
    assert_eq!(
        (cards[0].engine_mode.as_str(), cards[1].engine_mode.as_str()),
        ("baseline", "rlm")
    );
    assert_eq!(cards[0].average_quality_score, 100.0);
    assert!(cards[0].average_quality_score > cards[1].average_quality_score);
    assert_eq!(cards[1].source_unavailable_rate, 1.0);
}

#[tokio::test]
async fn the_bridge_gets_no_secret_and_its_stderr_is_not_logged() {
    const SECRET: &str = "shared-secret-canary-8c1e4d";
    const DB_PASSWORD: &str = "db-password-canary-51a7";
    let secret = vec![("PECR_LOCAL_AUTH_SHARED_SECRET", SECRET.to_owned())];
    let mesh = Mesh::start_with(MeshOptions {
        gateway: secret.clone(),
        controller: secret,
    })
    .await;
    let db_url = format!("postgres://pecr:{DB_PASSWORD}@127.0.0.1:5432/pecr");
    // The interpreter itself: a launcher script (a pyenv shim) would add
    // variables of its own between the controller and Python.
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    let python = String::from_utf8_lossy(&python.stdout).trim().to_owned();
    let mut controller = rlm_controller(
        &mesh,
        stub("env_dump.py"),
        &[
            ("PECR_DB_URL", &db_url),
            ("PECR_RLM_BACKEND", "mock"),
            ("PECR_RLM_PYTHON", &python),
        ],
    )
    .await;
    let mut request = traced_run("dev", "smoke", None, &trace(40));
    request
        .metadata_mut()
        .insert("x-pecr-local-auth-secret", SECRET.parse().expect("secret"));
    let response = client_for(&controller)
        .await
        .run(request)
        .await
        .expect("run")
        .into_inner();
    assert_eq!(response.stop_reason, "rlm_done");
    let names = response
        .response_text
        .strip_prefix("UNKNOWN: leaked 0 env ")
        .unwrap_or_else(|| panic!("answer: {}", response.response_text));
    let names: Vec<&str> = names.split(',').collect();
    assert!(names.contains(&"PATH"), "{names:?}");
    assert!(names.contains(&"PECR_RLM_BACKEND"), "{names:?}");
    let allowed = [
        "PATH",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "PECR_RLM_BACKEND",
        "PYTHONNOUSERSITE",
        "PYTHONDONTWRITEBYTECODE",
    ];
    for name in &names {
        assert!(allowed.contains(name), "{name} reached the bridge");
    }

    // Stderr is summarised: counted and hashed, never copied into the log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|line: &String| line.contains("rlm.bridge.stderr"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no stderr summary: {lines:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        lines.extend(controller.drain_stderr());
    }
    let summary = lines
        .iter()
        .find(|line| line.contains("rlm.bridge.stderr"))
        .cloned()
        .unwrap_or_default();
    assert!(summary.contains("\"bytes\""), "{summary}");
    assert!(summary.contains("\"sha256\""), "{summary}");
    let logs = lines.join("\n");
    for leaked in [
        "BRIDGE_STDERR_CANARY_3f9c",
        "stderr-dump",
        SECRET,
        DB_PASSWORD,
    ] {
        assert!(!logs.contains(leaked), "the log holds {leaked}");
    }
}

/// RunStream with the RLM engine: the session first (the engine gets an open
/// session), then one step per bridge request: single calls and the
/// `fetch_span` batch, whose calls are reported as they complete.
#[tokio::test]
async fn a_streamed_rlm_run_reports_each_bridge_request_as_a_step() {
    use v1::run_stream_response::Event;
    let mesh = Mesh::start().await;
    let script = own_path(bridge(), "rlm-stream");
    let controller = rlm_controller(&mesh, script.clone(), &[]).await;
    let mut stream = client_for(&controller)
        .await
        .run_stream(as_principal(
            "support",
            v1::RunStreamRequest {
                query: "fixture document".into(),
                budget: Some(budget(100, 1_048_576, 10_000, 5, Some(2))),
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    let mut events = Vec::new();
    while let Some(message) = stream.message().await.expect("event") {
        events.push(message.event.expect("set"));
    }
    assert!(
        matches!(events.first(), Some(Event::SessionCreated(_))),
        "{events:?}"
    );
    let steps: Vec<Vec<String>> = events
        .iter()
        .filter_map(|event| match event {
            Event::StepStarted(step) => Some(step.operators.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            vec!["list_versions".to_owned()],
            vec!["fetch_rows".to_owned()],
            vec!["search".to_owned()],
            vec!["fetch_span".to_owned(), "fetch_span".to_owned()],
        ]
    );
    let spans = events
        .iter()
        .filter(|event| matches!(event, Event::OperatorCall(call) if call.step == 3 && call.op_name == "fetch_span" && call.ok && call.evidence_unit_ids.len() == 1))
        .count();
    assert_eq!(spans, 2, "{events:?}");
    match events.last() {
        Some(Event::Result(response)) => assert_eq!(response.stop_reason, "rlm_done"),
        other => panic!("{other:?}"),
    }
    assert_eq!(processes_running(&script), 0);
}

/// `PECR_CONTROLLER_AUTO_FALLBACK`: after two bridge failures in a row the
/// controller answers with the baseline engine; both failing runs still
/// failed for their callers, and the switch shows in the metrics. Without
/// the setting the same bridge keeps failing.
#[tokio::test]
async fn repeated_bridge_failures_fall_back_to_the_baseline_engine() {
    let mesh = Mesh::start().await;
    let question = "What is the customer status and plan tier?";
    let failing = own_path(stub("exits_early.py"), "rlm-fallback");
    let guarded = rlm_controller(
        &mesh,
        failing.clone(),
        &[
            ("PECR_CONTROLLER_AUTO_FALLBACK", "1"),
            ("PECR_CONTROLLER_AUTO_FALLBACK_AFTER", "2"),
        ],
    )
    .await;
    let mut client = client_for(&guarded).await;
    runs_fail_in_the_bridge(&mut client, question, 20..22, "the bridge fails").await;
    assert_eq!(
        metric(&guarded, "pecr_controller_engine_fallback_active").await,
        "pecr_controller_engine_fallback_active 1"
    );
    let response = client
        .run(traced_run("dev", question, None, &trace(22)))
        .await
        .expect("the baseline answers")
        .into_inner();
    assert_eq!(response.terminal_mode, TerminalMode::Supported as i32);
    assert_eq!(response.stop_reason, "plan_complete");
    let bundle = replay(&mut client, "dev", &response.run_id).await;
    assert_eq!(
        bundle.metadata.as_ref().map(|m| m.engine_mode.as_str()),
        Some("baseline")
    );
    assert_eq!(
        metric(&guarded, "pecr_controller_engine_fallbacks_total").await,
        "pecr_controller_engine_fallbacks_total 1"
    );

    let unguarded = rlm_controller(&mesh, failing.clone(), &[]).await;
    let mut client = client_for(&unguarded).await;
    runs_fail_in_the_bridge(
        &mut client,
        question,
        23..26,
        "no fallback without the setting",
    )
    .await;
    assert_eq!(
        metric(&unguarded, "pecr_controller_engine_fallback_active").await,
        "pecr_controller_engine_fallback_active 0"
    );
    assert_eq!(processes_running(&failing), 0);
}
