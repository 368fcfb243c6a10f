//! Least privilege in PostgreSQL: what the group roles `pecr_ledger_rw`
//! (ledger-writer) and `pecr_safeview_read` (the gateway's safe views) may
//! and may not do, the session guards that hold for every role, and a real
//! ledger-writer that migrates as a non-superuser owner and serves a whole
//! session as a member of `pecr_ledger_rw`.

mod common;

use common::*;
use pecr_contracts::hashing::principal_id_hash;
use pecr_proto::v1;
use pecr_testkit::{TestDatabase, http_get};
use serde_json::json;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const LEDGER_LOGIN: &str = "pecr_test_ledger_login";
const SAFEVIEW_LOGIN: &str = "pecr_test_safeview_login";
const OWNER_LOGIN: &str = "pecr_test_owner_login";

/// The append-only tables with their key column.
const LEDGER_TABLES: [(&str, &str); 4] = [
    ("pecr_policy_snapshots", "policy_snapshot_id"),
    ("pecr_ledger_events", "event_id"),
    ("pecr_evidence_units", "evidence_unit_id"),
    ("pecr_claim_maps", "claim_map_id"),
];
const SAFE_VIEWS: [&str; 5] = [
    "safe_customer_view_public",
    "safe_customer_view_public_slow",
    "safe_customer_view_admin",
    "safe_customer_view_support",
    "safe_customer_view_injection",
];

/// A schema with the ledger migrated and the safe-view fixture loaded.
async fn migrated_schema() -> TestDatabase {
    let db = TestDatabase::create().await;
    pecr_ledger_writer::migrate(&db.url())
        .await
        .expect("migrate");
    pecr_adapters::load_fixture_sql(db.client(), pecr_adapters::SAFEVIEW_FIXTURE_SQL)
        .await
        .expect("fixture");
    db
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect {url}: {err}"));
    tokio::spawn(connection);
    client
}

/// Runs `sql` and expects it refused with SQLSTATE 42501.
async fn refused(client: &Client, sql: &str) {
    let err = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("must be refused: {sql}"));
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{sql}: {err:?}"
    );
}

async fn allowed(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|err| panic!("must be allowed: {sql}: {err:?}"));
}

/// A session `id` with its runtime row, written as the ledger role would.
fn new_session_sql(id: &str) -> String {
    format!(
        "INSERT INTO pecr_policy_snapshots (policy_snapshot_id, policy_snapshot_hash, principal_id, \
           as_of_time, policy_bundle_hash, input_json) VALUES ('ps-{id}', 'h', 'dev', now(), 'b', '{{}}'); \
         INSERT INTO pecr_sessions (session_id, trace_id, principal_id, policy_snapshot_id, budget_json) \
           VALUES ('{id}', 't-{id}', 'dev', 'ps-{id}', '{{}}'); \
         INSERT INTO pecr_session_runtime (session_id, tenant_id, session_token_hash, \
           session_token_expires_at_epoch_ms) VALUES ('{id}', 'local', 'hash-{id}', 1)"
    )
}

