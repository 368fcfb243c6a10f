//! Each drill's figures, written to `target/security/drills/<drill>.json`
//! before its assertions run, so the gate can show them for a failed drill too.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::load::Call;

pub struct Figures {
    drill: &'static str,
    fields: Map<String, Value>,
}

/// Milliseconds with one decimal.
pub fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

impl Figures {
    pub fn new(drill: &'static str) -> Self {
        Self {
            drill,
            fields: Map::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    /// `{attempted, succeeded, failed: {"503 ERR_…": n}}` of `calls` under `key`.
    pub fn tally<'a, T: 'a>(&mut self, key: &str, calls: impl IntoIterator<Item = &'a Call<T>>) {
        let (mut attempted, mut succeeded) = (0, 0);
        let mut failed: BTreeMap<String, u64> = BTreeMap::new();
        for call in calls {
            attempted += 1;
            match &call.outcome {
                Ok(_) => succeeded += 1,
                Err(failure) => *failed.entry(failure.label()).or_default() += 1,
            }
        }
        self.set(
            key,
            json!({"attempted": attempted, "succeeded": succeeded, "failed": failed}),
        );
    }

    /// Writes the file; a drill's figures are informative, so a write
    /// failure is reported and does not fail the drill.
    pub fn write(&self) {
        let dir = pecr_testkit::workspace_root().join("target/security/drills");
        let path = dir.join(format!("{}.json", self.drill));
        let mut fields = self.fields.clone();
        fields.insert("drill".into(), json!(self.drill));
        let text = serde_json::to_string_pretty(&Value::Object(fields)).unwrap_or_default();
        let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &text));
        match written {
            Ok(()) => eprintln!("drill figures in {}:\n{text}", path.display()),
            Err(err) => eprintln!("cannot write {}: {err}\n{text}", path.display()),
        }
    }
}
