-- Refused attempts to use a session (another principal, tenant or
-- attribute set, or a wrong or expired token). Kept apart from
-- pecr_ledger_events so that a caller who does not own a session can never
-- add to that session's event stream. Append-only like the ledger.

CREATE TABLE IF NOT EXISTS pecr_session_access_refusals (
    refusal_id   TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    action       TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    refused_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS pecr_session_access_refusals_session_idx
    ON pecr_session_access_refusals (session_id, refused_at DESC);

DROP TRIGGER IF EXISTS pecr_session_access_refusals_append_only ON pecr_session_access_refusals;
CREATE TRIGGER pecr_session_access_refusals_append_only
    BEFORE UPDATE OR DELETE ON pecr_session_access_refusals
    FOR EACH ROW EXECUTE FUNCTION pecr_reject_update_delete();

DROP TRIGGER IF EXISTS pecr_session_access_refusals_no_truncate ON pecr_session_access_refusals;
CREATE TRIGGER pecr_session_access_refusals_no_truncate
    BEFORE TRUNCATE ON pecr_session_access_refusals
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_reject_update_delete();
