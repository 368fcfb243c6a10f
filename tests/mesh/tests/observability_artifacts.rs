//! The dashboards and alert rules in `docs/observability/` name only metrics
//! the services export. A real mesh serves two runs (the second one's
//! `search` hits the gateway's cache, so every labelled family has a
//! series), the three `/metrics` pages are scraped, and every `pecr_*` name
//! in a panel or rule expression must be an exported family, or a histogram's
//! `_bucket`/`_sum`/`_count` series. Label names inside selectors and in
//! `by (…)` must exist on the metrics the expression reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pecr_mesh_tests::{Mesh, MeshOptions, run_request};
use pecr_testkit::{http_get, workspace_root};
use serde_json::Value;

const QUERY: &str = "What is the customer status and plan tier?";

// ---------------------------------------------------------------- exposition

/// One exported metric family: its type and every label name seen on it.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    labels: BTreeSet<String>,
}

/// Every family of some scraped `/metrics` pages, by name.
#[derive(Debug, Default)]
struct Exported {
    families: BTreeMap<String, Family>,
}

impl Exported {
    /// Adds one page of Prometheus text format.
    fn add_page(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    self.families.entry(name.to_owned()).or_default().kind = kind.to_owned();
                }
            }
        }
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let sample = &line[..name_end];
            let labels = sample_label_names(&line[name_end..]);
            let Some(family) = self.family_of(sample) else {
                panic!("sample {sample} belongs to no # TYPE family");
            };
            if let Some(family) = self.families.get_mut(&family) {
                family.labels.extend(labels);
            }
        }
    }

    /// The family a sample or series name belongs to: the name itself
    /// (except a histogram's, which has no series of that name), or a
    /// histogram's (`_bucket`, `_sum`, `_count`) or a summary's (`_sum`,
    /// `_count`) series.
    fn family_of(&self, name: &str) -> Option<String> {
        if let Some(family) = self.families.get(name) {
            return (family.kind != "histogram").then(|| name.to_owned());
        }
        for (suffix, kinds) in [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"][..]),
            ("_count", &["histogram", "summary"][..]),
        ] {
            if let Some(stem) = name.strip_suffix(suffix)
                && let Some(family) = self.families.get(stem)
                && kinds.contains(&family.kind.as_str())
            {
                return Some(stem.to_owned());
            }
        }
        None
    }

    /// Label names a series carries: the family's, with `le` on buckets only.
    fn labels_of(&self, series: &str) -> BTreeSet<String> {
        let Some(family) = self.family_of(series) else {
            return BTreeSet::new();
        };
        let mut labels = self.families[&family].labels.clone();
        if !series.ends_with("_bucket") {
            labels.remove("le");
        }
        labels
    }
}

/// Label names of a sample's `{a="x",b="y"} value` tail.
fn sample_label_names(tail: &str) -> Vec<String> {
    let Some(body) = tail.strip_prefix('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim().trim_start_matches(',').trim();
        if name.is_empty() || name.starts_with('}') {
            break;
        }
        names.push(name.to_owned());
        // Skip the quoted value, honouring escapes.
        if chars.next() != Some('"') {
            break;
        }
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => {}
            }
        }
        if chars.peek() == Some(&'}') {
            break;
        }
    }
    names
}

// ---------------------------------------------------------------- PromQL

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str,
    Punct(char),
    Other,
}

/// A small PromQL tokenizer: identifiers, string literals (contents
/// dropped), numbers and durations, and single punctuation characters.
fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Str);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Other);
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// What one expression reads: `pecr_*` series names, the label names of
/// their selectors, and the label names of `by`/`without`/`on`/`ignoring`
/// clauses.
#[derive(Debug, Default)]
struct ExprRefs {
    series: BTreeSet<String>,
    selector_labels: Vec<(String, String)>,
    grouping_labels: BTreeSet<String>,
}

