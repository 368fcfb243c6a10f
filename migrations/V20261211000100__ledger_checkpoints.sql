-- Signed checkpoints of the ledger (docs/decisions.md, "Signed checkpoints").
-- Each checkpoint commits, by a Merkle root, to the sealed chain heads of the
-- sessions finalized since the previous one, and to that previous checkpoint
-- by its hash; `document` is the exact canonical JSON that was hashed and
-- (with a configured key) signed with Ed25519.
--
-- - pecr_ledger_checkpoints: one row per checkpoint, numbered from 1 with no
--   gap (the primary key refuses a second checkpoint with the same number);
-- - pecr_checkpoint_sessions: which checkpoint covers each session, at most
--   one (the primary key), so "closed since the last checkpoint" is exactly
--   the finalized sessions not listed here.

CREATE TABLE pecr_ledger_checkpoints (
    checkpoint_seq       bigint PRIMARY KEY CHECK (checkpoint_seq > 0),
    created_at           timestamptz NOT NULL,
    prev_checkpoint_hash text NOT NULL,
    merkle_root          text NOT NULL,
    session_count        bigint NOT NULL CHECK (session_count > 0),
    document             text NOT NULL,
    checkpoint_hash      text NOT NULL UNIQUE,
    signature            text,
    public_key           text,
    CHECK ((signature IS NULL) = (public_key IS NULL))
);

CREATE INDEX pecr_ledger_checkpoints_created_at_idx ON pecr_ledger_checkpoints (created_at);

CREATE TABLE pecr_checkpoint_sessions (
    session_id     text PRIMARY KEY REFERENCES pecr_sessions (session_id),
    checkpoint_seq bigint NOT NULL REFERENCES pecr_ledger_checkpoints (checkpoint_seq)
);

CREATE INDEX pecr_checkpoint_sessions_seq_idx ON pecr_checkpoint_sessions (checkpoint_seq, session_id);

CREATE TRIGGER pecr_ledger_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON pecr_ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION pecr_reject_update_delete();
CREATE TRIGGER pecr_ledger_checkpoints_no_truncate
    BEFORE TRUNCATE ON pecr_ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_reject_update_delete();
CREATE TRIGGER pecr_checkpoint_sessions_append_only
    BEFORE UPDATE OR DELETE ON pecr_checkpoint_sessions
    FOR EACH ROW EXECUTE FUNCTION pecr_reject_update_delete();
CREATE TRIGGER pecr_checkpoint_sessions_no_truncate
    BEFORE TRUNCATE ON pecr_checkpoint_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_reject_update_delete();

GRANT SELECT, INSERT ON pecr_ledger_checkpoints, pecr_checkpoint_sessions TO pecr_ledger_rw;