#[tokio::test]
async fn the_ledger_role_writes_the_ledger_and_nothing_else() {
    let db = migrated_schema().await;
    let ledger = connect(&db.login_role(LEDGER_LOGIN, "pecr_ledger_rw").await).await;

    allowed(&ledger, &new_session_sql("s1")).await;
    allowed(
        &ledger,
        "INSERT INTO pecr_ledger_events (event_id, trace_id, session_id, event_type, principal_id, \
           policy_snapshot_id, payload_json, payload_hash) \
         VALUES ('e1', 't-s1', 's1', 'OPERATOR_CALL', 'dev', 'ps-s1', '{}', 'h')",
    )
    .await;
    let events: i64 = ledger
        .query_one("SELECT count(*) FROM pecr_ledger_events", &[])
        .await
        .expect("read events")
        .get(0);
    assert_eq!(events, 1);

    for (table, key) in LEDGER_TABLES {
        refused(&ledger, &format!("UPDATE {table} SET {key} = {key}")).await;
        refused(&ledger, &format!("DELETE FROM {table}")).await;
        refused(&ledger, &format!("TRUNCATE {table}")).await;
    }
    // The database, not the caller, stamps the time of an event.
    refused(
        &ledger,
        "INSERT INTO pecr_ledger_events (event_id, trace_id, session_id, event_type, principal_id, \
           policy_snapshot_id, payload_json, payload_hash, event_time) \
         VALUES ('e2', 't-s1', 's1', 'OPERATOR_CALL', 'dev', 'ps-s1', '{}', 'h', '2000-01-01')",
    )
    .await;
    refused(&ledger, "CREATE TABLE pecr_intruder (x int)").await;
    refused(&ledger, "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (1, 'x', 'x', 'x')").await;

    // Sessions: never removed, the state machine only moves forward.
    for table in ["pecr_sessions", "pecr_session_runtime"] {
        refused(&ledger, &format!("DELETE FROM {table}")).await;
        refused(&ledger, &format!("TRUNCATE {table}")).await;
    }
    refused(&ledger, "UPDATE pecr_sessions SET trace_id = 'other'").await;
    refused(
        &ledger,
        "UPDATE pecr_session_runtime SET session_token_hash = 'stolen'",
    )
    .await;
    refused(
        &ledger,
        "UPDATE pecr_session_runtime SET tenant_id = 'other'",
    )
    .await;
    refused(
        &ledger,
        "UPDATE pecr_session_runtime SET session_token_expires_at_epoch_ms = 99",
    )
    .await;
    allowed(
        &ledger,
        r#"UPDATE pecr_session_runtime SET operator_calls_used = 2, bytes_used = 200,
             evidence_unit_ids_json = '["u1"]', updated_at = now() WHERE session_id = 's1'"#,
    )
    .await;
    refused(
        &ledger,
        "UPDATE pecr_session_runtime SET operator_calls_used = 1",
    )
    .await;
    refused(&ledger, "UPDATE pecr_session_runtime SET bytes_used = 100").await;
    refused(
        &ledger,
        "UPDATE pecr_session_runtime SET evidence_unit_ids_json = '[]'",
    )
    .await;
    // A session cannot be born finalized or with used budget.
    refused(
        &ledger,
        "INSERT INTO pecr_sessions (session_id, trace_id, principal_id, policy_snapshot_id, budget_json, \
           finalized_at, terminal_mode) VALUES ('s2', 't', 'dev', 'ps-s1', '{}', now(), 'SUPPORTED')",
    )
    .await;

    allowed(
        &ledger,
        "UPDATE pecr_sessions SET finalized_at = now(), terminal_mode = 'SUPPORTED' WHERE session_id = 's1'; \
         UPDATE pecr_session_runtime SET finalized = true WHERE session_id = 's1'",
    )
    .await;
    refused(
        &ledger,
        "UPDATE pecr_sessions SET terminal_mode = 'INSUFFICIENT_EVIDENCE'",
    )
    .await;
    refused(
        &ledger,
        "UPDATE pecr_sessions SET finalized_at = NULL, terminal_mode = NULL",
    )
    .await;
    refused(&ledger, "UPDATE pecr_session_runtime SET finalized = false").await;
    refused(
        &ledger,
        "UPDATE pecr_session_runtime SET operator_calls_used = 3",
    )
    .await;

    // Replays and evaluations: insert, read, delete for retention, never update.
    allowed(
        &ledger,
        "INSERT INTO pecr_replay_bundles (run_id, tenant_id, principal_id_hash, engine_mode, \
           recorded_at_unix_ms, terminal_mode, quality_score, bundle_hash, bundle_json) \
         VALUES ('r1', 'local', 'p', 'baseline', 0, 'SUPPORTED', 1.0, 'h', '{}')",
    )
    .await;
    refused(&ledger, "UPDATE pecr_replay_bundles SET bundle_json = '{}'").await;
    refused(&ledger, "TRUNCATE pecr_replay_bundles, pecr_evaluations").await;
    allowed(
        &ledger,
        "DELETE FROM pecr_replay_bundles; DELETE FROM pecr_evaluations",
    )
    .await;

    // The safe-view data is the gateway's, not ledger-writer's.
    refused(&ledger, "SELECT * FROM pecr_fixture_customers").await;
    refused(&ledger, "SELECT * FROM safe_customer_view_public").await;
}

