//! The gateway's version store (the rules are the migration's functions,
//! `pecr_version_*`). Each call is one statement, so one transaction: the
//! server commits it at the protocol's Sync, before it reports ready, and
//! the client's query ends only at that report, so nothing is answered
//! before COMMIT. These writes touch no session, so they stay out of the
//! group-commit batches and their session locks.
//!
//! History answers most calls (a fixed `as_of_time` is observed once), so
//! each call first reads with plain SQL, which costs PostgreSQL less than
//! the functions; only a call the read cannot answer runs the function,
//! which decides again under the store's lock.

use pecr_errors::PecrResult;
use pecr_proto::v1;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{LedgerStore, column, db_error};
use crate::validate::versions::{Get, Owner, Record, Resolve};

/// Per item, the version in force (`pecr_version_select`, inlined).
const SELECT: &str = "SELECT r.ord::int4, s.version_id, s.content \
     FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS r(object_id, as_of_time, ord) \
     LEFT JOIN LATERAL pecr_version_select($1, $2, $3, r.object_id, r.as_of_time) s ON true \
     ORDER BY r.ord";

const RESOLVE: &str = "SELECT ord, version_id, content FROM pecr_version_resolve(\
     $1, $2, $3, $4, $5, $6, $7::text[], $8::text[], $9::text[], $10::bytea[], $11::int8[]) \
     ORDER BY ord";

/// The object's stored ids in byte order, and whether `$5` is one of them
/// and `$6` (when not NULL) an observed time.
const LISTED: &str = "SELECT b.version_id, b.version_id = $5, \
     $6::text IS NULL OR EXISTS (SELECT 1 FROM pecr_version_observations o \
         WHERE o.store = $1 AND o.tenant_id = $2 AND o.principal_id = $3 \
           AND o.object_id = $4 AND o.as_of_time = $6::text) \
     FROM pecr_version_blobs b \
     WHERE b.store = $1 AND b.tenant_id = $2 AND b.principal_id = $3 AND b.object_id = $4 \
     ORDER BY b.version_id";

const RECORD: &str = "SELECT version_id FROM pecr_version_record(\
     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Every stored id of the object in byte order, with the bytes of the
/// requested ones.
const GET: &str = "SELECT version_id, CASE WHEN version_id = ANY($5::text[]) THEN content END \
     FROM pecr_version_blobs \
     WHERE store = $1 AND tenant_id = $2 AND principal_id = $3 AND object_id = $4 \
     ORDER BY version_id";

fn owner_params(owner: &Owner) -> [&(dyn ToSql + Sync); 6] {
    [
        &owner.store,
        &owner.tenant_id,
        &owner.principal_id,
        &owner.max_bytes,
        &owner.max_total_bytes,
        &owner.max_versions_per_object,
    ]
}

/// A version in force: its id and bytes.
type InForce = Option<(String, Vec<u8>)>;

/// The version in force of each row (ord, version_id, content), in order.
fn in_force(rows: &[Row]) -> PecrResult<Vec<InForce>> {
    rows.iter()
        .map(|row| {
            let version_id: Option<String> = row.try_get(1).map_err(db_error)?;
            let content: Option<Vec<u8>> = row.try_get(2).map_err(db_error)?;
            Ok(version_id.map(|id| (id, content.unwrap_or_default())))
        })
        .collect()
}

