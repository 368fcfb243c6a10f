-- Least privilege: ledger-writer's runtime connection logs in as a member of
-- pecr_ledger_rw, the gateway's safe-view connection as a member of
-- pecr_safeview_read (granted by the safe-view fixture, not here). Both are
-- NOLOGIN group roles; operators create the login roles. Roles are global to
-- the cluster while grants are per schema, so this runs in whichever schema
-- the migrating connection uses.

DO $$
DECLARE
    group_role text;
BEGIN
    FOREACH group_role IN ARRAY ARRAY['pecr_ledger_rw', 'pecr_safeview_read'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = group_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', group_role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Another migrator created it meanwhile: same outcome.
                NULL;
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = group_role AND rolsuper) THEN
            RAISE EXCEPTION 'group role % must not be a superuser', group_role
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    IF current_schema() IS NULL THEN
        RAISE EXCEPTION 'no current schema to grant on';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO pecr_ledger_rw', current_schema());
END
$$;

-- Readiness reads the applied migration version.
GRANT SELECT ON refinery_schema_history TO pecr_ledger_rw;

-- Append-only ledger tables: insert the columns ledger-writer writes (the
-- database sets created_at and event_time) and read.
GRANT SELECT ON pecr_policy_snapshots, pecr_ledger_events, pecr_evidence_units, pecr_claim_maps
    TO pecr_ledger_rw;
GRANT INSERT (policy_snapshot_id, policy_snapshot_hash, principal_id, as_of_time,
              policy_bundle_hash, input_json)
    ON pecr_policy_snapshots TO pecr_ledger_rw;
GRANT INSERT (event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id,
              payload_json, payload_hash)
    ON pecr_ledger_events TO pecr_ledger_rw;
GRANT INSERT (evidence_unit_id, trace_id, session_id, source_system, object_id, version_id,
              span_or_row_spec_json, content_type, content_hash, as_of_time, retrieved_at,
              policy_snapshot_id, policy_snapshot_hash, transform_chain_json, payload_json)
    ON pecr_evidence_units TO pecr_ledger_rw;
GRANT INSERT (claim_map_id, trace_id, session_id, terminal_mode, coverage_threshold,
              coverage_observed, claim_map_json)
    ON pecr_claim_maps TO pecr_ledger_rw;

-- Sessions: a new session starts open with zero counters (the columns
-- outside the INSERT lists take their defaults); afterwards only the
-- columns of the state machine may be updated, within the guards' rules.
-- The column UPDATE privilege is also what SELECT ... FOR UPDATE needs.
GRANT SELECT ON pecr_sessions, pecr_session_runtime TO pecr_ledger_rw;
GRANT INSERT (session_id, trace_id, principal_id, policy_snapshot_id, budget_json)
    ON pecr_sessions TO pecr_ledger_rw;
GRANT UPDATE (finalized_at, terminal_mode) ON pecr_sessions TO pecr_ledger_rw;
GRANT INSERT (session_id, tenant_id, session_token_hash, session_token_expires_at_epoch_ms)
    ON pecr_session_runtime TO pecr_ledger_rw;
GRANT UPDATE (operator_calls_used, bytes_used, evidence_unit_ids_json, finalized, updated_at)
    ON pecr_session_runtime TO pecr_ledger_rw;

-- Replays and evaluations: insert, read, and delete for retention.
GRANT SELECT, DELETE ON pecr_replay_bundles, pecr_evaluations TO pecr_ledger_rw;
GRANT INSERT (run_id, tenant_id, principal_id_hash, engine_mode, recorded_at_unix_ms,
              terminal_mode, quality_score, bundle_hash, bundle_json)
    ON pecr_replay_bundles TO pecr_ledger_rw;
GRANT INSERT (evaluation_id, tenant_id, principal_id_hash, created_at_unix_ms, evaluation_json)
    ON pecr_evaluations TO pecr_ledger_rw;

-- Refused session accesses are appended by ledger-writer where the table
-- exists at this version; append-only like the ledger.
DO $$
BEGIN
    IF to_regclass('pecr_session_access_refusals') IS NOT NULL THEN
        GRANT SELECT ON pecr_session_access_refusals TO pecr_ledger_rw;
        GRANT INSERT (refusal_id, session_id, principal_id, tenant_id, reason, action, request_id)
            ON pecr_session_access_refusals TO pecr_ledger_rw;
    END IF;
END
$$;
