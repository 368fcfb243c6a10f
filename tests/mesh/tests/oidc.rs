//! OIDC mode across the mesh (spec 30 §3.2–3.3, spec 10 §7.2, decision 1):
//! the test is the issuer. It mints RSA keys, serves their JWKS over HTTP
//! and signs tokens; gateway and controller verify them, over gRPC and
//! REST, and the controller forwards the caller's token to the gateway.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pecr_errors::ErrorCode;
use pecr_mesh_tests::{BUDGET_DEFAULTS, Mesh, MeshOptions, client_for, error_of};
use pecr_proto::v1::{self, TerminalMode, gateway_service_client::GatewayServiceClient};
use pecr_testkit::{
    ServiceProcess, eventually, http_get, http_post_json, http_request, workspace_root,
};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::{Generate, PrivateKey};
use serde_json::{Value, json};
use tonic::Code;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "pecr";
const STATUS_QUESTION: &str = "What is the customer status and plan tier?";
/// Far beyond the 1 s refresh TTL the services run with.
const ROTATION_WAIT: Duration = Duration::from_secs(20);

/// One signing key of the test issuer.
struct SigningKey {
    kid: &'static str,
    encoding: EncodingKey,
    jwk: Value,
    public_der: Vec<u8>,
}

impl SigningKey {
    fn generate(kid: &'static str) -> Self {
        let private = PrivateKey::try_generate().expect("RSA key");
        let encoding =
            EncodingKey::from_rsa_der(private.to_pkcs1_der().expect("private DER").as_bytes());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("JWK");
        jwk.common.key_id = Some(kid.to_owned());
        let public_der = private
            .to_public_key()
            .to_pkcs1_der()
            .expect("public DER")
            .as_bytes()
            .to_vec();
        Self {
            kid,
            encoding,
            jwk: serde_json::to_value(jwk).expect("JWK JSON"),
            public_der,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// Two keys, generated side by side (seconds each in a debug build).
async fn keys() -> (SigningKey, SigningKey) {
    let first = tokio::task::spawn_blocking(|| SigningKey::generate("key-a"));
    let second = tokio::task::spawn_blocking(|| SigningKey::generate("key-b"));
    (first.await.expect("key-a"), second.await.expect("key-b"))
}

fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>()})
}