/// Every table of a migrated schema is readable by `pecr_ledger_rw`, and
/// the only table-wide writes are INSERTs, the retention DELETEs and the
/// version store's evictions; the only UPDATEs are the state machine's
/// columns (a session's chain head among them) and the version store's
/// counters. A table added without its grants, or a grant wider than the
/// code needs, fails here.
#[tokio::test]
async fn the_ledger_role_holds_exactly_the_privileges_the_code_needs() {
    let db = TestDatabase::create().await;
    pecr_ledger_writer::migrate(&db.url())
        .await
        .expect("migrate");
    let rows = db
        .client()
        .query(
            "SELECT tablename::text, \
                    has_table_privilege('pecr_ledger_rw', oid, 'SELECT'), \
                    has_any_column_privilege('pecr_ledger_rw', oid, 'INSERT'), \
                    has_table_privilege('pecr_ledger_rw', oid, 'UPDATE'), \
                    has_table_privilege('pecr_ledger_rw', oid, 'DELETE'), \
                    has_table_privilege('pecr_ledger_rw', oid, 'TRUNCATE, REFERENCES, TRIGGER') \
             FROM pg_tables JOIN pg_class ON pg_class.relname = pg_tables.tablename \
               AND pg_class.relnamespace = current_schema()::regnamespace \
             WHERE schemaname = current_schema() ORDER BY 1",
            &[],
        )
        .await
        .expect("privileges");
    assert!(rows.len() >= 9, "every ledger table is listed");
    for row in rows {
        let table: String = row.get(0);
        let (select, insert, update, delete, other): (bool, bool, bool, bool, bool) =
            (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
        assert!(select, "{table}: SELECT");
        assert_eq!(
            insert,
            table != "refinery_schema_history",
            "{table}: INSERT"
        );
        assert!(!update, "{table}: no table-wide UPDATE");
        assert_eq!(
            delete,
            [
                "pecr_replay_bundles",
                "pecr_evaluations",
                "pecr_version_blobs",
                "pecr_version_observations",
                "pecr_version_owners",
            ]
            .contains(&table.as_str()),
            "{table}: DELETE only for retention and the version store's eviction"
        );
        assert!(!other, "{table}: no TRUNCATE, REFERENCES or TRIGGER");
    }
    let updatable: Vec<String> = db
        .client()
        .query(
            "SELECT table_name || '.' || column_name FROM information_schema.column_privileges \
             WHERE grantee = 'pecr_ledger_rw' AND privilege_type = 'UPDATE' \
               AND table_schema = current_schema() ORDER BY 1",
            &[],
        )
        .await
        .expect("column privileges")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        updatable,
        [
            "pecr_session_runtime.bytes_used",
            "pecr_session_runtime.chain_head",
            "pecr_session_runtime.chain_length",
            "pecr_session_runtime.evidence_unit_ids_json",
            "pecr_session_runtime.finalized",
            "pecr_session_runtime.operator_calls_used",
            "pecr_session_runtime.updated_at",
            "pecr_sessions.finalized_at",
            "pecr_sessions.terminal_mode",
            "pecr_version_owners.blobs",
            "pecr_version_owners.bytes",
            "pecr_version_owners.next_seq",
        ]
    );
    let schema_rights: (bool, bool) = {
        let row = db
            .client()
            .query_one(
                "SELECT has_schema_privilege('pecr_ledger_rw', current_schema(), 'USAGE'), \
                        has_schema_privilege('pecr_ledger_rw', current_schema(), 'CREATE')",
                &[],
            )
            .await
            .expect("schema privileges");
        (row.get(0), row.get(1))
    };
    assert_eq!(schema_rights, (true, false), "USAGE, never CREATE");
}

