-- EXPLAIN (ANALYZE, BUFFERS) of the statements one controller run makes
-- ledger-writer execute, against a filled bench database (perf/scaling.sh runs
-- it at the end). The SQL text is copied from services/ledger-writer/src/store/
-- (sessions.rs, evidence.rs, events.rs, finalize.rs, replays.rs): keep it in
-- step when those change.
--
-- Everything runs in one transaction that is rolled back: the writes are real
-- (triggers, indexes, constraints all fire) but leave nothing behind. Their
-- values are copied from the last stored run and the last evidence unit
-- (evidence ids are content hashes, so runs share units), so rows have
-- realistic sizes; ids are fresh.
--
-- ledger-writer prepares these statements once per connection
-- (prepare_cached), so after five runs PostgreSQL may switch to the generic
-- plan: they are explained with plan_cache_mode = force_generic_plan. The one
-- statement it sends unprepared (list_events) gets a custom plan.
\set ON_ERROR_STOP 1
\pset pager off
\timing off
-- perf/scaling.sh runs this file twice in one session and keeps the second
-- pass: the first compiles the triggers' plpgsql and warms the caches, as on
-- ledger-writer's long-lived connections. Prepared statements outlive the
-- rollback, hence:
DEALLOCATE ALL;

SELECT count(*) AS stored_runs FROM pecr_replay_bundles \gset
SELECT count(*) AS sessions FROM pecr_sessions \gset
SELECT count(*) AS events FROM pecr_ledger_events \gset
SELECT count(*) AS evidence_units FROM pecr_evidence_units \gset
\qecho '# run-path plans at' :stored_runs 'stored runs,' :sessions 'sessions,' :events 'events,' :evidence_units 'evidence units'

-- The last stored run and the rows it wrote.
SELECT s.session_id AS old_session, s.trace_id AS old_trace, s.principal_id AS principal,
       s.budget_json::text AS budget, p.policy_snapshot_hash AS snapshot_hash,
       p.as_of_time::text AS as_of_time, p.policy_bundle_hash AS bundle_hash, p.input_json::text AS snapshot_json,
       r.tenant_id AS tenant, r.session_token_hash AS token_hash,
       r.session_token_expires_at_epoch_ms AS token_expires
FROM pecr_sessions s
JOIN pecr_policy_snapshots p ON p.policy_snapshot_id = s.policy_snapshot_id
JOIN pecr_session_runtime r ON r.session_id = s.session_id
WHERE s.finalized_at IS NOT NULL
ORDER BY s.created_at DESC LIMIT 1 \gset
SELECT u.source_system, u.object_id, u.version_id, u.span_or_row_spec_json::text AS span,
       u.content_type, u.content_hash, u.retrieved_at::text AS retrieved_at,
       u.transform_chain_json::text AS chain, COALESCE(u.payload_json::text, 'null') AS evidence_payload
FROM pecr_evidence_units u ORDER BY u.created_at DESC LIMIT 1 \gset
SELECT e.event_type, e.payload_json::text AS event_payload, e.payload_hash AS event_hash
FROM pecr_ledger_events e WHERE e.session_id = :'old_session' ORDER BY e.event_time LIMIT 1 \gset
SELECT c.terminal_mode AS claim_mode, c.coverage_threshold, c.coverage_observed, c.claim_map_json::text AS claim_map
FROM pecr_claim_maps c WHERE c.session_id = :'old_session' LIMIT 1 \gset
SELECT b.principal_id_hash, b.engine_mode, b.terminal_mode AS replay_mode, b.quality_score,
       b.bundle_hash, b.bundle_json
FROM pecr_replay_bundles b ORDER BY b.recorded_at_unix_ms DESC LIMIT 1 \gset

SELECT 'explain-' || md5(random()::text) AS tag \gset
\set session :tag '-session'
\set snapshot :tag '-snapshot'
\set trace :tag '-trace'

BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;

\qecho
\qecho '## RecordSession (sessions.rs): trace ownership check'
PREPARE trace_check(text, text, text) AS
SELECT EXISTS (SELECT 1 FROM pecr_sessions s JOIN pecr_session_runtime r ON r.session_id = s.session_id WHERE s.trace_id = $1 AND (s.principal_id <> $2 OR r.tenant_id <> $3));
EXPLAIN (ANALYZE, BUFFERS) EXECUTE trace_check(:'trace', :'principal', :'tenant');