fn refs_of(expr: &str) -> ExprRefs {
    let tokens = tokens(expr);
    let mut refs = ExprRefs::default();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(name) if name.starts_with("pecr_") => {
                refs.series.insert(name.clone());
                if tokens.get(i + 1) == Some(&Token::Punct('{')) {
                    i += 2;
                    while i < tokens.len() && tokens[i] != Token::Punct('}') {
                        if let Token::Ident(label) = &tokens[i] {
                            refs.selector_labels.push((name.clone(), label.clone()));
                        }
                        i += 1;
                    }
                }
            }
            Token::Ident(keyword)
                if matches!(
                    keyword.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) && tokens.get(i + 1) == Some(&Token::Punct('(')) =>
            {
                i += 2;
                while i < tokens.len() && tokens[i] != Token::Punct(')') {
                    if let Token::Ident(label) = &tokens[i] {
                        refs.grouping_labels.insert(label.clone());
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

/// Problems with one expression against what the services export.
fn check_expr(exported: &Exported, place: &str, expr: &str) -> Vec<String> {
    let refs = refs_of(expr);
    let mut problems = Vec::new();
    let mut available = BTreeSet::new();
    for series in &refs.series {
        if exported.family_of(series).is_none() {
            problems.push(format!("{place}: {series} is not exported by any service"));
        }
        available.extend(exported.labels_of(series));
    }
    for (series, label) in &refs.selector_labels {
        if exported.family_of(series).is_some() && !exported.labels_of(series).contains(label) {
            problems.push(format!("{place}: {series} has no label {label}"));
        }
    }
    if !refs.series.is_empty() {
        for label in &refs.grouping_labels {
            if !available.contains(label) {
                problems.push(format!(
                    "{place}: groups by {label}, which none of {:?} carries",
                    refs.series
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------- artifacts

fn observability_dir() -> PathBuf {
    workspace_root().join("docs/observability")
}

fn files_in(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| extensions.contains(&ext))
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no {extensions:?} file in {}",
        dir.display()
    );
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// (place, expr) of every query in a Grafana dashboard, after checking the
/// dashboard's shape: schema version, the `${datasource}` variable, and
/// every query panel bound to it.
fn dashboard_exprs(path: &Path) -> Vec<(String, String)> {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let dashboard: Value =
        serde_json::from_str(&read(path)).unwrap_or_else(|err| panic!("{file} is not JSON: {err}"));
    let schema = dashboard["schemaVersion"].as_u64().unwrap_or(0);
    assert!(schema >= 36, "{file}: schemaVersion {schema} < 36");
    assert!(
        dashboard["uid"].as_str().is_some_and(|uid| !uid.is_empty()),
        "{file}: no uid"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: no templating list"));
    assert!(
        variables.iter().any(|var| var["name"] == "datasource"
            && var["type"] == "datasource"
            && var["query"] == "prometheus"),
        "{file}: no Prometheus datasource variable named datasource"
    );

    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        let id = panel["id"].as_u64().unwrap_or(0);
        assert!(ids.insert(id), "{file}: panel id {id} used twice");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{file}: panel {title:?} is not bound to ${{datasource}}"
        );
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: panel {title:?} has no targets"));
        assert!(
            !targets.is_empty(),
            "{file}: panel {title:?} has no targets"
        );
        for target in targets {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{file}: a query of {title:?} is not bound to ${{datasource}}"
            );
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "{file}: panel {title:?} has an empty expr"
            );
            exprs.push((format!("{file} panel {title:?}"), expr.to_owned()));
        }
    }
    assert!(!exprs.is_empty(), "{file}: no queries");
    exprs
}

/// Panels at the top level and inside (collapsed) rows.
fn collect_panels<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in list.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

/// GitHub's heading anchors: lower case, spaces to `-`, other punctuation
/// except `-` and `_` dropped.
fn runbook_anchors() -> BTreeSet<String> {
    read(&workspace_root().join("RUNBOOK.md"))
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

const RULE_KEYS: &[&str] = &["alert", "expr", "for", "labels", "annotations"];
const ANNOTATIONS: &[&str] = &["summary", "description", "runbook_url"];

/// (place, expr) of every alert in a Prometheus rule file, after checking
/// its shape: groups of named rules, each with a non-empty `expr`, a `for`
/// duration, a P1/P2 `severity` and the three annotations, its runbook link
/// pointing at a RUNBOOK.md heading.
fn rule_exprs(path: &Path, anchors: &BTreeSet<String>) -> Vec<(String, String)> {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let rules: Value = serde_yaml_ng::from_str(&read(path))
        .unwrap_or_else(|err| panic!("{file} is not YAML: {err}"));
    let groups = rules["groups"]
        .as_array()
        .filter(|groups| !groups.is_empty())
        .unwrap_or_else(|| panic!("{file}: no groups"));
    let mut names = BTreeSet::new();
    let mut exprs = Vec::new();
    for group in groups {
        let group_name = group["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: a group without a name"));
        let list = group["rules"]
            .as_array()
            .filter(|rules| !rules.is_empty())
            .unwrap_or_else(|| panic!("{file}: group {group_name} has no rules"));
        for rule in list {
            let alert = rule["alert"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a rule of {group_name} is not an alert"));
            assert!(names.insert(alert.to_owned()), "{file}: {alert} twice");
            let keys = rule
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>());
            for key in keys.into_iter().flatten() {
                assert!(
                    RULE_KEYS.contains(&key.as_str()),
                    "{file}: {alert} has unknown key {key}"
                );
            }
            let expr = rule["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{file}: {alert} has an empty expr");
            let for_ = rule["for"].as_str().unwrap_or_default();
            assert!(
                for_.len() > 1
                    && for_[..for_.len() - 1].chars().all(|c| c.is_ascii_digit())
                    && for_.ends_with(['s', 'm', 'h']),
                "{file}: {alert} has no plain `for` duration: {for_:?}"
            );
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["P1", "P2"].contains(&severity),
                "{file}: {alert} severity {severity:?}"
            );
            for key in ANNOTATIONS {
                let text = rule["annotations"][key].as_str().unwrap_or_default();
                assert!(!text.trim().is_empty(), "{file}: {alert} has no {key}");
            }
            let url = rule["annotations"]["runbook_url"].as_str().unwrap_or("");
            let anchor = url
                .strip_prefix("RUNBOOK.md#")
                .unwrap_or_else(|| panic!("{file}: {alert} runbook_url {url:?}"));
            assert!(
                anchors.contains(anchor),
                "{file}: {alert} links to #{anchor}, which is no RUNBOOK.md heading"
            );
            exprs.push((format!("{file} alert {alert}"), expr.to_owned()));
        }
    }
    exprs
}

/// Every query of every dashboard and rule file.
fn artifact_exprs() -> Vec<(String, String)> {
    let dir = observability_dir();
    let anchors = runbook_anchors();
    let mut exprs = Vec::new();
    for path in files_in(&dir.join("dashboards"), &["json"]) {
        exprs.extend(dashboard_exprs(&path));
    }
    for path in files_in(&dir.join("alerts"), &["yaml", "yml"]) {
        exprs.extend(rule_exprs(&path, &anchors));
    }
    exprs
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn every_metric_in_dashboards_and_alerts_is_exported() {
    let cache = vec![
        ("PECR_CACHE_MAX_ENTRIES", "64".to_owned()),
        ("PECR_CACHE_TTL_MS", "600000".to_owned()),
    ];
    let mesh = Mesh::start_with(MeshOptions {
        gateway: cache,
        ..MeshOptions::default()
    })
    .await;
    let mut client = mesh.client().await;
    for _ in 0..2 {
        client
            .run(run_request("dev", QUERY, None))
            .await
            .unwrap_or_else(|status| panic!("run failed: {status:?}"));
    }

    let gateway = mesh.gateway.as_ref().expect("gateway running");
    let mut exported = Exported::default();
    let mut pages = Vec::new();
    for (service, process) in [
        ("ledger-writer", &mesh.ledger),
        ("gateway", gateway),
        ("controller", &mesh.controller),
    ] {
        let page = http_get(&process.http_url("/metrics")).await;
        assert_eq!(page.status, 200, "{service} /metrics: {}", page.body);
        assert!(
            page.body.contains("pecr_build_info{"),
            "{service} has no pecr_build_info"
        );
        exported.add_page(&page.body);
        pages.push(format!("--- {service}\n{}", page.body));
    }

    let exprs = artifact_exprs();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (place, expr) in &exprs {
        problems.extend(check_expr(&exported, place, expr));
        used.extend(
            refs_of(expr)
                .series
                .iter()
                .filter_map(|series| exported.family_of(series)),
        );
    }
    assert!(
        problems.is_empty(),
        "the observability artifacts do not match /metrics:\n{}\n\nscraped:\n{}",
        problems.join("\n"),
        pages.join("\n")
    );
    // The artifacts cover every service, not one by accident.
    for prefix in ["pecr_ledger_", "pecr_gateway_", "pecr_controller_"] {
        assert!(
            used.iter().any(|family| family.starts_with(prefix)),
            "no artifact reads a {prefix}* metric"
        );
    }
}

#[test]
fn a_name_the_services_do_not_export_is_reported() {
    let mut exported = Exported::default();
    exported.add_page(concat!(
        "# TYPE pecr_gateway_budget_violations_total counter\n",
        "pecr_gateway_budget_violations_total 0\n",
        "# TYPE pecr_gateway_http_request_duration_seconds histogram\n",
        "pecr_gateway_http_request_duration_seconds_bucket{route=\"/v1/finalize\",method=\"POST\",outcome=\"success\",le=\"0.005\"} 1\n",
        "pecr_gateway_http_request_duration_seconds_sum{route=\"/v1/finalize\",method=\"POST\",outcome=\"success\"} 0.001\n",
        "pecr_gateway_http_request_duration_seconds_count{route=\"/v1/finalize\",method=\"POST\",outcome=\"success\"} 1\n",
        "# TYPE pecr_build_info gauge\n",
        "pecr_build_info{service=\"pecr-gateway\",version=\"0.1.0\"} 1\n",
    ));
    let good = r#"histogram_quantile(0.99, sum by (le, route) (rate(pecr_gateway_http_request_duration_seconds_bucket{outcome="error"}[5m]))) > 0.9 or up{job=~"pecr_x"} == 0"#;
    assert_eq!(check_expr(&exported, "good", good), Vec::<String>::new());
    assert!(
        check_expr(
            &exported,
            "count",
            "rate(pecr_gateway_http_request_duration_seconds_count[5m])"
        )
        .is_empty()
    );

    // Never exported on purpose (docs/decisions.md).
    let stale = "rate(pecr_gateway_staleness_errors_total[5m])";
    assert_eq!(
        check_expr(&exported, "stale", stale),
        vec!["stale: pecr_gateway_staleness_errors_total is not exported by any service"]
    );
    // Histogram suffixes only on histograms; a counter has no _bucket.
    let bucket = "rate(pecr_gateway_budget_violations_total_bucket[5m])";
    assert_eq!(check_expr(&exported, "bucket", bucket).len(), 1);
    // A histogram's own name is no series.
    let bare = "rate(pecr_gateway_http_request_duration_seconds[5m])";
    assert_eq!(check_expr(&exported, "bare", bare).len(), 1);
    // Unknown labels in a selector or a grouping.
    let selector = r#"pecr_gateway_budget_violations_total{route="/v1/run"}"#;
    assert_eq!(
        check_expr(&exported, "selector", selector),
        vec!["selector: pecr_gateway_budget_violations_total has no label route"]
    );
    let grouping = "sum by (operator) (rate(pecr_gateway_http_request_duration_seconds_count[5m]))";
    assert_eq!(check_expr(&exported, "grouping", grouping).len(), 1);
    // `le` exists on buckets only.
    let le = r#"pecr_gateway_http_request_duration_seconds_count{le="1"}"#;
    assert_eq!(check_expr(&exported, "le", le).len(), 1);
    // Metric names inside strings are label values, not references.
    let quoted = r#"label_replace(pecr_build_info, "x", "pecr_not_a_metric", "", "")"#;
    assert!(check_expr(&exported, "quoted", quoted).is_empty());
}
