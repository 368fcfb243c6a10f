-- The per-session hash chain of ledger events (docs/decisions.md, "Hash-chained
-- ledger"). Additive: rows written before this migration keep NULL chain
-- columns and are verified by their payload hashes alone ("unchained").
--
-- - pecr_ledger_events: the event's position in its session's chain, the
--   chain hash it follows and its own;
-- - pecr_session_runtime: the session's chain head and length, read under
--   the session's row lock by the next batch that writes events to it;
-- - pecr_claim_maps: the chain head and length at finalize, sealed with the
--   claim map in the same transaction.

ALTER TABLE pecr_ledger_events
    ADD COLUMN chain_seq bigint,
    ADD COLUMN prev_chain_hash text,
    ADD COLUMN chain_hash text;

ALTER TABLE pecr_session_runtime
    ADD COLUMN chain_head text,
    ADD COLUMN chain_length bigint;

ALTER TABLE pecr_claim_maps
    ADD COLUMN sealed_chain_head text,
    ADD COLUMN sealed_chain_length bigint;

-- The runtime guard as before, with the chain columns allowed to move
-- forward only (events may still be appended to a finalized session).
CREATE OR REPLACE FUNCTION pecr_session_runtime_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'session runtime rows are never removed: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (to_jsonb(NEW) - 'operator_calls_used' - 'bytes_used' - 'evidence_unit_ids_json'
                      - 'finalized' - 'updated_at' - 'chain_head' - 'chain_length')
        IS DISTINCT FROM (to_jsonb(OLD) - 'operator_calls_used' - 'bytes_used'
                          - 'evidence_unit_ids_json' - 'finalized' - 'updated_at'
                          - 'chain_head' - 'chain_length') THEN
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
    IF OLD.chain_length IS NOT NULL
        AND (NEW.chain_length IS NULL OR NEW.chain_length < OLD.chain_length) THEN
        RAISE EXCEPTION 'a session chain only grows: %', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

GRANT INSERT (chain_seq, prev_chain_hash, chain_hash) ON pecr_ledger_events TO pecr_ledger_rw;
GRANT INSERT (chain_head, chain_length) ON pecr_session_runtime TO pecr_ledger_rw;
GRANT UPDATE (chain_head, chain_length) ON pecr_session_runtime TO pecr_ledger_rw;
GRANT INSERT (sealed_chain_head, sealed_chain_length) ON pecr_claim_maps TO pecr_ledger_rw;