impl LedgerStore {
    /// Per item, in order: the version in force, or (when none is and the
    /// item offers the live version) nothing after storing and observing it.
    pub async fn resolve_versions(
        &self,
        resolve: Resolve,
    ) -> PecrResult<v1::ResolveVersionsResponse> {
        self.db("resolve_versions", async {
            let items = &resolve.items;
            let objects = column(items, |item| item.object_id.as_str());
            let times = column(items, |item| item.as_of_time.as_str());
            let owner = &resolve.owner;
            let client = self.client().await?;
            let select = client.prepare_cached(SELECT).await.map_err(db_error)?;
            let read = client
                .query(
                    &select,
                    &[
                        &owner.store,
                        &owner.tenant_id,
                        &owner.principal_id,
                        &objects,
                        &times,
                    ],
                )
                .await
                .map_err(db_error)?;
            let mut found = in_force(&read)?;
            // An item offering its live version with nothing in force must
            // be recorded: the function decides again, under the lock.
            let must_record = items
                .iter()
                .zip(&found)
                .any(|(item, found)| item.current.is_some() && found.is_none());
            if must_record {
                let versions = column(items, |item| {
                    item.current.as_ref().map(|c| c.version_id.as_str())
                });
                let contents = column(items, |item| {
                    item.current.as_ref().map(|c| c.content.as_slice())
                });
                let charges = column(items, |item| item.current.as_ref().and_then(|c| c.charge));
                let [a, b, c, d, e, f] = owner_params(owner);
                let params: [&(dyn ToSql + Sync); 11] = [
                    a, b, c, d, e, f, &objects, &times, &versions, &contents, &charges,
                ];
                let statement = client.prepare_cached(RESOLVE).await.map_err(db_error)?;
                let rows = client.query(&statement, &params).await.map_err(db_error)?;
                found = in_force(&rows)?;
            }
            if found.len() != items.len() {
                tracing::warn!("the version store answered a wrong item count");
                return Err(pecr_errors::PecrError::ledger_unavailable());
            }
            let versions = found
                .into_iter()
                .zip(items)
                .map(|(found, item)| {
                    let Some((version_id, content)) = found else {
                        return v1::ResolvedVersion::default();
                    };
                    let current = item
                        .current
                        .as_ref()
                        .is_some_and(|offered| offered.version_id == version_id);
                    v1::ResolvedVersion {
                        content: if current { Vec::new() } else { content },
                        version_id,
                        current,
                    }
                })
                .collect();
            Ok(v1::ResolveVersionsResponse { versions })
        })
        .await
    }

    /// Stores the version, observes it when a time is given, and lists the
    /// object's version ids.
    pub async fn record_version(&self, record: Record) -> PecrResult<v1::RecordVersionResponse> {
        self.db("record_version", async {
            let owner = &record.owner;
            let client = self.client().await?;
            let listed = client.prepare_cached(LISTED).await.map_err(db_error)?;
            let rows = client
                .query(
                    &listed,
                    &[
                        &owner.store,
                        &owner.tenant_id,
                        &owner.principal_id,
                        &record.object_id,
                        &record.version.version_id,
                        &record.as_of_time,
                    ],
                )
                .await
                .map_err(db_error)?;
            let mut version_ids = Vec::with_capacity(rows.len());
            let mut nothing_to_write = false;
            for row in &rows {
                version_ids.push(row.try_get::<_, String>(0).map_err(db_error)?);
                let offered: bool = row.try_get(1).map_err(db_error)?;
                let observed: bool = row.try_get(2).map_err(db_error)?;
                nothing_to_write |= offered && observed;
            }
            if nothing_to_write {
                return Ok(v1::RecordVersionResponse { version_ids });
            }
            let [a, b, c, d, e, f] = owner_params(owner);
            let params: [&(dyn ToSql + Sync); 11] = [
                a,
                b,
                c,
                d,
                e,
                f,
                &record.object_id,
                &record.as_of_time,
                &record.version.version_id,
                &record.version.content,
                &record.version.charge,
            ];
            let statement = client.prepare_cached(RECORD).await.map_err(db_error)?;
            let rows = client.query(&statement, &params).await.map_err(db_error)?;
            let version_ids = rows
                .iter()
                .map(|row| row.try_get(0).map_err(db_error))
                .collect::<PecrResult<Vec<String>>>()?;
            Ok(v1::RecordVersionResponse { version_ids })
        })
        .await
    }

    /// The bytes of the requested versions and every stored id of the object.
    pub async fn get_versions(&self, get: Get) -> PecrResult<v1::GetVersionsResponse> {
        self.db("get_versions", async {
            let client = self.client().await?;
            let statement = client.prepare_cached(GET).await.map_err(db_error)?;
            let rows = client
                .query(
                    &statement,
                    &[
                        &get.owner.store,
                        &get.owner.tenant_id,
                        &get.owner.principal_id,
                        &get.object_id,
                        &get.version_ids,
                    ],
                )
                .await
                .map_err(db_error)?;
            let mut stored = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get(0).map_err(db_error)?;
                let content: Option<Vec<u8>> = row.try_get(1).map_err(db_error)?;
                stored.push((id, content));
            }
            let versions = get
                .version_ids
                .iter()
                .map(|wanted| {
                    match stored
                        .iter()
                        .find(|(id, _)| id == wanted)
                        .and_then(|(_, content)| content.clone())
                    {
                        Some(content) => v1::StoredVersionContent {
                            found: true,
                            content,
                        },
                        None => v1::StoredVersionContent::default(),
                    }
                })
                .collect();
            Ok(v1::GetVersionsResponse {
                versions,
                version_ids: stored.into_iter().map(|(id, _)| id).collect(),
            })
        })
        .await
    }
}
