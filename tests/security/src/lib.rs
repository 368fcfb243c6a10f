//! Support for the security gate (`scripts/security-gate.sh`): the mesh the
//! gate started, read from the `PECR_GATE_*` variables it exports; the OIDC
//! issuer whose keys that mesh trusts; who the callers are and which
//! canaries each may never see; and a record of every response, which the
//! gate scans once more at the end.
//!
//! The tests in `tests/` are `#[ignore]`d in a plain `cargo test`: they need
//! that mesh, and the gate runs them with `--ignored`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub mod issuer;
pub mod mcp;

/// Every canary string of the fixtures.
pub const CANARIES: [&str; 6] = [
    RESTRICTED_ALPHA,
    INJECTION_BETA,
    ADMIN_DELTA_1,
    SUPPORT_EPSILON_1,
    ADMIN_DELTA_2,
    SUPPORT_EPSILON_2,
];

pub const RESTRICTED_ALPHA: &str = "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f";
pub const INJECTION_BETA: &str = "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c";
pub const ADMIN_DELTA_1: &str = "PECR_CANARY_PG_ADMIN_DELTA_1f2d8c6f87f84b76";
pub const SUPPORT_EPSILON_1: &str = "PECR_CANARY_PG_SUPPORT_EPSILON_6c6f4f07c04f4f8f";
pub const ADMIN_DELTA_2: &str = "PECR_CANARY_PG_ADMIN_DELTA_2a519d6b7f4348d4";
pub const SUPPORT_EPSILON_2: &str = "PECR_CANARY_PG_SUPPORT_EPSILON_8d77b9a9d9e24c2b";

/// The issuer and audience the gate's mesh expects in tokens.
pub const ISSUER: &str = "https://issuer.pecr-gate.test";
pub const AUDIENCE: &str = "pecr";

/// A gate setting; panics with a clear message when the gate did not set it.
pub fn gate_env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run this test through scripts/security-gate.sh")
    })
}

/// A caller as the issuer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: &'static str,
    pub tenant: &'static str,
    pub dept: &'static str,
}

impl Caller {
    pub const fn new(principal: &'static str, tenant: &'static str) -> Self {
        Self {
            principal,
            tenant,
            dept: "eng",
        }
    }

    pub const fn with_dept(self, dept: &'static str) -> Self {
        Self { dept, ..self }
    }

    /// A short label for messages: `dev@local`.
    pub fn label(&self) -> String {
        format!("{}@{}/{}", self.principal, self.tenant, self.dept)
    }

    /// The canaries this caller may never see, under the shipped policy
    /// bundle (`opa/bundle`): dev reads everything of its tenant; support
    /// reads `public/`, `injection/` and the public and support views with
    /// admin and injection notes redacted; nobody else reads anything. The
    /// safe views serve tenant `local` only; the corpus is not per tenant.
    pub fn forbidden(&self) -> Vec<&'static str> {
        let database = [
            ADMIN_DELTA_1,
            ADMIN_DELTA_2,
            SUPPORT_EPSILON_1,
            SUPPORT_EPSILON_2,
        ];
        match (self.principal, self.tenant) {
            ("dev", "local") => Vec::new(),
            ("dev", _) => database.to_vec(),
            ("support", "local") => vec![RESTRICTED_ALPHA, ADMIN_DELTA_1, ADMIN_DELTA_2],
            ("support", _) => {
                let mut forbidden = database.to_vec();
                forbidden.push(RESTRICTED_ALPHA);
                forbidden
            }
            _ => CANARIES.to_vec(),
        }
    }
}

/// The callers of the canary matrix.
pub const CALLERS: [Caller; 6] = [
    Caller::new("dev", "local"),
    Caller::new("support", "local"),
    Caller::new("guest", "local"),
    Caller::new("mallory", "local"),
    Caller::new("dev", "tenant-b"),
    Caller::new("support", "tenant-b"),
];

