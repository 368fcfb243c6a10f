//! The privilege boundaries of the design, checked on the resolved
//! dependency graph (all dependency kinds): the controller can never reach a
//! database driver or another service's code, the contract crates stay free
//! of services and I/O, and authentication stays free of hosting.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// (package, packages it must never reach, directly or transitively).
const RULES: &[(&str, &[&str])] = &[
    (
        "pecr-controller",
        &[
            "pecr-gateway",
            "pecr-ledger-writer",
            "pecr-adapters",
            "pecr-policy",
            "tokio-postgres",
            "deadpool-postgres",
            "refinery",
            "postgres",
        ],
    ),
    (
        "pecr-gateway",
        &["pecr-controller", "pecr-ledger-writer", "refinery"],
    ),
    ("pecr-ledger-writer", &["pecr-controller", "pecr-gateway"]),
    (
        "pecr-cli",
        &[
            "pecr-controller",
            "pecr-gateway",
            "pecr-ledger-writer",
            "tokio-postgres",
        ],
    ),
    (
        "pecr-contracts",
        &[
            "pecr-controller",
            "pecr-gateway",
            "pecr-ledger-writer",
            "pecr-proto",
            "tonic",
            "tokio",
            "tokio-postgres",
        ],
    ),
    (
        "pecr-errors",
        &[
            "pecr-controller",
            "pecr-gateway",
            "pecr-ledger-writer",
            "tokio-postgres",
        ],
    ),
    (
        "pecr-proto",
        &[
            "pecr-controller",
            "pecr-gateway",
            "pecr-ledger-writer",
            "tokio-postgres",
        ],
    ),
];

/// (package, packages its normal dependencies must never reach when it is
/// built on its own). `cargo metadata` resolves features for the whole
/// workspace, where tonic's "router" feature (turned on by the hosting
/// crates) links tonic to axum; `cargo tree -p` resolves them per package.
const BUILT_ALONE_RULES: &[(&str, &[&str])] =
    &[("pecr-auth", &["pecr-edge", "pecr-server", "axum"])];

/// The host target triple, so the graph is the one actually built here.
fn host_triple() -> String {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc reports its host")
}

/// Package name → names of every package it depends on (any kind).
fn dependency_graph() -> &'static HashMap<String, Vec<String>> {
    static GRAPH: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    GRAPH.get_or_init(load_dependency_graph)
}

fn load_dependency_graph() -> HashMap<String, Vec<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host_triple(),
        ])
        .current_dir(pecr_testkit::workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| {
            let name = names.get(node["id"].as_str()?)?;
            let deps = node["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|dep| names.get(dep["pkg"].as_str()?).map(|n| (*n).to_owned()))
                .collect();
            Some(((*name).to_owned(), deps))
        })
        .collect()
}

/// Names of every package `package`'s normal dependencies reach, with the
/// features it turns on when built on its own.
fn normal_dependencies_built_alone(package: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--package",
            package,
            "--edges",
            "normal",
            "--target",
            &host_triple(),
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(pecr_testkit::workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != package)
        .map(str::to_owned)
        .collect()
}

fn reachable(graph: &HashMap<String, Vec<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(package) = stack.pop() {
        for dep in graph.get(&package).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn boundary_rules_hold() {
    let graph = dependency_graph();
    let mut violations = BTreeSet::new();
    for (package, forbidden) in RULES {
        assert!(
            graph.contains_key(*package),
            "rule package {package} is in the workspace"
        );
        let reach = reachable(graph, package);
        for target in *forbidden {
            if reach.contains(*target) {
                violations.insert(format!("{package} -> {target}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden workspace dependency edges found: {violations:?}"
    );
}

#[test]
fn built_alone_rules_hold() {
    let mut violations = BTreeSet::new();
    for (package, forbidden) in BUILT_ALONE_RULES {
        let reach = normal_dependencies_built_alone(package);
        assert!(!reach.is_empty(), "{package} has a dependency tree");
        for target in *forbidden {
            if reach.contains(*target) {
                violations.insert(format!("{package} -> {target}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden normal dependencies found: {violations:?}"
    );
}

#[test]
fn the_walk_is_transitive() {
    let graph = dependency_graph();
    // sha2 is a dependency of a dependency (pecr-contracts) of ledger-writer.
    let reach = reachable(graph, "pecr-ledger-writer");
    assert!(
        reach.contains("tokio-postgres")
            && reach.contains("pecr-contracts")
            && reach.contains("sha2")
    );
}

#[test]
fn the_built_alone_walk_is_transitive() {
    // sha2 is a dependency of a dependency (pecr-contracts) of pecr-auth.
    let reach = normal_dependencies_built_alone("pecr-auth");
    assert!(reach.contains("pecr-contracts") && reach.contains("sha2"));
}
