-- Deviation from the reference: TRUNCATE is refused on the append-only
-- tables too (the row triggers do not fire for TRUNCATE).

DROP TRIGGER IF EXISTS pecr_policy_snapshots_no_truncate ON pecr_policy_snapshots;
CREATE TRIGGER pecr_policy_snapshots_no_truncate
    BEFORE TRUNCATE ON pecr_policy_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_reject_update_delete();

DROP TRIGGER IF EXISTS pecr_ledger_events_no_truncate ON pecr_ledger_events;
CREATE TRIGGER pecr_ledger_events_no_truncate
    BEFORE TRUNCATE ON pecr_ledger_events
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_reject_update_delete();

DROP TRIGGER IF EXISTS pecr_evidence_units_no_truncate ON pecr_evidence_units;
CREATE TRIGGER pecr_evidence_units_no_truncate
    BEFORE TRUNCATE ON pecr_evidence_units
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_reject_update_delete();

DROP TRIGGER IF EXISTS pecr_claim_maps_no_truncate ON pecr_claim_maps;
CREATE TRIGGER pecr_claim_maps_no_truncate
    BEFORE TRUNCATE ON pecr_claim_maps
    FOR EACH STATEMENT EXECUTE FUNCTION pecr_reject_update_delete();
