-- The session state machine, enforced by the database: session rows are
-- never deleted or truncated, a session is finalized once, and its runtime
-- counters and evidence list only grow. Columns a guard does not name are
-- immutable, so a column added later is protected until a guard allows it.

CREATE OR REPLACE FUNCTION pecr_sessions_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'sessions are never removed: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (to_jsonb(NEW) - 'finalized_at' - 'terminal_mode')
        IS DISTINCT FROM (to_jsonb(OLD) - 'finalized_at' - 'terminal_mode') THEN
        RAISE EXCEPTION 'immutable session column changed: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.finalized_at, NEW.terminal_mode) IS DISTINCT FROM (OLD.finalized_at, OLD.terminal_mode)
        AND NOT (OLD.finalized_at IS NULL AND OLD.terminal_mode IS NULL
                 AND NEW.finalized_at IS NOT NULL AND NEW.terminal_mode IS NOT NULL) THEN
        RAISE EXCEPTION 'a session is finalized once, with its terminal mode: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION pecr_session_runtime_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'session runtime rows are never removed: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (to_jsonb(NEW) - 'operator_calls_used' - 'bytes_used' - 'evidence_unit_ids_json'
                      - 'finalized' - 'updated_at')
        IS DISTINCT FROM (to_jsonb(OLD) - 'operator_calls_used' - 'bytes_used'
                          - 'evidence_unit_ids_json' - 'finalized' - 'updated_at') THEN
        RAISE EXCEPTION 'immutable session runtime column changed: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.finalized AND NOT NEW.finalized THEN
        RAISE EXCEPTION 'a finalized session stays finalized: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.finalized AND (NEW.operator_calls_used, NEW.bytes_used, NEW.evidence_unit_ids_json)
        IS DISTINCT FROM (OLD.operator_calls_used, OLD.bytes_used, OLD.evidence_unit_ids_json) THEN
        RAISE EXCEPTION 'a finalized session runtime is frozen: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.operator_calls_used < OLD.operator_calls_used OR NEW.bytes_used < OLD.bytes_used THEN
        RAISE EXCEPTION 'session counters never decrease: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT (NEW.evidence_unit_ids_json @> OLD.evidence_unit_ids_json) THEN
        RAISE EXCEPTION 'session evidence ids are never removed: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS pecr_sessions_state_machine ON pecr_sessions;
CREATE TRIGGER pecr_sessions_state_machine
    BEFORE UPDATE OR DELETE ON pecr_sessions
    FOR EACH ROW EXECUTE FUNCTION pecr_sessions_guard();

DROP TRIGGER IF EXISTS pecr_sessions_no_truncate ON pecr_sessions;
CREATE TRIGGER pecr_sessions_no_truncate
    BEFORE TRUNCATE ON pecr_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_sessions_guard();

DROP TRIGGER IF EXISTS pecr_session_runtime_state_machine ON pecr_session_runtime;
CREATE TRIGGER pecr_session_runtime_state_machine
    BEFORE UPDATE OR DELETE ON pecr_session_runtime
    FOR EACH ROW EXECUTE FUNCTION pecr_session_runtime_guard();

DROP TRIGGER IF EXISTS pecr_session_runtime_no_truncate ON pecr_session_runtime;
CREATE TRIGGER pecr_session_runtime_no_truncate
    BEFORE TRUNCATE ON pecr_session_runtime
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_session_runtime_guard();