#[tokio::test]
async fn the_session_guards_hold_for_the_owner_too() {
    let db = migrated_schema().await;
    let owner = db.client();
    allowed(owner, &new_session_sql("s1")).await;
    for sql in [
        "DELETE FROM pecr_session_runtime",
        "DELETE FROM pecr_sessions",
        "TRUNCATE pecr_session_runtime",
        "TRUNCATE pecr_sessions CASCADE",
        "UPDATE pecr_sessions SET budget_json = '{\"max_operator_calls\": 1000}'",
        "UPDATE pecr_sessions SET finalized_at = now()",
        "UPDATE pecr_session_runtime SET session_token_hash = 'stolen'",
        "UPDATE pecr_session_runtime SET session_token_expires_at_epoch_ms = 99",
        "UPDATE pecr_session_runtime SET tenant_id = 'other'",
        "UPDATE pecr_session_runtime SET evidence_unit_ids_json = '[\"x\"]', bytes_used = 1; \
         UPDATE pecr_session_runtime SET evidence_unit_ids_json = '[\"y\"]'",
    ] {
        refused(owner, sql).await;
    }
    allowed(
        owner,
        "UPDATE pecr_session_runtime SET operator_calls_used = 5, bytes_used = 50; \
         UPDATE pecr_sessions SET finalized_at = now(), terminal_mode = 'SUPPORTED'; \
         UPDATE pecr_session_runtime SET finalized = true",
    )
    .await;
    for sql in [
        "UPDATE pecr_session_runtime SET operator_calls_used = 4",
        "UPDATE pecr_session_runtime SET finalized = false",
        "UPDATE pecr_session_runtime SET operator_calls_used = 6",
        "UPDATE pecr_sessions SET finalized_at = now()",
        "UPDATE pecr_sessions SET terminal_mode = 'INSUFFICIENT_EVIDENCE'",
    ] {
        refused(owner, sql).await;
    }
    // A session's chain head moves forward only, after finalize too (an
    // event may still be appended to a finalized session).
    allowed(
        owner,
        "UPDATE pecr_session_runtime SET chain_head = 'h2', chain_length = 2",
    )
    .await;
    for sql in [
        "UPDATE pecr_session_runtime SET chain_head = 'h1', chain_length = 1",
        "UPDATE pecr_session_runtime SET chain_head = NULL, chain_length = NULL",
    ] {
        refused(owner, sql).await;
    }
    // Rewriting a value with itself changes nothing and is allowed.
    allowed(
        owner,
        "UPDATE pecr_sessions SET trace_id = trace_id, finalized_at = finalized_at",
    )
    .await;
}

