//! The gateway's version store (the rules are the migration's functions,
//! `pecr_version_*`). Each call is one statement, so one transaction: the
//! server commits it at the protocol's Sync, before it reports ready, and
//! the client's query ends only at that report, so nothing is answered
//! before COMMIT. These writes touch no session, so they stay out of the
//! group-commit batches and their session locks; a call answered from
//! history writes nothing.

use pecr_errors::PecrResult;
use pecr_proto::v1;

use super::{LedgerStore, column, db_error};
use crate::validate::versions::{Get, Owner, Record, Resolve};

const RESOLVE: &str = "SELECT ord, version_id, content FROM pecr_version_resolve(\
     $1, $2, $3, $4, $5, $6, $7::text[], $8::text[], $9::text[], $10::bytea[], $11::int8[]) \
     ORDER BY ord";

const RECORD: &str = "SELECT version_id FROM pecr_version_record(\
     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Every stored id of the object in byte order, with the bytes of the
/// requested ones.
const GET: &str = "SELECT version_id, CASE WHEN version_id = ANY($5::text[]) THEN content END \
     FROM pecr_version_blobs \
     WHERE store = $1 AND tenant_id = $2 AND principal_id = $3 AND object_id = $4 \
     ORDER BY version_id";

fn owner_params(owner: &Owner) -> [&(dyn tokio_postgres::types::ToSql + Sync); 6] {
    [
        &owner.store,
        &owner.tenant_id,
        &owner.principal_id,
        &owner.max_bytes,
        &owner.max_total_bytes,
        &owner.max_versions_per_object,
    ]
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
            let versions = column(items, |item| {
                item.current.as_ref().map(|c| c.version_id.as_str())
            });
            let contents = column(items, |item| {
                item.current.as_ref().map(|c| c.content.as_slice())
            });
            let charges = column(items, |item| item.current.as_ref().and_then(|c| c.charge));
            let [a, b, c, d, e, f] = owner_params(&resolve.owner);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
                a, b, c, d, e, f, &objects, &times, &versions, &contents, &charges,
            ];
            let client = self.client().await?;
            let statement = client.prepare_cached(RESOLVE).await.map_err(db_error)?;
            let rows = client.query(&statement, &params).await.map_err(db_error)?;
            let mut answers = Vec::with_capacity(items.len());
            for (row, item) in rows.iter().zip(items) {
                let version_id: Option<String> = row.try_get(1).map_err(db_error)?;
                let Some(version_id) = version_id else {
                    answers.push(v1::ResolvedVersion::default());
                    continue;
                };
                let current = item
                    .current
                    .as_ref()
                    .is_some_and(|offered| offered.version_id == version_id);
                let content = if current {
                    Vec::new()
                } else {
                    row.try_get::<_, Option<Vec<u8>>>(2)
                        .map_err(db_error)?
                        .unwrap_or_default()
                };
                answers.push(v1::ResolvedVersion {
                    version_id,
                    content,
                    current,
                });
            }
            Ok(v1::ResolveVersionsResponse { versions: answers })
        })
        .await
    }

    /// Stores the version, observes it when a time is given, and lists the
    /// object's version ids.
    pub async fn record_version(&self, record: Record) -> PecrResult<v1::RecordVersionResponse> {
        self.db("record_version", async {
            let [a, b, c, d, e, f] = owner_params(&record.owner);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
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
            let client = self.client().await?;
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
