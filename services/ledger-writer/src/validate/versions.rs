//! Inputs of the version-store RPCs (ResolveVersions, RecordVersion,
//! GetVersions), checked before any SQL runs.

use pecr_contracts::time::validate_as_of_time;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;

use super::identifier;

/// Most items one ResolveVersions call may carry (a `fetch_rows` answers at
/// most 100,000 rows, the row cap's ceiling).
pub const MAX_ITEMS: usize = 100_000;
/// Most version ids one GetVersions call may name.
pub const MAX_VERSION_IDS: usize = 1_024;
/// Longest object id (a corpus path or a safe-view row id).
const MAX_OBJECT_ID_LEN: usize = 4_096;
/// Longest store name.
const MAX_STORE_LEN: usize = 64;

fn invalid(message: impl Into<String>) -> PecrError {
    PecrError::invalid_params(message)
}

/// Whose versions, in which store, under which caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub store: String,
    pub tenant_id: String,
    pub principal_id: String,
    pub max_bytes: i64,
    pub max_total_bytes: i64,
    pub max_versions_per_object: i64,
}

/// A version offered to the store; `charge` is what it counts for (its
/// length, at least one; None when its bytes were too large to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub version_id: String,
    pub content: Vec<u8>,
    pub charge: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveItem {
    pub object_id: String,
    pub as_of_time: String,
    pub current: Option<Offered>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    pub owner: Owner,
    pub items: Vec<ResolveItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: Owner,
    pub object_id: String,
    pub as_of_time: Option<String>,
    pub version: Offered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    pub owner: Owner,
    pub object_id: String,
    pub version_ids: Vec<String>,
}

fn cap(field: &str, value: u64) -> PecrResult<i64> {
    i64::try_from(value).map_err(|_| invalid(format!("owner.{field} is too large")))
}

fn owner(owner: Option<v1::VersionOwner>) -> PecrResult<Owner> {
    let owner = owner.ok_or_else(|| invalid("owner is required"))?;
    let store_ok = !owner.store.is_empty()
        && owner.store.len() <= MAX_STORE_LEN
        && owner
            .store
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !store_ok {
        return Err(invalid(format!(
            "owner.store must be 1 to {MAX_STORE_LEN} lowercase letters, digits or '_'"
        )));
    }
    Ok(Owner {
        tenant_id: identifier("owner.tenant_id", &owner.tenant_id)?,
        principal_id: identifier("owner.principal_id", &owner.principal_id)?,
        max_bytes: cap("max_bytes", owner.max_bytes)?,
        max_total_bytes: cap("max_total_bytes", owner.max_total_bytes)?,
        max_versions_per_object: i64::from(owner.max_versions_per_object),
        store: owner.store,
    })
}

fn object_id(field: &str, value: String) -> PecrResult<String> {
    if value.is_empty() || value.len() > MAX_OBJECT_ID_LEN || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must be a non-empty id of at most {MAX_OBJECT_ID_LEN} bytes without control characters"
        )));
    }
    Ok(value)
}

fn as_of_time(field: &str, value: String) -> PecrResult<String> {
    validate_as_of_time(&value).map_err(|err| invalid(format!("{field}: {err}")))?;
    Ok(value)
}

fn offered(field: &str, version: v1::NewVersion) -> PecrResult<Offered> {
    let version_id = identifier(&format!("{field}.version_id"), &version.version_id)?;
    let charge = if version.too_large {
        if !version.content.is_empty() {
            return Err(invalid(format!(
                "{field}.content must be empty when too_large is set"
            )));
        }
        None
    } else {
        Some(
            i64::try_from(version.content.len())
                .map_err(|_| invalid(format!("{field}.content is too large")))?
                .max(1),
        )
    };
    Ok(Offered {
        version_id,
        content: version.content,
        charge,
    })
}

pub fn resolve(request: v1::ResolveVersionsRequest) -> PecrResult<Resolve> {
    let owner = owner(request.owner)?;
    if request.items.len() > MAX_ITEMS {
        return Err(invalid(format!(
            "items must hold at most {MAX_ITEMS} entries"
        )));
    }
    let items = request
        .items
        .into_iter()
        .map(|item| {
            Ok(ResolveItem {
                object_id: object_id("items.object_id", item.object_id)?,
                as_of_time: as_of_time("items.as_of_time", item.as_of_time)?,
                current: item
                    .current
                    .map(|current| offered("items.current", current))
                    .transpose()?,
            })
        })
        .collect::<PecrResult<Vec<_>>>()?;
    Ok(Resolve { owner, items })
}

pub fn record(request: v1::RecordVersionRequest) -> PecrResult<Record> {
    let owner = owner(request.owner)?;
    let version = request
        .version
        .ok_or_else(|| invalid("version is required"))?;
    Ok(Record {
        object_id: object_id("object_id", request.object_id)?,
        as_of_time: request
            .as_of_time
            .map(|at| as_of_time("as_of_time", at))
            .transpose()?,
        version: offered("version", version)?,
        owner,
    })
}

