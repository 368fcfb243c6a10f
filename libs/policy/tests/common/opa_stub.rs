//! Test servers on 127.0.0.1:0 that speak OPA's HTTP API.
//!
//! `OpaStub` answers `POST /v1/data/pecr/authz/decision` by evaluating the
//! bundle's Rego with regorus (its own engine, not the crate's), the way OPA
//! does: `{"result": …}`, or `{}` when the rule is undefined. A `Mode` makes
//! it misbehave on purpose. `BlackHole` accepts connections and never answers.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub const DECISION_PATH: &str = "/v1/data/pecr/authz/decision";

/// How the stub answers decision requests.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Evaluate the bundle, like OPA.
    Rego,
    /// Always this status with an error body.
    Status(u16),
    /// The first `n` requests get `status`, later ones are evaluated.
    FailFirst(usize, u16),
    /// 200 with a body that is not a decision.
    Garbage,
    /// Evaluate once [`OpaStub::release`] is called: a request in flight
    /// for exactly as long as the test wants.
    Held,
}

/// The Rego of a bundle directory loaded into a regorus engine.
pub struct RegoOpa {
    prepared: regorus::Engine,
}

impl RegoOpa {
    pub fn load(dir: &Path) -> Self {
        let mut engine = regorus::Engine::new();
        for entry in std::fs::read_dir(dir).expect("bundle dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|ext| ext == "rego") {
                engine.add_policy_from_file(&path).expect("rego parses");
            }
        }
        Self { prepared: engine }
    }

    /// OPA's answer to a data API POST body.
    pub fn answer(&self, body: &[u8]) -> (u16, String) {
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return (400, json!({"code": "invalid_parameter"}).to_string());
        };
        let mut engine = self.prepared.clone();
        if let Some(input) = request.get("input") {
            engine.set_input(regorus::Value::from(input.clone()));
        }
        match engine.eval_rule("data.pecr.authz.decision".to_owned()) {
            Ok(regorus::Value::Undefined) => (200, "{}".to_owned()),
            Ok(value) => {
                let result = serde_json::to_value(&value).expect("regorus value is JSON");
                (200, json!({ "result": result }).to_string())
            }
            Err(error) => (
                500,
                json!({"code": "internal_error", "message": error.to_string()}).to_string(),
            ),
        }
    }
}

struct State {
    rego: RegoOpa,
    mode: Mutex<Mode>,
    health_status: AtomicU16,
    decisions: AtomicUsize,
    health_checks: AtomicUsize,
    released: watch::Sender<bool>,
}

pub struct OpaStub {
    pub url: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl OpaStub {
    pub async fn start(bundle: &Path, mode: Mode) -> Self {
        let state = Arc::new(State {
            rego: RegoOpa::load(bundle),
            mode: Mutex::new(mode),
            health_status: AtomicU16::new(200),
            decisions: AtomicUsize::new(0),
            health_checks: AtomicUsize::new(0),
            released: watch::Sender::new(false),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(serve(listener, Arc::clone(&state)));
        Self { url, state, task }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().expect("mode lock") = mode;
    }

    /// Holds decision requests until [`OpaStub::release`].
    pub fn hold(&self) {
        self.state.released.send_replace(false);
        self.set_mode(Mode::Held);
    }

    /// Answers the held requests, and later ones at once.
    pub fn release(&self) {
        self.state.released.send_replace(true);
    }

    pub fn set_health_status(&self, status: u16) {
        self.state.health_status.store(status, Ordering::SeqCst);
    }

    /// Decision requests received so far (including failed ones).
    pub fn decision_requests(&self) -> usize {
        self.state.decisions.load(Ordering::SeqCst)
    }

    pub fn health_checks(&self) -> usize {
        self.state.health_checks.load(Ordering::SeqCst)
    }
}

impl Drop for OpaStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    // Connections live in the set, so aborting the server ends them too.
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&state), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (status, body) = match (method, path.as_str()) {
        (Method::GET, "/health") => {
            state.health_checks.fetch_add(1, Ordering::SeqCst);
            (state.health_status.load(Ordering::SeqCst), "{}".to_owned())
        }
        (Method::POST, DECISION_PATH) => {
            let index = state.decisions.fetch_add(1, Ordering::SeqCst);
            let body = request
                .into_body()
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            let mode = state.mode.lock().expect("mode lock").clone();
            match mode {
                Mode::Rego => state.rego.answer(&body),
                Mode::Status(status) => (status, json!({"code": "stub"}).to_string()),
                Mode::FailFirst(n, status) if index < n => {
                    (status, json!({"code": "stub"}).to_string())
                }
                Mode::FailFirst(..) => state.rego.answer(&body),
                Mode::Garbage => (200, "<html>not json</html>".to_owned()),
                Mode::Held => {
                    // The sender lives in `state`, so the wait ends only on release.
                    let _ = state
                        .released
                        .subscribe()
                        .wait_for(|released| *released)
                        .await;
                    state.rego.answer(&body)
                }
            }
        }
        _ => (404, "{}".to_owned()),
    };
    let response = Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("response builds");
    Ok(response)
}

/// Accepts TCP connections, holds them open and never writes a byte.
pub struct BlackHole {
    pub url: String,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        Self {
            url,
            accepted,
            task,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
