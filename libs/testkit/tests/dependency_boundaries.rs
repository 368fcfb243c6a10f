//! The privilege boundaries of the design, checked on the resolved
//! dependency graph (all dependency kinds): the controller can never reach a
//! database driver or another service's code, the contract crates stay free
//! of services, I/O and hosting, and authentication, replay and the CLI stay
//! free of hosting (the CLI compiles no HTTP server at all).

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
            "pecr-replay",
            "pecr-server",
            "pecr-edge",
            "pecr-edge-json",
            "pecr-auth",
            "tonic",
            "tokio",
            "tokio-postgres",
            "axum",
            "hyper",
            "tower-http",
        ],
    ),
    (
        "pecr-replay",
        &[
            "pecr-controller",
            "pecr-gateway",
            "pecr-ledger-writer",
            "pecr-server",
            "pecr-edge",
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
            "pecr-replay",
            "tokio-postgres",
        ],
    ),
];

/// (package, packages its normal dependencies must never reach when it is
/// built on its own). `cargo metadata` resolves features for the whole
/// workspace, where tonic's "router" feature (turned on by the hosting
/// crates) links tonic to axum; `cargo tree -p` resolves them per package.
const BUILT_ALONE_RULES: &[(&str, &[&str])] = &[
    ("pecr-auth", &["pecr-edge", "pecr-server", "axum"]),
    ("pecr-replay", &["pecr-edge", "pecr-server", "axum"]),
    // The pool helper is a database library, not hosting.
    ("pecr-pg", &["pecr-server", "pecr-edge", "axum", "tonic"]),
    (
        "pecr-cli",
        &["pecr-edge", "pecr-server", "axum", "tower-http"],
    ),
    (
        "pecr-edge-json",
        &["pecr-edge", "pecr-server", "axum", "hyper", "tonic"],
    ),
];

/// (package, (dependency, feature) pairs that must stay off when it is
/// built on its own): the HTTP servers of hyper and tonic, which tonic's
/// client never needs.
const BUILT_ALONE_FEATURE_RULES: &[(&str, &[(&str, &str)])] = &[(
    "pecr-cli",
    &[
        ("hyper", "server"),
        ("hyper-util", "server"),
        ("hyper-util", "server-auto"),
        ("hyper-util", "server-graceful"),
        ("tonic", "server"),
        ("tonic", "router"),
    ],
)];

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

/// Every package `package`'s normal dependencies reach (itself included),
/// with the features each has when `package` is built on its own.
fn normal_tree_built_alone(package: &str) -> HashMap<String, BTreeSet<String>> {
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
            "{p} {f}",
        ])
        .current_dir(pecr_testkit::workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut tree: HashMap<String, BTreeSet<String>> = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // `name version [(path)] [features] [(*)]`; features are the one
        // comma-separated word that is neither a path nor the repeat mark.
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let features = words
            .skip(1)
            .filter(|word| !word.starts_with('(') && !word.ends_with(')'))
            .flat_map(|word| word.split(','))
            .map(str::to_owned);
        tree.entry(name.to_owned()).or_default().extend(features);
    }
    tree
}

/// Names of every package `package`'s normal dependencies reach, with the
/// features it turns on when built on its own.
fn normal_dependencies_built_alone(package: &str) -> BTreeSet<String> {
    normal_tree_built_alone(package)
        .into_keys()
        .filter(|name| name != package)
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
fn built_alone_feature_rules_hold() {
    let mut violations = BTreeSet::new();
    for (package, forbidden) in BUILT_ALONE_FEATURE_RULES {
        let tree = normal_tree_built_alone(package);
        assert!(tree.len() > 1, "{package} has a dependency tree");
        for (dependency, feature) in *forbidden {
            if tree
                .get(*dependency)
                .is_some_and(|features| features.contains(*feature))
            {
                violations.insert(format!("{package} -> {dependency}/{feature}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "forbidden features of normal dependencies found: {violations:?}"
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

#[test]
fn the_built_alone_features_are_read() {
    // pecr-server hosts gRPC: tonic's server and hyper's server are on.
    let tree = normal_tree_built_alone("pecr-server");
    let has = |dependency: &str, feature: &str| {
        tree.get(dependency)
            .is_some_and(|features| features.contains(feature))
    };
    assert!(has("tonic", "server") && has("tonic", "router") && has("hyper", "server"));
    assert!(has("tonic", "channel") && !has("tonic", "gzip"));
}
