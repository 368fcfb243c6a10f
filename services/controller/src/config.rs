//! pecr-controller settings (spec 30 §2), read and validated at start-up;
//! every bad value is reported at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pecr_config::{ConfigReader, EnvSource, FrontDoor, StartupError, StartupErrors, parse_bool};
use pecr_contracts::budget::Budget;
use pecr_replay::EngineMode;
use pecr_server::{AllowedClients, ClientTls, ServerTls};
use serde::Deserialize;

use crate::env;
use crate::plan::{Plan, PlanError};

/// Per-operator limits of RLM batch dispatch (spec 30 §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperatorPolicy {
    pub max_in_flight: Option<u32>,
    pub fairness_weight: Option<u32>,
}

/// Where replay bundles and evaluations are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayBackend {
    /// PostgreSQL through ledger-writer (the default; any replica serves any replay).
    Ledger,
    /// JSON files under a directory, in spec 30 §12's file layout.
    Files(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ReplaySettings {
    pub backend: ReplayBackend,
    pub retention_days: u32,
    pub list_limit: u32,
}

/// Per-principal limits per window; 0 disables a limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub window: Duration,
    /// `Run` calls (spec 30 §4).
    pub runs: u32,
    /// `SubmitEvaluation` calls: each may read up to the list limit of bundles.
    pub evaluations: u32,
}

/// pecr-controller settings.
#[derive(Debug)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub gateway_url: String,
    pub ledger_url: String,
    /// The service token presented to ledger-writer.
    pub ledger_token: Option<pecr_config::Secret>,
    /// Bound on session creation and finalize, which the budget does not cover.
    pub gateway_timeout: Duration,
    pub front_door: FrontDoor,
    pub engine: EngineMode,
    pub budget_defaults: Budget,
    pub plan: Plan,
    pub adaptive_parallelism: bool,
    pub batch_mode: bool,
    /// Consecutive RLM bridge failures after which runs use the baseline
    /// engine; 0 = never.
    pub auto_fallback_after: u32,
    pub operator_policies: BTreeMap<String, OperatorPolicy>,
    pub metrics_require_auth: bool,
    /// Browser origins granted CORS on the REST edge.
    pub cors: pecr_edge::CorsOrigins,
    /// `Host` values the MCP server at `/mcp` answers (empty: any).
    pub mcp_allowed_hosts: Vec<String>,
    pub rate_limits: RateLimits,
    pub admission: pecr_config::Admission,
    pub replay: ReplaySettings,
    /// TLS on the gRPC port. End users call it, so with a client CA any
    /// certificate the CA signed is accepted unless an allowlist is set.
    pub server_tls: Option<ServerTls>,
    /// TLS towards the gateway and ledger-writer for https:// URLs.
    pub client_tls: ClientTls,
}