/// The issuer's JWKS endpoint: serves whatever set it is given and counts fetches.
struct JwksServer {
    addr: SocketAddr,
    served: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(initial: Value) -> Self {
        let served = Arc::new(Mutex::new(initial));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (state, count) = (Arc::clone(&served), Arc::clone(&fetches));
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                count.fetch_add(1, Ordering::SeqCst);
                let body = state.lock().map(|set| set.clone()).unwrap_or_default();
                async move { axum::Json(body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind JWKS server");
        let addr = listener.local_addr().expect("JWKS address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            served,
            fetches,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn serve(&self, set: Value) {
        if let Ok(mut served) = self.served.lock() {
            *served = set;
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn oidc_env(jwks_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PECR_AUTH_MODE", "oidc".into()),
        ("PECR_OIDC_ISSUER", ISSUER.into()),
        ("PECR_OIDC_JWKS_URL", jwks_url.into()),
        ("PECR_OIDC_AUDIENCE", AUDIENCE.into()),
        ("PECR_OIDC_TENANT_CLAIM", "tenant".into()),
        ("PECR_OIDC_ROLES_CLAIM", "groups".into()),
        ("PECR_OIDC_ABAC_CLAIMS", "dept".into()),
        ("PECR_OIDC_JWKS_REFRESH_TTL_SECS", "1".into()),
        ("PECR_OIDC_CLOCK_SKEW_SECS", "0".into()),
    ]
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Valid claims for `sub`; the safe views serve tenant `local`.
fn claims(sub: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "tenant": "local",
        "groups": ["analyst"],
        "dept": "eng",
        "exp": now() + 600,
    })
}

fn claims_with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims("dev");
    if let Some(map) = claims.as_object_mut() {
        change(map);
    }
    claims
}

fn bearer<T>(authorization: Option<&str>, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.set_timeout(Duration::from_secs(30));
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("header value"));
    }
    request
}

fn run_body(query: &str) -> v1::RunRequest {
    v1::RunRequest {
        query: query.into(),
        budget: None,
    }
}

/// A run over gRPC with `authorization`, as the caller sent it.
async fn grpc_run(
    mesh: &Mesh,
    authorization: Option<&str>,
    query: &str,
) -> Result<v1::RunResponse, tonic::Status> {
    let mut client = mesh.client().await;
    client
        .run(bearer(authorization, run_body(query)))
        .await
        .map(tonic::Response::into_inner)
}

async fn rest_run(
    mesh: &Mesh,
    authorization: Option<&str>,
    query: &str,
) -> pecr_testkit::HttpAnswer {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    http_post_json(
        &mesh.url("/v1/run"),
        &headers,
        &json!({"query": query}).to_string(),
    )
    .await
}

/// Both protocols refuse the request with `code` (401), and never echo the token.
async fn refused(mesh: &Mesh, what: &str, authorization: Option<&str>, code: ErrorCode) {
    let status = grpc_run(mesh, authorization, STATUS_QUESTION)
        .await
        .err()
        .unwrap_or_else(|| panic!("{what}: gRPC run was accepted"));
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    let error = error_of(&status);
    assert_eq!((error.code, error.http_status), (code, 401), "{what}");
    let answer = rest_run(mesh, authorization, STATUS_QUESTION).await;
    assert_eq!(answer.status, 401, "{what}: {}", answer.body);
    let body = answer.json();
    assert_eq!(body["code"], code.as_str(), "{what}: {}", answer.body);
    assert_eq!(body["terminal_mode_hint"], "INSUFFICIENT_PERMISSION");
    assert_eq!(body["retryable"], false);
    if let Some(token) = authorization.and_then(|value| value.split_whitespace().nth(1)) {
        for part in token.split('.').filter(|part| part.len() > 8) {
            assert!(
                !answer.body.contains(part),
                "{what}: the error echoes the token"
            );
            assert!(
                !error.message.contains(part),
                "{what}: the error echoes the token"
            );
        }
    }
}

#[tokio::test]
async fn oidc_tokens_authenticate_both_protocols_and_reach_the_gateway() {
    let (key_a, key_b) = keys().await;
    let issuer = JwksServer::start(jwks(&[&key_a])).await;
    let mut controller_env = oidc_env(&issuer.url());
    controller_env.push(("PECR_METRICS_REQUIRE_AUTH", "1".into()));
    let mesh = Mesh::start_with(MeshOptions {
        gateway: oidc_env(&issuer.url()),
        controller: controller_env,
    })
    .await;
    assert!(
        issuer.fetches() >= 2,
        "both services load the JWKS at start-up"
    );

    // A valid token runs end to end: the controller forwards it and the
    // gateway's policy sees principal `dev` of tenant `local`.
    let dev = format!("Bearer {}", key_a.sign(&claims("dev")));
    let response = grpc_run(&mesh, Some(&dev), STATUS_QUESTION)
        .await
        .unwrap_or_else(|status| panic!("valid token over gRPC: {status:?}"));
    assert_eq!(
        TerminalMode::try_from(response.terminal_mode).ok(),
        Some(TerminalMode::Supported),
        "{response:?}"
    );
    let mut client = mesh.client().await;
    let replay = client
        .get_replay(bearer(
            Some(&dev),
            v1::GetReplayRequest {
                run_id: response.run_id.clone(),
            },
        ))
        .await;
    assert!(
        replay.is_ok(),
        "the token's principal owns its replay: {replay:?}"
    );
    let lowercase = format!("bearer {}", key_a.sign(&claims("dev")));
    let answer = rest_run(&mesh, Some(&lowercase), STATUS_QUESTION).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json()["terminal_mode"],
        "SUPPORTED",
        "{}",
        answer.body
    );
    // The principal comes from the token: `guest` may read nothing.
    let guest = format!("Bearer {}", key_a.sign(&claims("guest")));
    let response = grpc_run(&mesh, Some(&guest), STATUS_QUESTION)
        .await
        .unwrap_or_else(|status| panic!("guest: {status:?}"));
    assert_eq!(
        TerminalMode::try_from(response.terminal_mode).ok(),
        Some(TerminalMode::InsufficientPermission)
    );

    // Everything a forger or a stale client might send.
    let signed = |claims: Value| format!("Bearer {}", key_a.sign(&claims));
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(key_a.kid.to_owned());
    let hmac_with_public_key = jsonwebtoken::encode(
        &hs256,
        &claims("dev"),
        &EncodingKey::from_secret(&key_a.public_der).expect("HMAC key"),
    )
    .expect("sign HS256");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": key_a.kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims("dev").to_string())
    );
    let invalid = [
        (
            "expired",
            signed(claims_with(|c| {
                c.insert("exp".into(), json!(now() - 60));
            })),
        ),
        (
            "wrong issuer",
            signed(claims_with(|c| {
                c.insert("iss".into(), json!("https://evil.test"));
            })),
        ),
        (
            "missing iss",
            signed(claims_with(|c| {
                c.remove("iss");
            })),
        ),
        (
            "wrong audience",
            signed(claims_with(|c| {
                c.insert("aud".into(), json!("someone-else"));
            })),
        ),
        (
            "missing aud",
            signed(claims_with(|c| {
                c.remove("aud");
            })),
        ),
        (
            "missing principal claim",
            signed(claims_with(|c| {
                c.remove("sub");
            })),
        ),
        (
            "missing tenant claim",
            signed(claims_with(|c| {
                c.remove("tenant");
            })),
        ),
        ("alg none", format!("Bearer {unsigned}")),
        (
            "HS256 keyed with the public key",
            format!("Bearer {hmac_with_public_key}"),
        ),
        ("not a bearer token", "Basic ZGV2OmRldg==".to_owned()),
        ("garbage", "Bearer not-a-jwt".to_owned()),
    ];
    for (what, authorization) in &invalid {
        refused(&mesh, what, Some(authorization), ErrorCode::AuthInvalid).await;
    }
    refused(&mesh, "no header", None, ErrorCode::AuthRequired).await;

