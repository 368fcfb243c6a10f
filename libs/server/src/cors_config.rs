//! `PECR_CORS_ALLOWED_ORIGINS`, read the same way by every service with a
//! REST edge.

use pecr_config::{ConfigReader, StartupError};
use pecr_edge::CorsOrigins;

/// Browser origins granted CORS on the REST edge: a comma-separated list,
/// `*`, or empty (the default: no CORS headers at all).
pub const CORS_ALLOWED_ORIGINS: &str = "PECR_CORS_ALLOWED_ORIGINS";

/// Reads [`CORS_ALLOWED_ORIGINS`]; a bad value is reported with the others.
pub fn read_cors_origins(reader: &mut ConfigReader<'_>) -> CorsOrigins {
    let raw = reader.string(CORS_ALLOWED_ORIGINS, "");
    CorsOrigins::parse(&raw).unwrap_or_else(|reason| {
        reader.push_error(StartupError::invalid(format!(
            "{CORS_ALLOWED_ORIGINS}: {reason}"
        )));
        CorsOrigins::None
    })
}