impl Config {
    /// Reads and validates every setting, reporting all bad values at once.
    pub fn from_source(source: &dyn EnvSource) -> Result<Self, StartupErrors> {
        let mut reader = ConfigReader::new(source);
        let grpc_addr = reader.socket_addr(env::GRPC_ADDR, env::DEFAULT_GRPC_ADDR);
        let http_addr = reader.socket_addr(env::HTTP_ADDR, env::DEFAULT_HTTP_ADDR);
        let front_door = FrontDoor::read(
            &mut reader,
            &[(env::GRPC_ADDR, grpc_addr), (env::HTTP_ADDR, http_addr)],
        );
        let server_tls = ServerTls::read(&mut reader, AllowedClients::Any);
        let client_tls = ClientTls::read(
            &mut reader,
            &[
                (env::GATEWAY_URL, env::GATEWAY_TLS_SERVER_NAME),
                (env::LEDGER_URL, env::LEDGER_TLS_SERVER_NAME),
            ],
        );
        let gateway_url = reader.required(env::GATEWAY_URL);
        let gateway_url = gateway_url.trim_end_matches('/').to_owned();
        if !gateway_url.is_empty()
            && let Err(err) = client_tls.endpoint(env::GATEWAY_URL, &gateway_url)
        {
            reader.push_error(err);
        }
        let ledger_url = reader.string(env::LEDGER_URL, env::DEFAULT_LEDGER_URL);
        if let Err(err) = client_tls.endpoint(env::LEDGER_URL, &ledger_url) {
            reader.push_error(err);
        }
        let gateway_timeout =
            Duration::from_millis(reader.number(env::GATEWAY_TIMEOUT_MS, 5_000, 1, 300_000));
        let engine = read_engine(&mut reader);
        read_model_provider(&mut reader);
        let budget_defaults = read_budget_defaults(&mut reader);
        let plan = match reader.raw(env::BASELINE_PLAN) {
            None => Plan::default_plan(),
            Some(text) => Plan::parse(&text).unwrap_or_else(|err: PlanError| {
                reader.push_error(StartupError::invalid(format!(
                    "{}: {err}",
                    env::BASELINE_PLAN
                )));
                Plan::default_plan()
            }),
        };
        let adaptive_parallelism = first_bool(&reader, env::ADAPTIVE_PARALLELISM).unwrap_or(true);
        let batch_mode = first_bool(&reader, env::BATCH_MODE).unwrap_or(true);
        let auto_fallback = reader.boolean(env::AUTO_FALLBACK, false);
        let fallback_after: u32 = reader.number(env::AUTO_FALLBACK_AFTER, 3, 1, 1_000);
        let auto_fallback_after = if auto_fallback { fallback_after } else { 0 };
        let operator_policies = read_policies(&mut reader);
        let cors = pecr_server::read_cors_origins(&mut reader);
        let mcp_allowed_hosts = pecr_mcp::read_allowed_hosts(&mut reader);
        let metrics_require_auth = reader.boolean(
            env::METRICS_REQUIRE_AUTH,
            !http_addr.ip().is_loopback() || !grpc_addr.ip().is_loopback(),
        );
        let window_secs: u64 = reader.number(env::RATE_LIMIT_WINDOW_SECS, 60, 0, 86_400);
        let rate_limits = RateLimits {
            // A zero window is treated as one second (spec 30 §2.2).
            window: Duration::from_secs(window_secs.max(1)),
            runs: reader.number(env::RATE_LIMIT_RUN_PER_WINDOW, 60, 0, 1_000_000),
            evaluations: reader.number(env::RATE_LIMIT_EVALUATION_PER_WINDOW, 30, 0, 1_000_000),
        };
        // A run may take the longest wall-clock budget, plus answering.
        let admission = pecr_config::Admission::read(
            &mut reader,
            pecr_contracts::budget::MAX_WALLCLOCK_MS + 10_000,
        );
        let replay = read_replay(&mut reader);
        let ledger_token = match replay.backend {
            ReplayBackend::Ledger => pecr_server::read_upstream_token(
                &mut reader,
                env::LEDGER_TOKEN,
                env::LEDGER_URL,
                &ledger_url,
                &client_tls,
            ),
            ReplayBackend::Files(_) => reader.service_token(env::LEDGER_TOKEN),
        };
        reader.finish()?;
        Ok(Self {
            grpc_addr,
            http_addr,
            gateway_url,
            ledger_url,
            ledger_token,
            gateway_timeout,
            front_door,
            engine,
            budget_defaults,
            plan,
            adaptive_parallelism,
            batch_mode,
            auto_fallback_after,
            operator_policies,
            metrics_require_auth,
            cors,
            mcp_allowed_hosts,
            rate_limits,
            admission,
            replay,
            server_tls,
            client_tls,
        })
    }
}