pub fn get(request: v1::GetVersionsRequest) -> PecrResult<Get> {
    let owner = owner(request.owner)?;
    if request.version_ids.len() > MAX_VERSION_IDS {
        return Err(invalid(format!(
            "version_ids must hold at most {MAX_VERSION_IDS} ids"
        )));
    }
    let version_ids = request
        .version_ids
        .iter()
        .map(|id| identifier("version_ids", id))
        .collect::<PecrResult<Vec<_>>>()?;
    Ok(Get {
        owner,
        object_id: object_id("object_id", request.object_id)?,
        version_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner_of(store: &str) -> v1::VersionOwner {
        v1::VersionOwner {
            store: store.into(),
            tenant_id: "local".into(),
            principal_id: "dev".into(),
            max_bytes: 10,
            max_total_bytes: 100,
            max_versions_per_object: 4,
        }
    }

    fn item(object_id: &str, at: &str, current: Option<v1::NewVersion>) -> v1::ResolveVersionsItem {
        v1::ResolveVersionsItem {
            object_id: object_id.into(),
            as_of_time: at.into(),
            current,
        }
    }

    fn message<T: std::fmt::Debug>(result: PecrResult<T>) -> String {
        result.err().map(|err| err.message).unwrap_or_default()
    }

    const T1: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn resolve_rules() {
        let ok = resolve(v1::ResolveVersionsRequest {
            owner: Some(owner_of("files")),
            items: vec![
                item("a.txt", T1, None),
                item(
                    "b.txt",
                    T1,
                    Some(v1::NewVersion {
                        version_id: "v".into(),
                        content: Vec::new(),
                        too_large: false,
                    }),
                ),
                item(
                    "c.txt",
                    T1,
                    Some(v1::NewVersion {
                        version_id: "w".into(),
                        content: Vec::new(),
                        too_large: true,
                    }),
                ),
            ],
        })
        .expect("valid");
        let charges: Vec<Option<Option<i64>>> = ok
            .items
            .iter()
            .map(|item| item.current.as_ref().map(|c| c.charge))
            .collect();
        assert_eq!(
            charges,
            [None, Some(Some(1)), Some(None)],
            "empty counts one byte"
        );

        let cases: [(&str, v1::ResolveVersionsRequest, &str); 6] = [
            (
                "no owner",
                v1::ResolveVersionsRequest {
                    owner: None,
                    items: vec![],
                },
                "owner is required",
            ),
            (
                "store name",
                v1::ResolveVersionsRequest {
                    owner: Some(owner_of("Files")),
                    items: vec![],
                },
                "owner.store must be 1 to 64 lowercase letters, digits or '_'",
            ),
            (
                "tenant",
                v1::ResolveVersionsRequest {
                    owner: Some(v1::VersionOwner {
                        tenant_id: " ".into(),
                        ..owner_of("files")
                    }),
                    items: vec![],
                },
                "owner.tenant_id must be a non-empty identifier of at most 256 characters without spaces at either end",
            ),
            (
                "object id",
                v1::ResolveVersionsRequest {
                    owner: Some(owner_of("files")),
                    items: vec![item("", T1, None)],
                },
                "items.object_id must be a non-empty id of at most 4096 bytes without control characters",
            ),
            (
                "time",
                v1::ResolveVersionsRequest {
                    owner: Some(owner_of("files")),
                    items: vec![item("a", "yesterday", None)],
                },
                "items.as_of_time: as_of_time must be RFC3339 UTC (YYYY-MM-DDTHH:MM:SSZ)",
            ),
            (
                "too large with content",
                v1::ResolveVersionsRequest {
                    owner: Some(owner_of("files")),
                    items: vec![item(
                        "a",
                        T1,
                        Some(v1::NewVersion {
                            version_id: "v".into(),
                            content: b"x".to_vec(),
                            too_large: true,
                        }),
                    )],
                },
                "items.current.content must be empty when too_large is set",
            ),
        ];
        for (name, request, expected) in cases {
            assert_eq!(message(resolve(request)), expected, "{name}");
        }
    }

    #[test]
    fn record_and_get_rules() {
        assert_eq!(
            message(record(v1::RecordVersionRequest {
                owner: Some(owner_of("rows")),
                object_id: "o".into(),
                as_of_time: None,
                version: None,
            })),
            "version is required"
        );
        assert_eq!(
            message(get(v1::GetVersionsRequest {
                owner: Some(owner_of("rows")),
                object_id: "o".into(),
                version_ids: vec![String::new()],
            })),
            "version_ids must be a non-empty identifier of at most 256 characters without spaces at either end"
        );
        assert!(
            get(v1::GetVersionsRequest {
                owner: Some(owner_of("rows")),
                object_id: "o".into(),
                version_ids: vec!["v1".into()],
            })
            .is_ok()
        );
    }
}