    // Local-mode headers mean nothing in OIDC mode, at the gateway too.
    let answer = http_post_json(
        &mesh.url("/v1/run"),
        &[("x-pecr-principal-id", "dev")],
        r#"{"query":"smoke"}"#,
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let gateway = mesh.gateway.as_ref().expect("gateway running");
    let mut gateway_client = GatewayServiceClient::connect(gateway.grpc_url())
        .await
        .expect("connect gateway");
    let mut local_style = bearer(None, v1::CreateSessionRequest::default());
    local_style
        .metadata_mut()
        .insert("x-pecr-principal-id", "dev".parse().expect("value"));
    let status = gateway_client
        .create_session(local_style)
        .await
        .expect_err("the gateway wants a token");
    assert_eq!(error_of(&status).code, ErrorCode::AuthRequired);
    let expired = signed(claims_with(|c| {
        c.insert("exp".into(), json!(now() - 60));
    }));
    let status = gateway_client
        .create_session(bearer(Some(&expired), v1::CreateSessionRequest::default()))
        .await
        .expect_err("the gateway checks the token itself");
    assert_eq!(error_of(&status).code, ErrorCode::AuthInvalid);

    // /metrics runs the same authentication.
    let metrics = mesh.url("/metrics");
    let anonymous = http_request("GET", &metrics, &[], None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(anonymous.json()["code"], "ERR_AUTH_REQUIRED");
    let allowed = http_request("GET", &metrics, &[("authorization", &dev)], None).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);

    // Key rotation: a token signed with a key the JWKS does not list yet is
    // refused, also once the cache is older than the refresh TTL (1 s) and
    // the controller refetches; once the issuer publishes the key, both
    // services refetch and accept it. The TTL runs on the services' clocks,
    // so the test waits for the refetches, not for the time.
    let rotated = format!("Bearer {}", key_b.sign(&claims("dev")));
    let before = issuer.fetches();
    eventually("a refetch for the unknown kid", ROTATION_WAIT, || async {
        refused(&mesh, "unknown kid", Some(&rotated), ErrorCode::AuthInvalid).await;
        (issuer.fetches() > before).then_some(())
    })
    .await;
    issuer.serve(jwks(&[&key_a, &key_b]));
    let before = issuer.fetches();
    let response = eventually("the rotated key accepted", ROTATION_WAIT, || async {
        match grpc_run(&mesh, Some(&rotated), STATUS_QUESTION).await {
            Ok(response) => Some(response),
            // Refused until the cache that refused it is older than the TTL.
            Err(status) if status.code() == Code::Unauthenticated => None,
            Err(status) => panic!("rotated key: {status:?}"),
        }
    })
    .await;
    assert_eq!(
        TerminalMode::try_from(response.terminal_mode).ok(),
        Some(TerminalMode::Supported)
    );
    assert!(
        issuer.fetches() >= before + 2,
        "controller and gateway each refetched the JWKS"
    );
    let answer = rest_run(&mesh, Some(&rotated), STATUS_QUESTION).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // The old key still works: it is still published.
    let answer = rest_run(&mesh, Some(&dev), "smoke").await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // A second controller replica sees the same principal and replays.
    let replica = mesh.start_controller(&[]).await;
    let mut replica_client = client_for(&replica).await;
    let replay = replica_client
        .get_replay(bearer(
            Some(&dev),
            v1::GetReplayRequest {
                run_id: response.run_id,
            },
        ))
        .await;
    assert!(replay.is_ok(), "{replay:?}");
}

/// Settings a gateway needs to get past configuration, without a database.
fn gateway_start_env(extra: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let root = workspace_root();
    let mut env = vec![
        ("PECR_DB_URL", "postgres://pecr@127.0.0.1:1/pecr".to_owned()),
        ("PECR_LEDGER_URL", "http://127.0.0.1:1".to_owned()),
        pecr_testkit::credentials::gateway_ledger_token(),
        ("PECR_GATEWAY_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "PECR_FS_CORPUS_PATH",
            root.join("fixtures/fs_corpus").display().to_string(),
        ),
        (
            "PECR_POLICY_BUNDLE_DIR",
            root.join("opa/bundle").display().to_string(),
        ),
    ];
    env.extend(extra);
    env
}

fn controller_start_env(extra: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PECR_GATEWAY_URL", "http://127.0.0.1:1".to_owned()),
        pecr_testkit::credentials::controller_ledger_token(),
        ("PECR_BUDGET_DEFAULTS", BUDGET_DEFAULTS.to_owned()),
        ("PECR_CONTROLLER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_CONTROLLER_BIND_ADDR", "127.0.0.1:0".to_owned()),
    ];
    env.extend(extra);
    env
}