#[tokio::test]
async fn the_safeview_role_reads_the_catalogue_views_and_nothing_else() {
    let db = migrated_schema().await;
    let mut reader = connect(&db.login_role(SAFEVIEW_LOGIN, "pecr_safeview_read").await).await;

    // As the gateway queries: tenant and statement timeout set per transaction.
    let tx = reader.transaction().await.expect("begin");
    tx.execute(
        "SELECT set_config('statement_timeout', '2000ms', true), set_config('pecr.tenant_id', 'local', true)",
        &[],
    )
    .await
    .expect("set_config as the safe-view role");
    for view in SAFE_VIEWS {
        let rows: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {view}"), &[])
            .await
            .unwrap_or_else(|err| panic!("read {view}: {err:?}"))
            .get(0);
        assert_eq!(rows, 2, "{view}");
    }
    tx.commit().await.expect("commit");

    // The gateway's start-up introspection sees every catalogue view.
    let visible: i64 = reader
        .query_one(
            "SELECT count(DISTINCT table_name) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
            &[&SAFE_VIEWS.to_vec()],
        )
        .await
        .expect("introspection")
        .get(0);
    assert_eq!(visible, 5);

    refused(&reader, "SELECT * FROM pecr_fixture_customers").await;
    refused(&reader, "SELECT * FROM safe_customer_view").await;
    let other_tables = [
        "pecr_sessions",
        "pecr_session_runtime",
        "pecr_replay_bundles",
        "pecr_evaluations",
        "refinery_schema_history",
    ];
    for table in LEDGER_TABLES
        .map(|(table, _)| table)
        .iter()
        .chain(&other_tables)
    {
        refused(&reader, &format!("SELECT * FROM {table}")).await;
    }
    refused(
        &reader,
        "INSERT INTO pecr_fixture_customers VALUES ('local', 'c', 's', 'p', 'a', 's', 'i', now())",
    )
    .await;
    refused(
        &reader,
        "INSERT INTO safe_customer_view_public VALUES ('local', 'c', 's', 'p', now())",
    )
    .await;
    refused(&reader, &new_session_sql("s1")).await;
    refused(&reader, "CREATE TABLE pecr_intruder (x int)").await;
}

/// A schema owned by a non-superuser owner login with CREATEROLE, as
/// scripts/dev-up.sh provisions it; returns the owner's URL.
async fn owner_schema(db: &TestDatabase) -> String {
    db.client()
        .batch_execute(&format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_LOGIN}') THEN \
                 CREATE ROLE {OWNER_LOGIN} LOGIN CREATEROLE; \
               END IF; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
             END $$; \
             ALTER SCHEMA {} OWNER TO {OWNER_LOGIN}",
            db.schema()
        ))
        .await
        .expect("owner role and schema");
    db.url_as(OWNER_LOGIN)
}

#[tokio::test]
async fn ledger_writer_serves_a_whole_session_as_the_ledger_role() {
    let db = TestDatabase::create().await;
    let owner_url = owner_schema(&db).await;
    let runtime_url = db.login_role(LEDGER_LOGIN, "pecr_ledger_rw").await;
    let mut ledger = start_ledger_with_env(
        db,
        &[
            ("PECR_LEDGER_MIGRATE_DB_URL", owner_url),
            ("PECR_DB_URL", runtime_url),
        ],
    )
    .await;

    let ready = http_get(&ledger.process.http_url("/readyz")).await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (
            200,
            r#"{"checks":{"migrations":true,"postgres":true},"status":"ready"}"#
        )
    );
    let owner: String = ledger
        .db
        .client()
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'pecr_ledger_events'",
            &[],
        )
        .await
        .expect("owner")
        .get(0);
    assert_eq!(owner, OWNER_LOGIN, "migrations ran through the owner URL");

    let session = record_session(&mut ledger, "s-roles", "dev").await;
    let unit = text_evidence(&session, "public/a.txt", "alpha\n");
    let id = unit.evidence_unit_id.clone();
    let session = ledger
        .client
        .record_operator_call(operator_call(&session, vec![unit]))
        .await
        .expect("operator call")
        .into_inner()
        .session
        .expect("session");
    assert_eq!((session.operator_calls_used, session.bytes_used), (1, 100));
    ledger
        .client
        .append_event(v1::AppendEventRequest {
            event: Some(event(
                &session,
                "POLICY_DECISION",
                json!({"decision": "allow"}),
            )),
        })
        .await
        .expect("append event");
    let claims = vec![claim("alpha", v1::claim::Status::Supported, &[id])];
    let finalized = ledger
        .client
        .record_finalize(finalize_request(&session, "cm-roles", claims))
        .await
        .expect("finalize")
        .into_inner()
        .session
        .expect("session");
    assert!(finalized.finalized);
    let events = ledger
        .auditor
        .list_events(v1::ListEventsRequest {
            session_id: Some("s-roles".into()),
            ..Default::default()
        })
        .await
        .expect("list events")
        .into_inner()
        .events;
    assert_eq!(events.len(), 4);
    ledger
        .client
        .get_policy_snapshot(v1::GetPolicySnapshotRequest {
            policy_snapshot_id: session.policy_snapshot_id.clone(),
        })
        .await
        .expect("policy snapshot");

    let dev = principal_id_hash("dev");
    ledger
        .controller
        .store_replay_bundle(v1::StoreReplayBundleRequest {
            tenant_id: "local".into(),
            bundle: bundle("run_roles", &dev, 1_000).to_string(),
        })
        .await
        .expect("store replay");
    let listed = ledger
        .controller
        .list_replay_bundles(v1::ListReplayBundlesRequest {
            tenant_id: "local".into(),
            principal_id_hash: dev.clone(),
            engine_mode: None,
            limit: 10,
        })
        .await
        .expect("list replays")
        .into_inner()
        .bundles;
    assert_eq!(listed.len(), 1);
    ledger
        .controller
        .store_evaluation(v1::StoreEvaluationRequest {
            tenant_id: "local".into(),
            evaluation: json!({
                "evaluation_id": "01JROLES", "evaluation_name": "nightly", "principal_id_hash": dev,
                "created_at_unix_ms": 1_000, "replay_ids": [], "missing_replay_ids": [],
                "run_results": [], "scorecards": [], "overall_pass": true
            })
            .to_string(),
        })
        .await
        .expect("store evaluation");
    let pruned = ledger
        .controller
        .prune_replays(v1::PruneReplaysRequest { retention_days: 1 })
        .await
        .expect("prune")
        .into_inner();
    assert_eq!((pruned.replays_deleted, pruned.evaluations_deleted), (1, 1));
}

