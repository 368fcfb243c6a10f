//! Configuration from `PECR_*` variables. Precedence: built-in defaults, then
//! the `KEY=VALUE` file named by `PECR_CONFIG_PATH`, then the environment.
//! Readers collect every bad value so a start-up reports them all at once.

mod oidc;
mod reader;
mod source;

pub use oidc::{JwksSource, OidcSettings, TenantSource, claim_list};
pub use reader::{ConfigReader, MIN_SERVICE_TOKEN_LEN};
pub use source::{EnvSource, LayeredSource, MapSource, ProcessEnv};

/// A secret setting (a token, a password): `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A start-up failure: printed as one `STARTUP_ERROR <CODE>: <message>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupError {
    pub code: &'static str,
    pub message: String,
}

impl StartupError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("ERR_INVALID_CONFIG", message)
    }
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "STARTUP_ERROR {}: {}", self.code, self.message)
    }
}

impl std::error::Error for StartupError {}

/// Several start-up failures, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupErrors(pub Vec<StartupError>);

impl std::fmt::Display for StartupErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StartupErrors {}

impl From<StartupError> for StartupErrors {
    fn from(error: StartupError) -> Self {
        Self(vec![error])
    }
}

/// Booleans as the contract spells them; anything else counts as unset.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim() {
        "1" | "true" | "TRUE" | "yes" | "YES" => Some(true),
        "0" | "false" | "FALSE" | "no" | "NO" => Some(false),
        _ => None,
    }
}

/// The bind rule for services without mesh authentication yet: a
/// non-loopback bind needs `PECR_DEV_ALLOW_NONLOCAL_BIND`, the unspecified
/// address (`0.0.0.0` or `::`) and configured client authentication.
pub fn check_bind_rule(
    key: &str,
    addr: std::net::SocketAddr,
    allow_nonlocal: bool,
    auth_configured: bool,
) -> Result<(), StartupError> {
    let ip = addr.ip();
    if ip.is_loopback() || (allow_nonlocal && ip.is_unspecified() && auth_configured) {
        return Ok(());
    }
    Err(StartupError::new(
        "ERR_NONLOCAL_BIND_REQUIRES_AUTH",
        format!(
            "{key}={addr} is not loopback; binding it requires PECR_DEV_ALLOW_NONLOCAL_BIND=1, \
             an unspecified address (0.0.0.0 or ::) and client authentication"
        ),
    ))
}

#[cfg(test)]
mod bind_rule_tests {
    use super::*;

    #[test]
    fn loopback_is_always_allowed() {
        let addr = "127.0.0.1:8080".parse().expect("addr");
        assert!(check_bind_rule("K", addr, false, false).is_ok());
    }

    #[test]
    fn nonlocal_needs_override_unspecified_ip_and_auth() {
        let any = "0.0.0.0:8080".parse().expect("addr");
        let lan = "10.1.2.3:8080".parse().expect("addr");
        assert_eq!(
            check_bind_rule("K", any, false, true).err().map(|e| e.code),
            Some("ERR_NONLOCAL_BIND_REQUIRES_AUTH")
        );
        assert!(check_bind_rule("K", any, true, false).is_err());
        assert!(check_bind_rule("K", lan, true, true).is_err());
        assert!(check_bind_rule("K", any, true, true).is_ok());
    }
}

/// The front-door settings gateway and controller share: auth mode (with
/// its OIDC settings), the local shared secret, and the non-local bind
/// override.
pub struct FrontDoor {
    /// `Some` exactly when `PECR_AUTH_MODE=oidc`.
    pub oidc: Option<OidcSettings>,
    pub shared_secret: Option<String>,
    pub allow_nonlocal_bind: bool,
}

impl std::fmt::Debug for FrontDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDoor")
            .field("oidc", &self.oidc)
            .field(
                "shared_secret",
                &self.shared_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_nonlocal_bind", &self.allow_nonlocal_bind)
            .finish()
    }
}