\qecho
\qecho '## RecordSession: insert policy snapshot'
PREPARE insert_snapshot(text, text, text, text, text, text) AS
INSERT INTO pecr_policy_snapshots (policy_snapshot_id, policy_snapshot_hash, principal_id, as_of_time, policy_bundle_hash, input_json) VALUES ($1, $2, $3, CAST($4::text AS timestamptz), $5, CAST($6::text AS jsonb));
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_snapshot(:'snapshot', :'snapshot_hash', :'principal', :'as_of_time', :'bundle_hash', :'snapshot_json');

\qecho
\qecho '## RecordSession: insert session'
PREPARE insert_session(text, text, text, text, text) AS
INSERT INTO pecr_sessions (session_id, trace_id, principal_id, policy_snapshot_id, budget_json) VALUES ($1, $2, $3, $4, CAST($5::text AS jsonb));
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_session(:'session', :'trace', :'principal', :'snapshot', :'budget');

\qecho
\qecho '## RecordSession: insert runtime row'
PREPARE insert_runtime(text, text, text, bigint) AS
INSERT INTO pecr_session_runtime (session_id, tenant_id, session_token_hash, session_token_expires_at_epoch_ms) VALUES ($1, $2, $3, $4);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_runtime(:'session', :'tenant', :'token_hash', :token_expires);