#[tokio::test]
async fn a_runtime_role_without_the_ledger_grants_fails_start_up() {
    let db = TestDatabase::create().await;
    let wrong_role = db.login_role(SAFEVIEW_LOGIN, "pecr_safeview_read").await;
    let mut env = vec![
        ("PECR_LEDGER_MIGRATE_DB_URL", db.url()),
        ("PECR_DB_URL", wrong_role),
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".into()),
    ];
    env.extend(pecr_testkit::credentials::ledger_writer_tokens());
    let report = pecr_testkit::ServiceProcess::run_to_exit("pecr-ledger-writer", &env).await;
    assert_eq!(report.code, Some(1), "{}", report.stderr);
    assert!(
        report.stderr.lines().any(|line| line.starts_with(
            "STARTUP_ERROR ERR_LEDGER_UNAVAILABLE: the runtime connection (PECR_DB_URL): cannot read the migration history"
        )),
        "{}",
        report.stderr
    );
    assert_eq!(
        usize::try_from(db.count("refinery_schema_history").await).ok(),
        Some(pecr_ledger_writer::migration_count()),
        "the migrations ran through PECR_LEDGER_MIGRATE_DB_URL"
    );
}

#[tokio::test]
async fn a_bad_migration_url_is_a_configuration_error() {
    let report = pecr_testkit::ServiceProcess::run_to_exit(
        "pecr-ledger-writer",
        &[
            (
                "PECR_DB_URL",
                "postgres://postgres@127.0.0.1:5432/postgres".into(),
            ),
            (
                "PECR_LEDGER_MIGRATE_DB_URL",
                "postgres://a@b:notaport/c".into(),
            ),
        ],
    )
    .await;
    assert_eq!(report.code, Some(1), "{}", report.stderr);
    assert!(
        report.stderr.contains(
            "STARTUP_ERROR ERR_INVALID_CONFIG: PECR_LEDGER_MIGRATE_DB_URL is not a PostgreSQL URL"
        ),
        "{}",
        report.stderr
    );
    assert!(
        !report.stderr.contains("postgres://a@b"),
        "the URL is not echoed"
    );
}
