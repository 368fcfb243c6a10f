//! End to end for each principal of the fixture policy: the terminal mode of
//! a set of questions, and no fixture canary in any response, replay or log
//! line. Also the `pecr` CLI and grpcurl against the live controller.

use std::process::Command;

use pecr_mesh_tests::{Mesh, as_principal, assert_no_canary, run_request};
use pecr_proto::v1::{self, TerminalMode};
use pecr_testkit::{binary_path, tool_path};

const STATUS_QUESTION: &str = "What is the customer status and plan tier?";

#[tokio::test]
async fn every_principal_gets_the_mode_its_policy_allows_and_no_canary_leaks() {
    let mut mesh = Mesh::start().await;
    let mut client = mesh.client().await;
    let cases = [
        ("dev", STATUS_QUESTION, TerminalMode::Supported),
        ("support", STATUS_QUESTION, TerminalMode::Supported),
        (
            "guest",
            STATUS_QUESTION,
            TerminalMode::InsufficientPermission,
        ),
        ("dev", "smoke", TerminalMode::InsufficientEvidence),
        ("dev", "fixture document", TerminalMode::Supported),
        ("support", "fixture document", TerminalMode::Supported),
        // dev may read the restricted document: it is cited, never quoted.
        (
            "dev",
            "PECR_CANARY_RESTRICTED_ALPHA",
            TerminalMode::Supported,
        ),
        (
            "support",
            "PECR_CANARY_RESTRICTED_ALPHA",
            TerminalMode::InsufficientEvidence,
        ),
        ("support", "admin_note", TerminalMode::InsufficientEvidence),
        (
            "support",
            "PECR_CANARY_PG_ADMIN_DELTA",
            TerminalMode::InsufficientEvidence,
        ),
        ("guest", "", TerminalMode::InsufficientPermission),
    ];
    for (principal, query, expected) in cases {
        let response = client
            .run(run_request(principal, query, None))
            .await
            .unwrap_or_else(|status| panic!("{principal} {query:?}: {status:?}"))
            .into_inner();
        assert_eq!(
            TerminalMode::try_from(response.terminal_mode).ok(),
            Some(expected),
            "{principal} {query:?}: {response:?}"
        );
        assert_no_canary(
            &format!("{principal} {query:?} response"),
            &format!("{response:?}"),
        );
        let bundle = client
            .get_replay(as_principal(
                principal,
                v1::GetReplayRequest {
                    run_id: response.run_id.clone(),
                },
            ))
            .await
            .unwrap_or_else(|status| panic!("replay: {status:?}"))
            .into_inner();
        assert_no_canary(
            &format!("{principal} {query:?} replay"),
            &format!("{bundle:?}"),
        );
        if expected == TerminalMode::Supported {
            let claims = response
                .claim_map
                .as_ref()
                .map(|m| m.claims.clone())
                .unwrap_or_default();
            assert!(!claims.is_empty());
            assert!(
                claims
                    .iter()
                    .all(|claim| !claim.evidence_unit_ids.is_empty())
            );
        }
    }
    // support reads the same public row as dev, never an admin note.
    let support = client
        .run(run_request("support", "customer admin note status", None))
        .await
        .expect("run")
        .into_inner();
    assert!(
        !support.response_text.contains("admin_note"),
        "{}",
        support.response_text
    );
    assert_no_canary("logs", &mesh.logs().join("\n"));
}

/// On a terminal (a pseudo-terminal made by util-linux `script`), `pecr run`
/// shows the run's steps as they happen, then the answer; `--json` shows
/// only the JSON.
#[tokio::test]
async fn the_cli_shows_live_steps_on_a_terminal_only() {
    let mesh = Mesh::start().await;
    let pecr = binary_path("pecr");
    let command = |extra: &str| {
        format!(
            "{} --controller {} --principal dev {extra} run 'What is the customer status and plan tier?'",
            pecr.display(),
            mesh.controller.grpc_url()
        )
    };
    let on_terminal = |extra: &str| {
        let output = Command::new("script")
            .args(["-qec", &command(extra), "/dev/null"])
            .output()
            .expect("run script");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let shown = on_terminal("");
    let step = shown
        .find("· step 1: ")
        .unwrap_or_else(|| panic!("{shown}"));
    let finalizing = shown
        .find("· finalizing: ")
        .unwrap_or_else(|| panic!("{shown}"));
    let answer = shown
        .find("SUPPORTED · coverage")
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(step < finalizing && finalizing < answer, "{shown}");
    assert!(shown.contains("· session "), "{shown}");
    assert!(shown.contains("    ✓ "), "{shown}");
    assert_no_canary("pecr on a terminal", &shown);

    let json = on_terminal("--json");
    assert!(!json.contains("· step"), "{json}");
    let line = json
        .trim()
        .trim_start_matches("\u{1b}[2K")
        .trim_start_matches('\r');
    let parsed: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {json:?}"));
    assert_eq!(parsed["terminal_mode"], "SUPPORTED");
}

#[tokio::test]
async fn the_cli_and_grpcurl_run_a_query() {
    let mesh = Mesh::start().await;
    let controller = mesh.controller.grpc_url();
    let output = Command::new(binary_path("pecr"))
        .args([
            "--controller",
            &controller,
            "--principal",
            "dev",
            "run",
            STATUS_QUESTION,
        ])
        .output()
        .expect("run pecr");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SUPPORTED"), "{stdout}");
    assert!(stdout.contains("status is active"), "{stdout}");
    assert!(
        stdout.contains("safe_customer_view_public:local:cust_public_1"),
        "{stdout}"
    );
    // Not a terminal: the steps stay off stderr.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("· step"), "{stderr}");

    let json = Command::new(binary_path("pecr"))
        .args([
            "--controller",
            &controller,
            "--principal",
            "dev",
            "--json",
            "replays",
            "list",
        ])
        .output()
        .expect("run pecr");
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(listed["replays"].as_array().map(Vec::len), Some(1));

    let denied = Command::new(binary_path("pecr"))
        .args(["--controller", &controller, "run", "q"])
        .output()
        .expect("run pecr");
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("ERR_POLICY_DENIED"));

    let grpcurl = Command::new(tool_path("grpcurl"))
        .args([
            "-plaintext",
            "-H",
            "x-pecr-principal-id: dev",
            "-d",
            r#"{"query":"smoke"}"#,
            &mesh.controller.grpc_addr.to_string(),
            "pecr.v1.ControllerService/Run",
        ])
        .output()
        .expect("run grpcurl");
    let stdout = String::from_utf8_lossy(&grpcurl.stdout);
    assert!(
        grpcurl.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&grpcurl.stderr)
    );
    assert!(
        stdout.contains("\"terminalMode\": \"INSUFFICIENT_EVIDENCE\""),
        "{stdout}"
    );
}