async fn refuses_to_start(binary: &str, env: &[(&'static str, String)], code: &str) {
    let report = ServiceProcess::run_to_exit(binary, env).await;
    assert_eq!(report.code, Some(1), "{binary}: {}", report.stderr);
    assert!(
        report.stderr.contains(&format!("STARTUP_ERROR {code}: ")),
        "{binary} should fail with {code}:\n{}",
        report.stderr
    );
}

#[tokio::test]
async fn oidc_start_up_needs_its_settings_and_a_reachable_jwks() {
    // Nothing listens on a port whose listener was just closed.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("address")
    };
    let down = oidc_env(&format!("http://{closed}/jwks"));
    refuses_to_start(
        "pecr-controller",
        &controller_start_env(down.clone()),
        "ERR_AUTH_UNAVAILABLE",
    )
    .await;
    refuses_to_start(
        "pecr-gateway",
        &gateway_start_env(down),
        "ERR_AUTH_UNAVAILABLE",
    )
    .await;

    let without_issuer: Vec<_> = oidc_env("http://127.0.0.1:1/jwks")
        .into_iter()
        .filter(|(key, _)| *key != "PECR_OIDC_ISSUER")
        .collect();
    refuses_to_start(
        "pecr-controller",
        &controller_start_env(without_issuer),
        "ERR_MISSING_CONFIG",
    )
    .await;
    let without_keys: Vec<_> = oidc_env("http://127.0.0.1:1/jwks")
        .into_iter()
        .filter(|(key, _)| *key != "PECR_OIDC_JWKS_URL")
        .collect();
    refuses_to_start(
        "pecr-gateway",
        &gateway_start_env(without_keys),
        "ERR_INVALID_CONFIG",
    )
    .await;
    let mut bad_inline = oidc_env("http://127.0.0.1:1/jwks");
    bad_inline.push(("PECR_OIDC_JWKS_JSON", "{not json".to_owned()));
    refuses_to_start(
        "pecr-controller",
        &controller_start_env(bad_inline),
        "ERR_INVALID_CONFIG",
    )
    .await;
}

/// The attack: `dev` of one tenant replays the session of `dev` of another
/// tenant (token included) and reads that tenant's rows. A session is bound
/// to the tenant, the principal and the principal's attribute hash; any
/// mismatch is the same 401 as a wrong token, and is recorded apart from
/// the session's events.
#[tokio::test]
async fn a_session_is_bound_to_its_tenant_principal_and_attributes() {
    let (key, _) = keys().await;
    let issuer = JwksServer::start(jwks(&[&key])).await;
    let mesh = Mesh::start_with(MeshOptions {
        gateway: oidc_env(&issuer.url()),
        controller: oidc_env(&issuer.url()),
    })
    .await;
    let gateway = mesh.gateway.as_ref().expect("gateway running");
    let mut client = GatewayServiceClient::connect(gateway.grpc_url())
        .await
        .expect("connect gateway");
    let owner = format!("Bearer {}", key.sign(&claims("dev")));
    let created = client
        .create_session(bearer(
            Some(&owner),
            v1::CreateSessionRequest {
                budget: Some(pecr_mesh_tests::roomy_budget()),
                as_of_time: None,
                calls: Vec::new(),
            },
        ))
        .await
        .expect("session");
    let token = created
        .metadata()
        .get("x-pecr-session-token")
        .and_then(|value| value.to_str().ok())
        .expect("token")
        .to_owned();
    let session_id = created.into_inner().session_id;

    let fetch = |authorization: String| {
        let mut request = bearer(
            Some(&authorization),
            v1::CallOperatorRequest {
                session_id: session_id.clone(),
                op_name: "fetch_rows".into(),
                params: json!({"view_id": "safe_customer_view_public", "filter_spec": {"customer_id": "cust_public_1"}, "fields": ["status", "plan_tier"]}).to_string(),
            },
        );
        request
            .metadata_mut()
            .insert("x-pecr-session-token", token.parse().expect("token"));
        let mut client = client.clone();
        async move { client.call_operator(request).await }
    };
    let intruders = [
        (
            "same name, other tenant",
            claims_with(|c| {
                c.insert("tenant".into(), json!("tenant-b"));
            }),
            "tenant_mismatch",
        ),
        (
            "same name, other attributes",
            claims_with(|c| {
                c.insert("dept".into(), json!("sales"));
            }),
            "attributes_mismatch",
        ),
        ("other principal", claims("support"), "principal_mismatch"),
    ];
    for (what, intruder_claims, _) in &intruders {
        let status = fetch(format!("Bearer {}", key.sign(intruder_claims)))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        let error = error_of(&status);
        assert_eq!(
            (error.http_status, error.message.as_str()),
            (401, "invalid session credentials"),
            "{what}"
        );
    }
    let reasons: Vec<String> = mesh
        .db
        .client()
        .query(
            "SELECT reason FROM pecr_session_access_refusals WHERE session_id = $1 \
             ORDER BY refusal_id",
            &[&session_id],
        )
        .await
        .expect("refusals")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<String> = intruders.iter().map(|(_, _, r)| (*r).to_owned()).collect();
    assert_eq!(reasons, expected);
    let evidence: i64 = mesh
        .db
        .client()
        .query_one(
            "SELECT count(*) FROM pecr_evidence_units WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(evidence, 0, "no intruder read a row");

    // The owner still can.
    let reply = fetch(owner).await.expect("owner reads");
    assert!(reply.into_inner().result.contains("cust_public_1"));
}

#[tokio::test]
async fn rate_limits_are_per_tenant_not_per_principal_id() {
    let (key_a, _) = keys().await;
    let issuer = JwksServer::start(jwks(&[&key_a])).await;
    let mut gateway_env = oidc_env(&issuer.url());
    gateway_env.push(("PECR_RATE_LIMIT_SESSIONS_PER_WINDOW", "1".into()));
    let mut controller_env = oidc_env(&issuer.url());
    controller_env.push(("PECR_RATE_LIMIT_RUN_PER_WINDOW", "1".into()));
    let mesh = Mesh::start_with(MeshOptions {
        gateway: gateway_env,
        controller: controller_env,
    })
    .await;
    let dev_of = |tenant: &str| {
        format!(
            "Bearer {}",
            key_a.sign(&claims_with(|c| {
                c.insert("tenant".into(), json!(tenant));
            }))
        )
    };
    let (acme, globex) = (dev_of("acme"), dev_of("globex"));

    grpc_run(&mesh, Some(&acme), "smoke")
        .await
        .unwrap_or_else(|status| panic!("acme's first run: {status:?}"));
    let status = grpc_run(&mesh, Some(&acme), "smoke")
        .await
        .expect_err("acme's dev has spent its run quota");
    assert_eq!(error_of(&status).code, ErrorCode::RateLimited);
    // Same principal id, other tenant: its own quota at the controller and
    // at the gateway (whose session quota of 1 acme's run has spent).
    grpc_run(&mesh, Some(&globex), "smoke")
        .await
        .unwrap_or_else(|status| panic!("globex's dev is not limited by acme's: {status:?}"));
    let gateway = mesh.gateway.as_ref().expect("gateway");
    let mut client = GatewayServiceClient::connect(gateway.grpc_url())
        .await
        .expect("connect gateway");
    let status = client
        .create_session(bearer(
            Some(&acme),
            v1::CreateSessionRequest {
                budget: Some(pecr_mesh_tests::roomy_budget()),
                as_of_time: None,
                calls: Vec::new(),
            },
        ))
        .await
        .expect_err("acme's dev has spent its session quota at the gateway");
    assert_eq!(error_of(&status).code, ErrorCode::RateLimited);
    assert_eq!(
        error_of(&status).message,
        "rate limit exceeded for session creation"
    );
}

/// A JSON-RPC request to `/mcp` of `base` with the MCP transport's headers.
async fn mcp_post(
    base: &str,
    authorization: Option<&str>,
    session: Option<&str>,
    body: &Value,
) -> pecr_testkit::HttpAnswer {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    if let Some(value) = authorization {
        headers.push(("authorization", value));
    }
    if let Some(id) = session {
        headers.push(("mcp-session-id", id));
    }
    http_request(
        "POST",
        &format!("{base}/mcp"),
        &headers,
        Some(&body.to_string()),
    )
    .await
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "oidc-test", "version": "1"}}})
}