\qecho
\qecho '## GetSession / every write: session load (SESSION_SELECT)'
PREPARE load_session(text) AS
SELECT s.session_id, s.trace_id, s.principal_id, COALESCE(r.tenant_id, 'local'),
       s.policy_snapshot_id, p.policy_snapshot_hash,
       to_char(p.as_of_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       s.budget_json::text, COALESCE(r.session_token_hash, ''),
       COALESCE(r.session_token_expires_at_epoch_ms, 0),
       GREATEST(COALESCE(r.operator_calls_used, 0), 0), GREATEST(COALESCE(r.bytes_used, 0), 0),
       COALESCE(r.evidence_unit_ids_json, '[]'::jsonb)::text,
       (s.finalized_at IS NOT NULL OR COALESCE(r.finalized, false)), s.terminal_mode,
       COALESCE(p.input_json->>'principal_attrs_hash', '')
FROM pecr_sessions s
JOIN pecr_policy_snapshots p ON p.policy_snapshot_id = s.policy_snapshot_id
LEFT JOIN pecr_session_runtime r ON r.session_id = s.session_id
WHERE s.session_id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE load_session(:'session');

\qecho
\qecho '## RecordOperatorCall / RecordFinalize: session lock'
PREPARE lock_session(text) AS
SELECT 1 FROM pecr_sessions WHERE session_id = $1 FOR UPDATE;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE lock_session(:'session');

\qecho
\qecho '## RecordOperatorCall (evidence.rs): insert evidence (INSERT_EVIDENCE, one unit)'
PREPARE insert_evidence(text[], text, text, text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[]) AS
INSERT INTO pecr_evidence_units (evidence_unit_id, trace_id, session_id, source_system, object_id, version_id, span_or_row_spec_json, content_type, content_hash, as_of_time, retrieved_at, policy_snapshot_id, policy_snapshot_hash, transform_chain_json, payload_json) SELECT u.id, $2, $3, u.source_system, u.object_id, u.version_id, CAST(u.span AS jsonb), u.content_type, u.content_hash, CAST(u.as_of_time AS timestamptz), CAST(u.retrieved_at AS timestamptz), u.snapshot_id, u.snapshot_hash, CAST(u.chain AS jsonb), CAST(u.payload AS jsonb) FROM unnest($1::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[]) AS u(id, source_system, object_id, version_id, span, content_type, content_hash, as_of_time, retrieved_at, snapshot_id, snapshot_hash, chain, payload) ON CONFLICT (evidence_unit_id) DO NOTHING RETURNING evidence_unit_id;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_evidence(
  ARRAY[:'tag' || '-evidence'], :'trace', :'session', ARRAY[:'source_system'], ARRAY[:'object_id'],
  ARRAY[:'version_id'], ARRAY[:'span'], ARRAY[:'content_type'], ARRAY[:'content_hash'], ARRAY[:'as_of_time'],
  ARRAY[:'retrieved_at'], ARRAY[:'snapshot'], ARRAY[:'snapshot_hash'], ARRAY[:'chain'], ARRAY[:'evidence_payload']);

\qecho
\qecho '## RecordOperatorCall / RecordFinalize / AppendEvent (events.rs): insert events (INSERT_EVENTS, three events)'
PREPARE insert_events(text[], text[], text[], text[], text[], text[], text[], text[]) AS
INSERT INTO pecr_ledger_events (event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id, payload_json, payload_hash) SELECT e.event_id, e.trace_id, e.session_id, e.event_type, e.principal_id, e.policy_snapshot_id, CAST(e.payload AS jsonb), e.payload_hash FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS e(event_id, trace_id, session_id, event_type, principal_id, policy_snapshot_id, payload, payload_hash) RETURNING event_id, payload_json::text;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_events(
  ARRAY[:'tag' || '-e1', :'tag' || '-e2', :'tag' || '-e3'], ARRAY[:'trace', :'trace', :'trace'],
  ARRAY[:'session', :'session', :'session'], ARRAY[:'event_type', :'event_type', :'event_type'],
  ARRAY[:'principal', :'principal', :'principal'], ARRAY[:'snapshot', :'snapshot', :'snapshot'],
  ARRAY[:'event_payload', :'event_payload', :'event_payload'], ARRAY[:'event_hash', :'event_hash', :'event_hash']);

\qecho
\qecho '## RecordOperatorCall: counter update'
PREPARE update_counters(text, bigint, bigint, text) AS
UPDATE pecr_session_runtime SET operator_calls_used = $2, bytes_used = $3, evidence_unit_ids_json = CAST($4::text AS jsonb), updated_at = now() WHERE session_id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE update_counters(:'session', 1, 512, json_build_array(:'tag' || '-evidence')::text);

\qecho
\qecho '## RecordFinalize (finalize.rs): insert claim map'
PREPARE insert_claim_map(text, text, text, text, float8, float8, text) AS
INSERT INTO pecr_claim_maps (claim_map_id, trace_id, session_id, terminal_mode, coverage_threshold, coverage_observed, claim_map_json) VALUES ($1, $2, $3, $4, $5, $6, CAST($7::text AS jsonb));
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_claim_map(:'tag' || '-claims', :'trace', :'session', :'claim_mode', :coverage_threshold, :coverage_observed, :'claim_map');

\qecho
\qecho '## RecordFinalize: mark the session finalized'
PREPARE finalize_session(text, text) AS
UPDATE pecr_sessions SET finalized_at = now(), terminal_mode = $2 WHERE session_id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE finalize_session(:'session', :'claim_mode');

\qecho
\qecho '## RecordFinalize: mark the runtime row finalized'
PREPARE finalize_runtime(text) AS
UPDATE pecr_session_runtime SET finalized = true, updated_at = now() WHERE session_id = $1;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE finalize_runtime(:'session');

\qecho
\qecho '## StoreReplayBundle (replays.rs): insert replay'
PREPARE insert_replay(text, text, text, text, bigint, text, float8, text, text) AS
INSERT INTO pecr_replay_bundles (run_id, tenant_id, principal_id_hash, engine_mode, recorded_at_unix_ms, terminal_mode, quality_score, bundle_hash, bundle_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);
EXPLAIN (ANALYZE, BUFFERS) EXECUTE insert_replay(:'tag' || '-run', :'tenant', :'principal_id_hash', :'engine_mode', (extract(epoch FROM clock_timestamp()) * 1000)::bigint, :'replay_mode', :quality_score, :'bundle_hash', :'bundle_json');

\qecho
\qecho '## ListReplays: the owner''s latest 50 (all stored runs share one owner here)'
PREPARE list_replays(text, text, text, bigint) AS
SELECT bundle_json FROM pecr_replay_bundles WHERE tenant_id = $1 AND principal_id_hash = $2 AND ($3::text IS NULL OR engine_mode = $3) ORDER BY recorded_at_unix_ms DESC, run_id DESC LIMIT $4;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE list_replays(:'tenant', :'principal_id_hash', NULL, 50);

\qecho
\qecho '## GetReplay: load one'
PREPARE load_replay(text, text, text) AS
SELECT bundle_json FROM pecr_replay_bundles WHERE run_id = $1 AND tenant_id = $2 AND principal_id_hash = $3;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE load_replay(:'tag' || '-run', :'tenant', :'principal_id_hash');

\qecho
\qecho '## ListEvents (unprepared: custom plan): one session''s events'
SET LOCAL plan_cache_mode = force_custom_plan;
PREPARE list_events(text, text, text, bigint) AS
SELECT event_id, trace_id, session_id, event_type, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), principal_id, policy_snapshot_id, payload_json::text, payload_hash FROM pecr_ledger_events WHERE ($1::text IS NULL OR session_id = $1) AND ($2::text IS NULL OR trace_id = $2) AND ($3::text IS NULL OR event_type = $3) ORDER BY event_time, event_id LIMIT $4;
EXPLAIN (ANALYZE, BUFFERS) EXECUTE list_events(:'old_session', NULL, NULL, 1000);

ROLLBACK;
