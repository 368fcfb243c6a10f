-- Indexes no query uses, which every run paid for on each insert or update
-- (perf/README.md, "Where the remaining CPU goes"):
-- * a one-column index that is the prefix of a composite index on the same
--   table serves nothing the composite one does not;
-- * no query filters on event_type alone (the event listing filters by
--   session or trace first);
-- * nothing reads pecr_session_runtime by updated_at or finalized, and an
--   index on updated_at made every counter update a non-HOT update that also
--   wrote all of the table's indexes.

DROP INDEX IF EXISTS pecr_ledger_events_trace_id_idx;
DROP INDEX IF EXISTS pecr_ledger_events_event_type_idx;
DROP INDEX IF EXISTS pecr_evidence_units_trace_id_idx;
DROP INDEX IF EXISTS pecr_evidence_units_object_id_idx;
DROP INDEX IF EXISTS pecr_session_runtime_updated_at_idx;
DROP INDEX IF EXISTS pecr_session_runtime_finalized_updated_idx;
