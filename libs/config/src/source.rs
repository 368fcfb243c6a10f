//! Where configuration values come from.

use std::collections::HashMap;

use crate::StartupError;

/// A read-only view of configuration keys. Tests pass a map instead of
/// touching the process environment.
pub trait EnvSource {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed set of keys.
#[derive(Debug, Clone, Default)]
pub struct MapSource(pub HashMap<String, String>);

impl MapSource {
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapSource {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// The environment over the optional `PECR_CONFIG_PATH` file.
#[derive(Debug, Clone)]
pub struct LayeredSource<E> {
    env: E,
    file: MapSource,
}

impl<E: EnvSource> LayeredSource<E> {
    /// Reads `PECR_CONFIG_PATH` (if set) through `env`.
    pub fn load(env: E) -> Result<Self, StartupError> {
        let file = match env.get("PECR_CONFIG_PATH").filter(|p| !p.trim().is_empty()) {
            None => MapSource::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path.trim()).map_err(|err| {
                    StartupError::new(
                        "ERR_CONFIG_FILE_READ",
                        format!("cannot read PECR_CONFIG_PATH {path}: {err}"),
                    )
                })?;
                parse_config_file(&text)?
            }
        };
        Ok(Self { env, file })
    }
}

impl<E: EnvSource> EnvSource for LayeredSource<E> {
    fn get(&self, key: &str) -> Option<String> {
        self.env.get(key).or_else(|| self.file.get(key))
    }
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped.
fn parse_config_file(text: &str) -> Result<MapSource, StartupError> {
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line
            .split_once('=')
            .filter(|(key, _)| !key.trim().is_empty())
        else {
            return Err(StartupError::new(
                "ERR_CONFIG_FILE_PARSE",
                format!("PECR_CONFIG_PATH line {} is not KEY=VALUE", number + 1),
            ));
        };
        values.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    Ok(MapSource(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_the_file() {
        let dir = std::env::temp_dir().join(format!("pecr-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("pecr.env");
        std::fs::write(&path, "# comment\nA=file\nB = file-b\n").ok();
        let env = MapSource::from_pairs([
            ("PECR_CONFIG_PATH", path.to_string_lossy().to_string()),
            ("A", "env".to_owned()),
        ]);
        let layered = LayeredSource::load(env).expect("file loads");
        assert_eq!(layered.get("A").as_deref(), Some("env"));
        assert_eq!(layered.get("B").as_deref(), Some("file-b"));
        assert_eq!(layered.get("C"), None);
    }

    #[test]
    fn bad_files_are_startup_errors() {
        assert_eq!(
            parse_config_file("=x").err().map(|e| e.code),
            Some("ERR_CONFIG_FILE_PARSE")
        );
        assert_eq!(
            parse_config_file("nokey").err().map(|e| e.code),
            Some("ERR_CONFIG_FILE_PARSE")
        );
        let env = MapSource::from_pairs([("PECR_CONFIG_PATH", "/nonexistent/pecr.env")]);
        assert_eq!(
            LayeredSource::load(env).err().map(|e| e.code),
            Some("ERR_CONFIG_FILE_READ")
        );
    }
}
