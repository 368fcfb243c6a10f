//! The `pecr` binary as a user runs it: help texts, usage errors, and a
//! controller that is not there. Calls against a live controller are
//! covered by the mesh tests.

use std::net::TcpListener;
use std::process::{Command, Output};

/// The binary with none of the caller's `PECR_*` settings leaking in.
fn pecr(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pecr"));
    for key in [
        "PECR_CONTROLLER_URL",
        "PECR_PRINCIPAL_ID",
        "PECR_LOCAL_AUTH_SHARED_SECRET",
        "PECR_BEARER_TOKEN",
        "PECR_TLS_CA",
        "PECR_TLS_CLIENT_CERT",
        "PECR_TLS_CLIENT_KEY",
        "PECR_CONTROLLER_TLS_SERVER_NAME",
    ] {
        command.env_remove(key);
    }
    command.args(args).output().expect("the pecr binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nothing listens on: bound by us, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn help_lists_the_commands_and_global_flags() {
    let output = pecr(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    for needle in [
        "run",
        "replays",
        "eval",
        "scorecards",
        "--controller",
        "PECR_CONTROLLER_URL",
        "http://127.0.0.1:50052",
        "--principal",
        "--secret",
        "--token",
        "--json",
        "--timeout-ms",
        "Exit codes:",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
}

#[test]
fn run_help_explains_the_budget() {
    let output = pecr(&["run", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    assert!(help.contains("<QUERY>"), "{help}");
    assert!(help.contains("--budget <JSON>"), "{help}");
    assert!(help.contains("max_parallelism"), "{help}");
}

#[test]
fn secrets_from_the_environment_stay_out_of_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_pecr"))
        .arg("--help")
        .env("PECR_LOCAL_AUTH_SHARED_SECRET", "hunter2-secret")
        .env("PECR_BEARER_TOKEN", "hunter2-token")
        .output()
        .expect("runs");
    let help = text(&output.stdout);
    assert!(!help.contains("hunter2"), "{help}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["run"],
        &[
            "run",
            "q",
            "--budget",
            r#"{"max_operator_calls":1,"nope":1}"#,
        ],
        &["eval", "submit"],
        &["--controller", "ftp://127.0.0.1:1", "scorecards"],
    ] {
        let output = pecr(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_unreachable_controller_exits_3_and_says_where() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let output = pecr(&["--controller", &url, "run", "hello"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the controller at {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("scripts/dev-up.sh"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "not a terminal, so no spinner either"
    );
    // The spinner never writes to a pipe.
    assert!(!stderr.contains('\r'), "{stderr:?}");
}

#[test]
fn an_unreachable_gateway_is_named_as_such() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let output = pecr(&["contract-test", "--gateway", &url]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the gateway at {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("--gateway (PECR_GATEWAY_URL)"), "{stderr}");
}

#[test]
fn an_unreachable_controller_in_json_mode_prints_an_error_body() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let output = Command::new(env!("CARGO_BIN_EXE_pecr"))
        .args(["--json", "scorecards"])
        .env("PECR_CONTROLLER_URL", &url)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(3));
    let stdout = text(&output.stdout);
    assert!(
        stdout.ends_with('\n') && stdout.lines().count() == 1,
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""code":"ERR_SOURCE_UNAVAILABLE""#),
        "{stdout}"
    );
    assert!(stdout.contains(r#""retryable":true"#), "{stdout}");
    assert!(text(&output.stderr).contains(&url));
}
