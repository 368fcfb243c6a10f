//! Writing a release's `SHA256SUMS` and signed provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pecr_signing::SigningKey;

use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::files::{is_object_id, sha256_file, tarballs};
use crate::statement::{
    BUILD_TYPE, BuildDefinition, Builder, Digests, ExternalParameters, Metadata, Provenance,
    ResourceDescriptor, RunDetails, SLSA_PROVENANCE_V1, STATEMENT_TYPE, Source, Statement, Subject,
};
use crate::sums::{self, Entry};
use crate::{PROVENANCE_FILE, SUMS_FILE};

/// What the release script knows about its build.
#[derive(Debug, Clone, Default)]
pub struct BuildFacts {
    pub source_uri: String,
    pub commit: String,
    pub dirty: bool,
    pub version: String,
    pub arguments: Vec<String>,
    pub internal: BTreeMap<String, String>,
    /// Files the build used (Cargo.lock, the compiler), by name; recorded
    /// with their SHA-256.
    pub materials: Vec<(String, PathBuf)>,
    pub builder_id: String,
    pub invocation_id: String,
    pub started_on: String,
    pub finished_on: String,
}

/// Digests the tarballs in `dir`, writes `SHA256SUMS` and the signed
/// statement beside them, and returns the entries written.
pub fn attest(dir: &Path, key: &SigningKey, facts: &BuildFacts) -> Result<Vec<Entry>, String> {
    if !is_object_id(&facts.commit) {
        return Err(format!(
            "the commit must be a full lowercase hex object id, not {:?}",
            facts.commit
        ));
    }
    for name in [SUMS_FILE, PROVENANCE_FILE] {
        if dir.join(name).exists() {
            return Err(format!(
                "{} already holds {name}: attest a directory of fresh tarballs",
                dir.display()
            ));
        }
    }
    let names = tarballs(dir)?;
    if names.is_empty() {
        return Err(format!("no *.tar.gz in {}", dir.display()));
    }
    let entries = names
        .into_iter()
        .map(|name| {
            let sha256 = sha256_file(&dir.join(&name))?;
            Ok(Entry { name, sha256 })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let statement = statement(&entries, facts)?;
    let payload = serde_json::to_vec(&statement)
        .map_err(|err| format!("cannot encode the statement: {err}"))?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key);
    let line = serde_json::to_string(&envelope)
        .map_err(|err| format!("cannot encode the envelope: {err}"))?;
    write(&dir.join(SUMS_FILE), &sums::render(&entries))?;
    write(&dir.join(PROVENANCE_FILE), &format!("{line}\n"))?;
    Ok(entries)
}

fn statement(entries: &[Entry], facts: &BuildFacts) -> Result<Statement, String> {
    let source = Source {
        uri: facts.source_uri.clone(),
        digest: digests("gitCommit", &facts.commit),
        dirty: facts.dirty,
    };
    let mut resolved = vec![ResourceDescriptor {
        uri: Some(facts.source_uri.clone()),
        name: None,
        digest: source.digest.clone(),
    }];
    for (name, path) in &facts.materials {
        resolved.push(ResourceDescriptor {
            uri: None,
            name: Some(name.clone()),
            digest: digests("sha256", &sha256_file(path)?),
        });
    }
    Ok(Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: entries
            .iter()
            .map(|entry| Subject {
                name: entry.name.clone(),
                digest: digests("sha256", &entry.sha256),
            })
            .collect(),
        predicate_type: SLSA_PROVENANCE_V1.to_owned(),
        predicate: Provenance {
            build_definition: BuildDefinition {
                build_type: BUILD_TYPE.to_owned(),
                external_parameters: ExternalParameters {
                    source,
                    version: facts.version.clone(),
                    arguments: facts.arguments.clone(),
                },
                internal_parameters: facts.internal.clone(),
                resolved_dependencies: resolved,
            },
            run_details: RunDetails {
                builder: Builder {
                    id: facts.builder_id.clone(),
                },
                metadata: Metadata {
                    invocation_id: facts.invocation_id.clone(),
                    started_on: facts.started_on.clone(),
                    finished_on: facts.finished_on.clone(),
                },
            },
        },
    })
}

fn digests(algorithm: &str, hex: &str) -> Digests {
    Digests::from([(algorithm.to_owned(), hex.to_owned())])
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|err| format!("cannot write {}: {err}", path.display()))
}
