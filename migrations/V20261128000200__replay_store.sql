-- Replay bundles and evaluations, scoped by tenant and principal, so any
-- controller replica can serve any replay. Rows are never updated; DELETE is
-- allowed only for retention.

CREATE TABLE IF NOT EXISTS pecr_replay_bundles (
    run_id              TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    principal_id_hash   TEXT NOT NULL,
    engine_mode         TEXT NOT NULL CHECK (engine_mode IN ('baseline', 'rlm')),
    recorded_at_unix_ms BIGINT NOT NULL CHECK (recorded_at_unix_ms >= 0),
    terminal_mode       TEXT NOT NULL,
    quality_score       DOUBLE PRECISION NOT NULL,
    bundle_hash         TEXT NOT NULL,
    -- Canonical JSON text, kept byte for byte so the hash check is exact.
    bundle_json         TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS pecr_replay_bundles_owner_recorded_idx
    ON pecr_replay_bundles (tenant_id, principal_id_hash, recorded_at_unix_ms DESC);

CREATE TABLE IF NOT EXISTS pecr_evaluations (
    evaluation_id      TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    principal_id_hash  TEXT NOT NULL,
    created_at_unix_ms BIGINT NOT NULL CHECK (created_at_unix_ms >= 0),
    evaluation_json    TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS pecr_evaluations_owner_created_idx
    ON pecr_evaluations (tenant_id, principal_id_hash, created_at_unix_ms DESC);

CREATE OR REPLACE FUNCTION pecr_reject_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'immutable table: %', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS pecr_replay_bundles_immutable ON pecr_replay_bundles;
CREATE TRIGGER pecr_replay_bundles_immutable
    BEFORE UPDATE ON pecr_replay_bundles
    FOR EACH ROW EXECUTE FUNCTION pecr_reject_update();

DROP TRIGGER IF EXISTS pecr_evaluations_immutable ON pecr_evaluations;
CREATE TRIGGER pecr_evaluations_immutable
    BEFORE UPDATE ON pecr_evaluations
    FOR EACH ROW EXECUTE FUNCTION pecr_reject_update();
