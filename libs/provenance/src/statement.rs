//! The in-toto Statement v1 with an SLSA provenance v1 predicate that a
//! release signs. Field names are the specifications'; unknown fields are
//! ignored when reading, as both specifications ask of consumers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// What `scripts/release.sh` does, as SLSA's `buildType`: its external
/// parameters are [`ExternalParameters`]; docs/decisions.md describes it.
pub const BUILD_TYPE: &str = "urn:pecr:build-type:release-sh:v1";

/// A digest set: algorithm name → lowercase hex.
pub type Digests = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Provenance,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: Digests,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    /// What the script chose itself: the cargo commands, flags, target,
    /// toolchain versions, `SOURCE_DATE_EPOCH`.
    #[serde(default)]
    pub internal_parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// The parameters of [`BUILD_TYPE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    pub source: Source,
    /// The workspace version (`[workspace.package] version`).
    pub version: String,
    /// The arguments `scripts/release.sh` was given.
    #[serde(default)]
    pub arguments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub uri: String,
    /// `gitCommit`: the commit the release was cut from.
    pub digest: Digests,
    /// Whether the work tree differed from the commit (`--allow-dirty`).
    pub dirty: bool,
}

impl Source {
    pub fn commit(&self) -> Option<&str> {
        self.digest.get("gitCommit").map(String::as_str)
    }
}

/// SLSA's ResourceDescriptor, the fields a release uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub digest: Digests,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub invocation_id: String,
    pub started_on: String,
    pub finished_on: String,
}
