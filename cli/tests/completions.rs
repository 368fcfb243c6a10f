//! `pecr completions SHELL` as a user runs it: the real binary prints a
//! completion script for the command `pecr` in that shell's own syntax,
//! naming every subcommand, nothing on stderr, exit 0.

use std::process::{Command, Output};

fn pecr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pecr"))
        .args(args)
        .env_remove("PECR_CONTROLLER_URL")
        .output()
        .expect("the pecr binary runs")
}

/// The script for `shell`, checked to be a successful, quiet answer.
fn script(shell: &str) -> String {
    let output = pecr(&["completions", shell]);
    assert_eq!(output.status.code(), Some(0), "pecr completions {shell}");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the script is UTF-8")
}

const SUBCOMMANDS: [&str; 9] = [
    "run",
    "replays",
    "eval",
    "scorecards",
    "completions",
    "contract-test",
    "canary",
    "release",
    "perf",
];

/// Every subcommand and some global flags, each long flag spelled as the
/// shell's syntax does (`--name`, or fish's `-l name`).
fn assert_lists_commands_and_flags(shell: &str, script: &str, long_flag: &str) {
    for name in SUBCOMMANDS {
        assert!(script.contains(name), "{shell}: no {name:?} in:\n{script}");
    }
    for name in ["controller", "principal", "json"] {
        let flag = format!("{long_flag}{name}");
        assert!(script.contains(&flag), "{shell}: no {flag:?}");
    }
}

#[test]
fn bash_script_registers_a_completion_function_for_pecr() {
    let script = script("bash");
    assert!(script.contains("_pecr()"), "{script}");
    let registration = script
        .lines()
        .find(|line| line.trim_start().starts_with("complete "))
        .expect("a `complete` line");
    assert!(registration.contains("-F _pecr") && registration.trim_end().ends_with("pecr"));
    assert_lists_commands_and_flags("bash", &script, "--");
}

#[test]
fn zsh_script_is_a_compdef_for_pecr() {
    let script = script("zsh");
    assert!(script.starts_with("#compdef pecr"), "{script}");
    assert!(script.contains("_pecr()"), "{script}");
    assert_lists_commands_and_flags("zsh", &script, "--");
}

#[test]
fn fish_script_completes_the_pecr_command() {
    let script = script("fish");
    let completes = script
        .lines()
        .filter(|line| line.starts_with("complete -c pecr "))
        .count();
    assert!(
        completes > 10,
        "{completes} `complete -c pecr` lines:\n{script}"
    );
    for name in SUBCOMMANDS {
        assert!(
            script.contains(&format!("-a \"{name}\"")),
            "fish: subcommand {name:?} not offered"
        );
    }
    assert_lists_commands_and_flags("fish", &script, "-l ");
}

#[test]
fn other_shells_are_a_usage_error() {
    let output = pecr(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh") && stderr.contains("fish"),
        "{stderr}"
    );
}