/// The mesh the gate started.
pub struct Gate {
    pub dir: PathBuf,
    pub gateway_grpc: String,
    pub gateway_http: String,
    pub controller_grpc: String,
    pub controller_http: String,
    pub ledger_grpc: String,
    pub ledger_gateway_token: String,
    pub ledger_controller_token: String,
    pub ledger_auditor_token: String,
    /// Superuser URL of the gate's `pecr` database, for checks only.
    pub db_url: String,
    pub corpus: PathBuf,
    signing_key: EncodingKey,
}

impl Gate {
    /// The mesh described by the gate's environment.
    pub fn from_env() -> Self {
        let dir = PathBuf::from(gate_env("PECR_GATE_DIR"));
        let signing_key = issuer::load_signing_key(&dir.join("issuer"))
            .unwrap_or_else(|err| panic!("issuer key: {err}"));
        Self {
            gateway_grpc: format!("http://{}", gate_env("PECR_GATE_GATEWAY_GRPC")),
            gateway_http: format!("http://{}", gate_env("PECR_GATE_GATEWAY_HTTP")),
            controller_grpc: format!("http://{}", gate_env("PECR_GATE_CONTROLLER_GRPC")),
            controller_http: format!("http://{}", gate_env("PECR_GATE_CONTROLLER_HTTP")),
            ledger_grpc: format!("http://{}", gate_env("PECR_GATE_LEDGER_GRPC")),
            ledger_gateway_token: gate_env("PECR_GATE_LEDGER_GATEWAY_TOKEN"),
            ledger_controller_token: gate_env("PECR_GATE_LEDGER_CONTROLLER_TOKEN"),
            ledger_auditor_token: gate_env("PECR_GATE_LEDGER_AUDITOR_TOKEN"),
            db_url: gate_env("PECR_GATE_DB_URL"),
            corpus: PathBuf::from(gate_env("PECR_GATE_CORPUS")),
            dir,
            signing_key,
        }
    }

    /// A valid bearer token for `caller`, as the issuer would sign it.
    pub fn token(&self, caller: &Caller) -> String {
        issuer::sign(&self.signing_key, &claims(caller))
    }

    /// `authorization` header value for `caller`.
    pub fn authorization(&self, caller: &Caller) -> String {
        format!("Bearer {}", self.token(caller))
    }

    /// Records a response `caller` received, and fails if it holds a
    /// canary the caller may never see. Every record is appended to
    /// `responses.jsonl` for the gate's final scan.
    pub fn record(&self, caller: &Caller, what: &str, body: &str) {
        let forbidden = caller.forbidden();
        let line = json!({
            "caller": caller.label(),
            "what": what,
            "forbidden": forbidden,
            "body": body,
        });
        append_line(&self.dir.join("responses.jsonl"), &line.to_string());
        for canary in forbidden {
            assert!(
                !body.contains(canary),
                "{} received {canary} from {what}: {body}",
                caller.label()
            );
        }
    }

    /// A PostgreSQL connection to the gate's database (checks only).
    pub async fn database(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| panic!("gate database: {err}"));
        tokio::spawn(connection);
        client
    }
}

/// Claims for `caller`, valid for ten minutes.
pub fn claims(caller: &Caller) -> Value {
    claims_for(caller.principal, caller.tenant, caller.dept)
}

/// Claims for a principal of a tenant and department, valid for ten minutes.
pub fn claims_for(principal: &str, tenant: &str, dept: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal,
        "tenant": tenant,
        "groups": ["analyst"],
        "dept": dept,
        "exp": now + 600,
    })
}

/// RS256 with the issuer's key id.
pub fn header() -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(issuer::KEY_ID.to_owned());
    header
}

/// Appends one whole line: the attack tests run in parallel threads, and
/// `writeln!` may split a line over several writes that interleave.
fn append_line(path: &Path, line: &str) {
    static APPEND: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serialised = APPEND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}