impl FrontDoor {
    /// Reads `PECR_AUTH_MODE` (and in oidc mode every `PECR_OIDC_*` key),
    /// `PECR_LOCAL_AUTH_SHARED_SECRET` and `PECR_DEV_ALLOW_NONLOCAL_BIND`,
    /// and applies the bind rule to `binds`: oidc mode may bind anywhere
    /// (spec 30 §2.4).
    pub fn read(reader: &mut ConfigReader<'_>, binds: &[(&str, std::net::SocketAddr)]) -> Self {
        let oidc_mode = match reader.string("PECR_AUTH_MODE", "local").as_str() {
            "local" => false,
            "oidc" => true,
            other => {
                reader.push_error(StartupError::invalid(format!(
                    "PECR_AUTH_MODE must be local or oidc (got {other:?})"
                )));
                false
            }
        };
        let shared_secret = reader.raw("PECR_LOCAL_AUTH_SHARED_SECRET");
        let allow_nonlocal_bind = reader
            .raw("PECR_DEV_ALLOW_NONLOCAL_BIND")
            .and_then(|raw| parse_bool(&raw))
            .unwrap_or(false);
        for (key, addr) in binds.iter().filter(|_| !oidc_mode) {
            match check_bind_rule(key, *addr, allow_nonlocal_bind, shared_secret.is_some()) {
                Err(err) => reader.push_error(err),
                // Allowed only through the dev override: say so loudly.
                Ok(()) if !addr.ip().is_loopback() => tracing::warn!(
                    event = "config.nonlocal_bind",
                    key = *key,
                    addr = %addr,
                    "listening beyond loopback through PECR_DEV_ALLOW_NONLOCAL_BIND with local auth; use OIDC and mTLS outside development"
                ),
                Ok(()) => {}
            }
        }
        let oidc = oidc_mode.then(|| OidcSettings::read(reader));
        Self {
            oidc,
            shared_secret,
            allow_nonlocal_bind,
        }
    }
}

#[cfg(test)]
mod front_door_tests {
    use super::*;

    fn read(pairs: &[(&str, &str)], bind: &str) -> Result<FrontDoor, StartupErrors> {
        let source = MapSource::from_pairs(pairs.iter().copied());
        let mut reader = ConfigReader::new(&source);
        let door = FrontDoor::read(
            &mut reader,
            &[("PECR_BIND_ADDR", bind.parse().expect("addr"))],
        );
        reader.finish().map(|()| door)
    }

    #[test]
    fn nonlocal_bind_needs_override_and_secret() {
        let err = read(&[], "0.0.0.0:8080").err().map(|e| e.0[0].code);
        assert_eq!(err, Some("ERR_NONLOCAL_BIND_REQUIRES_AUTH"));
        let ok = read(
            &[
                ("PECR_DEV_ALLOW_NONLOCAL_BIND", "1"),
                ("PECR_LOCAL_AUTH_SHARED_SECRET", "dev-secret"),
            ],
            "0.0.0.0:8080",
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn oidc_mode_reads_its_settings_and_may_bind_anywhere() {
        let door = read(
            &[
                ("PECR_AUTH_MODE", "oidc"),
                ("PECR_OIDC_ISSUER", "https://issuer.example"),
                ("PECR_OIDC_JWKS_URL", "http://127.0.0.1:9/jwks"),
                ("PECR_OIDC_TENANT_ID_STATIC", "local"),
            ],
            "10.0.0.5:8080",
        )
        .expect("oidc may bind a specific non-loopback address");
        let oidc = door.oidc.expect("oidc settings");
        assert_eq!(oidc.issuer, "https://issuer.example");
        let missing = read(&[("PECR_AUTH_MODE", "oidc")], "127.0.0.1:8080")
            .err()
            .map(|e| e.0.iter().map(|e| e.code).collect::<Vec<_>>());
        assert_eq!(
            missing,
            Some(vec![
                "ERR_MISSING_CONFIG",
                "ERR_INVALID_CONFIG",
                "ERR_INVALID_CONFIG"
            ])
        );
        let local = read(&[], "127.0.0.1:8080").expect("local");
        assert!(local.oidc.is_none());
    }

    #[test]
    fn unknown_auth_modes_are_refused() {
        let err = read(&[("PECR_AUTH_MODE", "ldap")], "127.0.0.1:8080")
            .err()
            .map(|e| e.0[0].code);
        assert_eq!(err, Some("ERR_INVALID_CONFIG"));
    }
}

/// How much work a service admits at once (see `pecr-server`'s request
/// stack): calls beyond `max_in_flight` are refused at once as overloaded,
/// and no call runs longer than `deadline_cap`, whatever deadline its
/// client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub max_in_flight: usize,
    pub deadline_cap: std::time::Duration,
}

impl Admission {
    /// Reads `PECR_MAX_IN_FLIGHT_REQUESTS` (default 512) and
    /// `PECR_REQUEST_DEADLINE_MS` (default `default_deadline_ms`, the
    /// service's longest legitimate call plus margin).
    pub fn read(reader: &mut ConfigReader<'_>, default_deadline_ms: u64) -> Self {
        let max_in_flight = reader.number("PECR_MAX_IN_FLIGHT_REQUESTS", 512, 1, 1_000_000);
        let deadline_ms = reader.number(
            "PECR_REQUEST_DEADLINE_MS",
            default_deadline_ms,
            100,
            3_600_000,
        );
        Self {
            max_in_flight,
            deadline_cap: std::time::Duration::from_millis(deadline_ms),
        }
    }
}
