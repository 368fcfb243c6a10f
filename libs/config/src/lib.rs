//! Configuration from `PECR_*` variables. Precedence: built-in defaults, then
//! the `KEY=VALUE` file named by `PECR_CONFIG_PATH`, then the environment.
//! Readers collect every bad value so a start-up reports them all at once.

mod reader;
mod source;

pub use reader::ConfigReader;
pub use source::{EnvSource, LayeredSource, MapSource, ProcessEnv};

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