fn read_engine(reader: &mut ConfigReader<'_>) -> EngineMode {
    match reader.string(env::ENGINE, "baseline").as_str() {
        "baseline" => EngineMode::Baseline,
        "rlm" if !cfg!(feature = "rlm") => {
            reader.push_error(StartupError::new(
                "ERR_RLM_FEATURE_DISABLED",
                "PECR_CONTROLLER_ENGINE=rlm needs a controller built with the `rlm` feature",
            ));
            EngineMode::Baseline
        }
        "rlm" => {
            let ack = reader
                .raw(env::RLM_SANDBOX_ACK)
                .and_then(|raw| parse_bool(&raw))
                .unwrap_or(false);
            if !ack {
                reader.push_error(StartupError::new(
                    "ERR_RLM_REQUIRES_SANDBOX_ACK",
                    "PECR_CONTROLLER_ENGINE=rlm runs a Python child process; set \
                     PECR_RLM_SANDBOX_ACK=1 to state that this process runs in a sandbox",
                ));
            }
            EngineMode::Rlm
        }
        other => {
            reader.push_error(StartupError::invalid(format!(
                "{} must be baseline or rlm (got {other:?})",
                env::ENGINE
            )));
            EngineMode::Baseline
        }
    }
}

fn read_model_provider(reader: &mut ConfigReader<'_>) {
    match reader.string(env::MODEL_PROVIDER, "mock").as_str() {
        "mock" => {}
        "external" => reader.push_error(StartupError::new(
            "ERR_MODEL_PROVIDER_UNIMPLEMENTED",
            "PECR_MODEL_PROVIDER=external is not implemented; use mock",
        )),
        other => reader.push_error(StartupError::invalid(format!(
            "{} must be mock or external (got {other:?})",
            env::MODEL_PROVIDER
        ))),
    }
}

fn read_budget_defaults(reader: &mut ConfigReader<'_>) -> Budget {
    let fallback = Budget {
        max_operator_calls: 0,
        max_bytes: 0,
        max_wallclock_ms: 0,
        max_recursion_depth: 0,
        max_parallelism: None,
    };
    let text = reader.required(env::BUDGET_DEFAULTS);
    if text.is_empty() {
        return fallback;
    }
    let budget = match serde_json::from_str::<Budget>(&text) {
        Ok(budget) => budget,
        Err(err) => {
            reader.push_error(StartupError::new(
                "ERR_INVALID_BUDGET_JSON",
                format!("{} is not a Budget: {err}", env::BUDGET_DEFAULTS),
            ));
            return fallback;
        }
    };
    if let Err(err) = budget.validate() {
        reader.push_error(StartupError::new(
            "ERR_INVALID_BUDGET",
            format!("{}: {err}", env::BUDGET_DEFAULTS),
        ));
    }
    budget
}

/// The first alias whose value is a recognised boolean wins.
fn first_bool(reader: &ConfigReader<'_>, keys: &[&str]) -> Option<bool> {
    keys.iter()
        .find_map(|key| reader.raw(key).and_then(|raw| parse_bool(&raw)))
}

#[derive(Deserialize)]
struct RawPolicy {
    #[serde(default)]
    max_in_flight: Option<i64>,
    #[serde(default)]
    fairness_weight: Option<i64>,
}

/// The first alias with a non-empty value wins, even when that value is invalid.
fn read_policies(reader: &mut ConfigReader<'_>) -> BTreeMap<String, OperatorPolicy> {
    let Some((key, text)) = env::CONCURRENCY_POLICIES
        .iter()
        .find_map(|key| reader.raw(key).map(|text| (*key, text)))
    else {
        return BTreeMap::new();
    };
    parse_policies(&text).unwrap_or_else(|reason| {
        reader.push_error(StartupError::invalid(format!("{key}: {reason}")));
        BTreeMap::new()
    })
}

/// Parses the policy map: trimmed non-empty unique keys, present values > 0.
pub fn parse_policies(text: &str) -> Result<BTreeMap<String, OperatorPolicy>, String> {
    let raw: BTreeMap<String, RawPolicy> =
        serde_json::from_str(text).map_err(|err| format!("invalid JSON policy map: {err}"))?;
    let positive = |field: &str, value: Option<i64>| -> Result<Option<u32>, String> {
        match value {
            None => Ok(None),
            Some(v) if v > 0 => u32::try_from(v)
                .map(Some)
                .map_err(|_| format!("{field} is too large")),
            Some(_) => Err(format!("{field} must be greater than 0")),
        }
    };
    let mut policies = BTreeMap::new();
    for (name, policy) in raw {
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err("operator names must be non-empty".into());
        }
        let parsed = OperatorPolicy {
            max_in_flight: positive("max_in_flight", policy.max_in_flight)?,
            fairness_weight: positive("fairness_weight", policy.fairness_weight)?,
        };
        if policies.insert(name.clone(), parsed).is_some() {
            return Err(format!("operator {name:?} appears twice"));
        }
    }
    Ok(policies)
}