#[tokio::test]
async fn mcp_challenges_for_a_bearer_token_and_binds_sessions_to_it() {
    let (key, _) = keys().await;
    let issuer = JwksServer::start(jwks(&[&key])).await;
    let mesh = Mesh::start_with(MeshOptions {
        gateway: oidc_env(&issuer.url()),
        controller: oidc_env(&issuer.url()),
    })
    .await;
    let gateway = mesh.gateway.as_ref().expect("gateway").http_url("");
    let controller = mesh.url("");
    for base in [&gateway, &controller] {
        // No token: 401, a Bearer challenge naming the resource document.
        let refused = mcp_post(base, None, None, &initialize()).await;
        assert_eq!(refused.status, 401, "{base}: {}", refused.body);
        assert_eq!(refused.json()["code"], "ERR_AUTH_REQUIRED");
        let document_url = format!("{base}/.well-known/oauth-protected-resource");
        assert_eq!(
            refused.header("www-authenticate"),
            Some(format!("Bearer resource_metadata=\"{document_url}\""))
        );
        // The document names the resource and the issuer.
        let document = http_get(&document_url).await;
        assert_eq!(document.status, 200, "{}", document.body);
        assert_eq!(document.json()["resource"], format!("{base}/mcp"));
        assert_eq!(document.json()["authorization_servers"], json!([ISSUER]));
        let beside_mcp = http_get(&format!("{document_url}/mcp")).await;
        assert_eq!(beside_mcp.json(), document.json());
        // A bad token is refused the same way, never echoed.
        let forged = mcp_post(base, Some("Bearer a.b.c"), None, &initialize()).await;
        assert_eq!(forged.status, 401);
        assert_eq!(forged.json()["code"], "ERR_AUTH_INVALID");
    }

    // dev's token opens a session (and a PECR session); support's token
    // cannot use it, dev's can.
    let dev = format!("Bearer {}", key.sign(&claims("dev")));
    let support = format!("Bearer {}", key.sign(&claims("support")));
    let opened = mcp_post(&gateway, Some(&dev), None, &initialize()).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    let session = opened.header("mcp-session-id").expect("a session id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let acknowledged = mcp_post(&gateway, Some(&dev), Some(&session), &initialized).await;
    assert_eq!(acknowledged.status, 202, "{}", acknowledged.body);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let foreign = mcp_post(&gateway, Some(&support), Some(&session), &list).await;
    assert_eq!(foreign.status, 401, "{}", foreign.body);
    assert_eq!(foreign.json()["code"], "ERR_POLICY_DENIED");
    assert_eq!(foreign.json()["message"], "invalid session credentials");
    let own = mcp_post(&gateway, Some(&dev), Some(&session), &list).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(own.body.contains("\"fetch_rows\""), "{}", own.body);
}
