-- A session recorded with its first operator calls gets its runtime row
-- with the counters and evidence ids those calls left, in the one INSERT,
-- instead of an INSERT at zero and an UPDATE (with its guard trigger) in the
-- same transaction. The guards still hold from there on: counters and the
-- evidence list only grow, and a finalized row is frozen.
GRANT INSERT (operator_calls_used, bytes_used, evidence_unit_ids_json)
    ON pecr_session_runtime TO pecr_ledger_rw;