fn read_replay(reader: &mut ConfigReader<'_>) -> ReplaySettings {
    let dir = PathBuf::from(reader.string(env::REPLAY_STORE_DIR, env::DEFAULT_REPLAY_STORE_DIR));
    let backend = match reader.string(env::REPLAY_STORE, "ledger").as_str() {
        "ledger" => ReplayBackend::Ledger,
        "file" => ReplayBackend::Files(dir),
        other => {
            reader.push_error(StartupError::invalid(format!(
                "{} must be ledger or file (got {other:?})",
                env::REPLAY_STORE
            )));
            ReplayBackend::Ledger
        }
    };
    let retention_days = reader.number(env::REPLAY_RETENTION_DAYS, 30, 0, 36_500);
    let list_limit = reader.number(env::REPLAY_LIST_LIMIT, 200, 0, 10_000);
    if list_limit == 0 {
        reader.push_error(StartupError::invalid(format!(
            "{} must be greater than 0",
            env::REPLAY_LIST_LIMIT
        )));
    }
    ReplaySettings {
        backend,
        retention_days,
        list_limit: list_limit.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pecr_config::MapSource;

    const BUDGET: &str = r#"{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}"#;

    fn config(extra: &[(&str, &str)]) -> Result<Config, Vec<&'static str>> {
        let mut pairs = vec![
            ("PECR_GATEWAY_URL", "http://127.0.0.1:50051/"),
            ("PECR_BUDGET_DEFAULTS", BUDGET),
            ("PECR_LEDGER_TOKEN", LEDGER_TOKEN),
        ];
        pairs.extend_from_slice(extra);
        let source = MapSource::from_pairs(pairs);
        Config::from_source(&source).map_err(|errs| errs.0.iter().map(|e| e.code).collect())
    }

    fn codes(extra: &[(&str, &str)]) -> Vec<&'static str> {
        config(extra).err().unwrap_or_default()
    }

    const LEDGER_TOKEN: &str = "controller-token-for-config-tests-0000";

    #[test]
    fn cors_origins_are_read_and_checked() {
        assert_eq!(
            config(&[]).expect("valid").cors,
            pecr_edge::CorsOrigins::None
        );
        assert_eq!(
            config(&[("PECR_CORS_ALLOWED_ORIGINS", "*")])
                .expect("any origin")
                .cors,
            pecr_edge::CorsOrigins::Any
        );
        assert_eq!(
            codes(&[("PECR_CORS_ALLOWED_ORIGINS", "ftp://a.example")]),
            vec!["ERR_INVALID_CONFIG"]
        );
    }

    #[test]
    fn ledger_writer_needs_a_credential_unless_replays_are_files() {
        let loaded = config(&[]).expect("valid");
        assert!(!format!("{loaded:?}").contains(LEDGER_TOKEN), "redacted");
        let without = |extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("PECR_GATEWAY_URL", "http://127.0.0.1:50051/"),
                ("PECR_BUDGET_DEFAULTS", BUDGET),
            ];
            pairs.extend_from_slice(extra);
            Config::from_source(&MapSource::from_pairs(pairs))
                .err()
                .map(|errs| errs.0.iter().map(|e| e.code).collect::<Vec<_>>())
        };
        assert_eq!(without(&[]), Some(vec!["ERR_MISSING_CONFIG"]));
        let dir = std::env::temp_dir().join("pecr-config-test-replays");
        let dir = dir.display().to_string();
        assert_eq!(
            without(&[
                ("PECR_REPLAY_STORE", "file"),
                ("PECR_REPLAY_STORE_DIR", &dir)
            ]),
            None
        );
        assert_eq!(
            codes(&[("PECR_LEDGER_TOKEN", "short")]),
            ["ERR_INVALID_CONFIG"]
        );
    }

    #[test]
    fn scenario_1_budget_defaults_must_be_json() {
        assert_eq!(
            codes(&[("PECR_BUDGET_DEFAULTS", "not-json")]),
            ["ERR_INVALID_BUDGET_JSON"]
        );
        assert_eq!(
            codes(&[(
                "PECR_BUDGET_DEFAULTS",
                r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1,"extra":1}"#
            )]),
            ["ERR_INVALID_BUDGET_JSON"]
        );
        assert_eq!(
            codes(&[(
                "PECR_BUDGET_DEFAULTS",
                r#"{"max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":300001,"max_recursion_depth":1}"#
            )]),
            ["ERR_INVALID_BUDGET"]
        );
        assert_eq!(
            codes(&[("PECR_BUDGET_DEFAULTS", "")]),
            ["ERR_MISSING_CONFIG"]
        );
    }

    #[test]
    fn scenario_2_nonlocal_bind() {
        assert!(
            codes(&[("PECR_CONTROLLER_BIND_ADDR", "0.0.0.0:8081")])
                .contains(&"ERR_NONLOCAL_BIND_REQUIRES_AUTH")
        );
        let ok = config(&[
            ("PECR_CONTROLLER_BIND_ADDR", "0.0.0.0:8081"),
            ("PECR_CONTROLLER_GRPC_ADDR", "0.0.0.0:50052"),
            ("PECR_DEV_ALLOW_NONLOCAL_BIND", "1"),
            ("PECR_LOCAL_AUTH_SHARED_SECRET", "dev-secret"),
        ])
        .expect("starts");
        assert_eq!(ok.front_door.shared_secret.as_deref(), Some("dev-secret"));
        assert!(
            ok.metrics_require_auth,
            "a non-loopback bind protects /metrics"
        );
    }

    #[test]
    fn scenarios_3_and_4_engine_and_model_provider() {
        assert_eq!(
            codes(&[("PECR_CONTROLLER_ENGINE", "nope")]),
            ["ERR_INVALID_CONFIG"]
        );
        let rlm = codes(&[("PECR_CONTROLLER_ENGINE", "rlm")]);
        if cfg!(feature = "rlm") {
            assert_eq!(rlm, ["ERR_RLM_REQUIRES_SANDBOX_ACK"]);
        } else {
            assert_eq!(rlm, ["ERR_RLM_FEATURE_DISABLED"]);
        }
        assert_eq!(
            codes(&[("PECR_MODEL_PROVIDER", "external")]),
            ["ERR_MODEL_PROVIDER_UNIMPLEMENTED"]
        );
        assert_eq!(codes(&[("PECR_GATEWAY_URL", "")]), ["ERR_MISSING_CONFIG"]);
    }

    #[test]
    fn scenario_5_baseline_plan() {
        let plan = r#"[{"kind":"operator","op_name":"search","params":{"query":"$query","limit":1}},{"kind":"search_ref_fetch_span","max_refs":1}]"#;
        let loaded = config(&[("PECR_BASELINE_PLAN", plan)]).expect("loads");
        assert_eq!(loaded.plan.steps().len(), 2);
        assert_eq!(
            codes(&[(
                "PECR_BASELINE_PLAN",
                r#"[{"kind":"search_ref_fetch_span","max_refs":0}]"#
            )]),
            ["ERR_INVALID_CONFIG"]
        );
    }

    #[test]
    fn scenario_6_defaults() {
        let config = config(&[]).expect("loads");
        assert!(config.adaptive_parallelism);
        assert!(config.batch_mode);
        assert_eq!(config.auto_fallback_after, 0);
        assert!(config.operator_policies.is_empty());
        assert_eq!(config.replay.backend, ReplayBackend::Ledger);
        assert_eq!(config.replay.retention_days, 30);
        assert_eq!(config.replay.list_limit, 200);
        assert_eq!(config.rate_limits.runs, 60);
        assert_eq!(config.rate_limits.evaluations, 30);
        assert_eq!(config.gateway_url, "http://127.0.0.1:50051");
        assert!(!config.metrics_require_auth);
        assert_eq!(config.plan.steps().len(), 4);
    }

    #[test]
    fn scenario_7_flags_and_policies() {
        let config = config(&[
            ("PECR_CONTROLLER_ADAPTIVE_PARALLELISM_ENABLED", "0"),
            ("PECR_CONTROLLER_BATCH_MODE_ENABLED", "false"),
            (
                "PECR_OPERATOR_CONCURRENCY_POLICIES",
                r#"{" search ":{"max_in_flight":2,"fairness_weight":3},"fetch_span":{"max_in_flight":1}}"#,
            ),
        ])
        .expect("loads");
        assert!(!config.adaptive_parallelism);
        assert!(!config.batch_mode);
        assert_eq!(config.auto_fallback_after, 0);
        assert_eq!(
            config.operator_policies.get("search"),
            Some(&OperatorPolicy {
                max_in_flight: Some(2),
                fairness_weight: Some(3)
            })
        );
        assert_eq!(
            config.operator_policies.get("fetch_span"),
            Some(&OperatorPolicy {
                max_in_flight: Some(1),
                fairness_weight: None
            })
        );
    }

    #[test]
    fn auto_fallback_is_off_unless_asked_and_counts_from_three() {
        let on = config(&[("PECR_CONTROLLER_AUTO_FALLBACK", "1")]).expect("loads");
        assert_eq!(on.auto_fallback_after, 3);
        let after = config(&[
            ("PECR_CONTROLLER_AUTO_FALLBACK", "true"),
            ("PECR_CONTROLLER_AUTO_FALLBACK_AFTER", "5"),
        ])
        .expect("loads");
        assert_eq!(after.auto_fallback_after, 5);
        let ignored = config(&[("PECR_CONTROLLER_AUTO_FALLBACK_AFTER", "5")]).expect("loads");
        assert_eq!(ignored.auto_fallback_after, 0);
        assert!(
            config(&[
                ("PECR_CONTROLLER_AUTO_FALLBACK", "1"),
                ("PECR_CONTROLLER_AUTO_FALLBACK_AFTER", "0"),
            ])
            .is_err()
        );
    }

    #[test]
    fn alias_lookup_skips_unrecognised_booleans() {
        let config = config(&[
            ("PECR_CONTROLLER_BATCH_MODE_ENABLED", "on"),
            ("PECR_BATCH_MODE", "no"),
        ])
        .expect("loads");
        assert!(!config.batch_mode);
    }

    #[test]
    fn scenario_8_invalid_policies() {
        for map in [
            r#"{" ":{"max_in_flight":1}}"#,
            r#"{"search":{"max_in_flight":0}}"#,
            r#"{"search":{"fairness_weight":0}}"#,
            r#"{"search":{},"search ":{}}"#,
            "[]",
        ] {
            assert_eq!(
                codes(&[("PECR_OPERATOR_CONCURRENCY_POLICIES", map)]),
                ["ERR_INVALID_CONFIG"],
                "{map}"
            );
        }
        let nulls = parse_policies(r#"{"search":{"max_in_flight":null,"other":5}}"#)
            .expect("null is absent, unknown fields ignored");
        assert_eq!(nulls.get("search"), Some(&OperatorPolicy::default()));
    }

    #[test]
    fn scenario_9_replay_settings() {
        let config = config(&[
            ("PECR_REPLAY_STORE", "file"),
            ("PECR_REPLAY_STORE_DIR", "target/custom-replay"),
            ("PECR_REPLAY_RETENTION_DAYS", "7"),
            ("PECR_REPLAY_LIST_LIMIT", "25"),
        ])
        .expect("loads");
        assert_eq!(
            config.replay.backend,
            ReplayBackend::Files(PathBuf::from("target/custom-replay"))
        );
        assert_eq!(config.replay.retention_days, 7);
        assert_eq!(config.replay.list_limit, 25);
        assert_eq!(
            codes(&[("PECR_REPLAY_LIST_LIMIT", "0")]),
            ["ERR_INVALID_CONFIG"]
        );
    }
}
