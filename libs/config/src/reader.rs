//! Typed reads that remember every failure.

use std::net::SocketAddr;
use std::str::FromStr;

use crate::{EnvSource, Secret, StartupError, StartupErrors};

/// The shortest service token accepted: 32 random characters are well over
/// 128 bits of guessing work.
pub const MIN_SERVICE_TOKEN_LEN: usize = 32;

/// Reads typed values from a source; bad values are collected, not thrown,
/// and `finish` reports all of them.
pub struct ConfigReader<'a> {
    source: &'a dyn EnvSource,
    errors: Vec<StartupError>,
}

impl<'a> ConfigReader<'a> {
    pub fn new(source: &'a dyn EnvSource) -> Self {
        Self {
            source,
            errors: Vec::new(),
        }
    }

    /// The trimmed value, None when unset or blank.
    pub fn raw(&self, key: &str) -> Option<String> {
        self.source
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&mut self, key: &str, default: &str) -> String {
        self.raw(key).unwrap_or_else(|| default.to_owned())
    }

    /// A required value; missing or blank is `ERR_MISSING_CONFIG`.
    pub fn required(&mut self, key: &str) -> String {
        self.raw(key).unwrap_or_else(|| {
            self.errors.push(StartupError::new(
                "ERR_MISSING_CONFIG",
                format!("{key} is required"),
            ));
            String::new()
        })
    }

    pub fn socket_addr(&mut self, key: &str, default: &str) -> SocketAddr {
        let fallback = SocketAddr::from(([127, 0, 0, 1], 0));
        let text = self.string(key, default);
        text.parse().unwrap_or_else(|_| {
            self.errors.push(StartupError::invalid(format!(
                "{key} must be a socket address such as 127.0.0.1:8080 (got {text:?})"
            )));
            fallback
        })
    }

    /// A number within `min..=max`.
    pub fn number<T>(&mut self, key: &str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let Some(text) = self.raw(key) else {
            return default;
        };
        match text.parse::<T>() {
            Ok(value) if value >= min && value <= max => value,
            _ => {
                self.errors.push(StartupError::invalid(format!(
                    "{key} must be a number in {min}..={max} (got {text:?})"
                )));
                default
            }
        }
    }

    /// A boolean; values other than the contract's spellings are an error here
    /// because a typo in a config file should not silently change behaviour.
    pub fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(text) = self.raw(key) else {
            return default;
        };
        crate::parse_bool(&text).unwrap_or_else(|| {
            self.errors.push(StartupError::invalid(format!(
                "{key} must be one of 1,true,yes,0,false,no (got {text:?})"
            )));
            default
        })
    }

    /// A service token: at least [`MIN_SERVICE_TOKEN_LEN`] visible ASCII
    /// characters without spaces (it travels as `authorization: Bearer …`).
    /// The value never appears in an error.
    pub fn service_token(&mut self, key: &str) -> Option<Secret> {
        let token = self.raw(key)?;
        if token.len() < MIN_SERVICE_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            self.errors.push(StartupError::invalid(format!(
                "{key} must be at least {MIN_SERVICE_TOKEN_LEN} visible ASCII characters without spaces"
            )));
            return None;
        }
        Some(Secret::new(token))
    }

    pub fn push_error(&mut self, error: StartupError) {
        self.errors.push(error);
    }

    /// Ok when every read value was valid.
    pub fn finish(self) -> Result<(), StartupErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(StartupErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapSource;

    #[test]
    fn service_tokens_are_long_and_never_echoed() {
        let token = "t".repeat(MIN_SERVICE_TOKEN_LEN);
        let source = MapSource::from_pairs([
            ("GOOD", token.as_str()),
            ("SHORT", "abc123"),
            ("SPACED", "a token with spaces that is long enough for it"),
        ]);
        let mut reader = ConfigReader::new(&source);
        assert_eq!(
            reader
                .service_token("GOOD")
                .as_ref()
                .map(crate::Secret::expose),
            Some(token.as_str())
        );
        assert_eq!(reader.service_token("UNSET"), None);
        assert_eq!(reader.service_token("SHORT"), None);
        assert_eq!(reader.service_token("SPACED"), None);
        let errors = reader.finish().expect_err("two bad tokens").to_string();
        assert!(
            errors.contains("SHORT") && errors.contains("SPACED"),
            "{errors}"
        );
        assert!(
            !errors.contains("abc123") && !errors.contains("spaces that"),
            "{errors}"
        );
    }

    #[test]
    fn every_bad_value_is_reported() {
        let source = MapSource::from_pairs([("ADDR", "nope"), ("N", "70000"), ("B", "maybe")]);
        let mut reader = ConfigReader::new(&source);
        reader.socket_addr("ADDR", "127.0.0.1:1");
        reader.number::<u16>("N", 1, 1, 100);
        reader.boolean("B", false);
        reader.required("MISSING");
        let errors = reader.finish().err().map(|e| e.0).unwrap_or_default();
        let codes: Vec<_> = errors.iter().map(|e| e.code).collect();
        assert_eq!(
            codes,
            [
                "ERR_INVALID_CONFIG",
                "ERR_INVALID_CONFIG",
                "ERR_INVALID_CONFIG",
                "ERR_MISSING_CONFIG"
            ]
        );
    }

    #[test]
    fn defaults_apply_when_unset() {
        let source = MapSource::from_pairs([("BLANK", "  ")]);
        let mut reader = ConfigReader::new(&source);
        assert_eq!(reader.socket_addr("ADDR", "127.0.0.1:50051").port(), 50051);
        assert_eq!(reader.number::<u64>("BLANK", 7, 0, 10), 7);
        assert!(reader.boolean("B", true));
        assert!(reader.finish().is_ok());
    }
}
