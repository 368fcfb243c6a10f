//! Runs the RLM bridge's Python unit tests and the vendored-package check,
//! so `cargo test` covers the script the RLM engine spawns (spec 30 §10.7).

use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `python3 <args>` from the workspace root and fails with its output.
fn python(args: &[&str]) {
    let output = Command::new("python3")
        .args(args)
        .current_dir(workspace_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PECR_RLM_BACKEND")
        .output()
        .unwrap_or_else(|err| panic!("cannot run python3 {args:?}: {err}"));
    assert!(
        output.status.success(),
        "python3 {args:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bridge_script_unit_tests_pass() {
    python(&["-m", "unittest", "discover", "-s", "scripts/rlm/tests"]);
}

#[test]
fn vendored_rlm_matches_its_manifest() {
    python(&["scripts/rlm/verify_vendor_rlm.py"]);
}
