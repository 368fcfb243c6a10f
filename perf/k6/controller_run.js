// k6 load on the controller's Run: REST `POST /v1/run` or gRPC
// `pecr.v1.ControllerService/Run`, closed loop, constant VUs. Loopback only.
// Run through perf/run-controller-bench.sh, or by hand against a running mesh
// whose controller has PECR_RATE_LIMIT_RUN_PER_WINDOW=0 and whose gateway has
// its session / operator / finalize rate limits at 0 (proto paths resolve
// from this file's folder):
//
//   k6 run -e PECR_K6_MODE=http -e PECR_CONTROLLER_HTTP=127.0.0.1:8081 perf/k6/controller_run.js
//   k6 run -e PECR_K6_MODE=grpc -e PECR_CONTROLLER_GRPC=127.0.0.1:50052 -e VUS=10 \
//          -e DURATION=20s -e WARMUP=3s perf/k6/controller_run.js
//
// Environment (all optional):
//   PECR_K6_MODE          http | grpc                          (default: http)
//   PECR_CONTROLLER_HTTP  REST address host:port               (default: 127.0.0.1:8081)
//   PECR_CONTROLLER_GRPC  gRPC address host:port               (default: 127.0.0.1:50052)
//   PECR_K6_REFLECT=1     gRPC: use server reflection instead of loading proto/
//   PECR_PROTO_ROOT       gRPC: the proto folder               (default: ../../proto)
//   PECR_QUERY            the query                            (default: the dev-up query)
//   PECR_PRINCIPAL        x-pecr-principal-id                  (default: dev)
//   VUS                   virtual users                        (default: 10)
//   DURATION              measured time                        (default: 20s)
//   WARMUP                warm-up before it, not measured      (default: 0s)
//   ITERATIONS            > 0: run exactly this many Runs, shared by the VUs, then
//                         stop (no warm-up; DURATION is ignored; perf/scaling.sh's fill)
//   MAX_DURATION          the ITERATIONS mode's time limit     (default: 2h)
//   PECR_K6_SUMMARY       where handleSummary writes its JSON  (default: k6-controller-<mode>-c<vus>.json)
//   PECR_BUDGET           the run's budget, the REST contract's JSON (default: the controller's)
//   PECR_EXPECT           outcomes, comma-separated, that count as expected besides SUPPORTED
//                         (a fault's documented failure, e.g. ERR_LEDGER_UNAVAILABLE)
//
// Every answer has an outcome: its terminal_mode when the run answered
// (200 / OK), its ERR_* code when it was refused (HTTP mode; gRPC refusals
// count as GRPC_ERROR), TRANSPORT_ERROR when nothing answered, OTHER for
// anything else. The summary counts the measured answers by outcome
// (`outcomes`) and gives the share that was SUPPORTED or in PECR_EXPECT
// (`expected_rate`); perf/suite7.sh reads both.
//
// Every VU sends one Run after the other on its own connection (closed loop).
// The figures of record are the `measure` scenario's. The thresholds only
// make k6 keep those submetrics; they can never fail, so a slow run still
// exits 0: this script records figures, it does not gate.
import http from 'k6/http';
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const MODE = (__ENV.PECR_K6_MODE || 'http').toLowerCase();
const HTTP_ADDR = __ENV.PECR_CONTROLLER_HTTP || '127.0.0.1:8081';
const GRPC_ADDR = __ENV.PECR_CONTROLLER_GRPC || '127.0.0.1:50052';
const REFLECT = __ENV.PECR_K6_REFLECT === '1';
const QUERY = __ENV.PECR_QUERY || 'What is the customer status and plan tier?';
const PRINCIPAL = __ENV.PECR_PRINCIPAL || 'dev';
const VUS = Number(__ENV.VUS || 10);
const DURATION = __ENV.DURATION || '20s';
const WARMUP = __ENV.WARMUP || '0s';
const ITERATIONS = Number(__ENV.ITERATIONS || 0);
const MAX_DURATION = __ENV.MAX_DURATION || '2h';
const SUMMARY = __ENV.PECR_K6_SUMMARY || `k6-controller-${MODE}-c${VUS}.json`;
const BUDGET = __ENV.PECR_BUDGET ? JSON.parse(__ENV.PECR_BUDGET) : undefined;
const REQUEST = BUDGET ? { query: QUERY, budget: BUDGET } : { query: QUERY };
const EXPECTED = ['SUPPORTED'].concat((__ENV.PECR_EXPECT || '').split(',').filter((o) => o !== ''));

// k6 keeps a tagged submetric only when a threshold names it, so every
// outcome is named up front: the terminal modes, the ERR_* codes of
// libs/errors/src/code.rs, and the catch-alls. An answer outside the list
// counts as OTHER, which no scenario expects.
const OUTCOMES = [
  'SUPPORTED', 'INSUFFICIENT_EVIDENCE', 'INSUFFICIENT_PERMISSION', 'SOURCE_UNAVAILABLE',
  'ERR_AUTH_REQUIRED', 'ERR_AUTH_INVALID', 'ERR_AUTH_UNAVAILABLE', 'ERR_POLICY_DENIED',
  'ERR_RATE_LIMITED', 'ERR_BUDGET_EXCEEDED', 'ERR_INVALID_PARAMS', 'ERR_SOURCE_TIMEOUT',
  'ERR_SOURCE_UNAVAILABLE', 'ERR_DB_UNAVAILABLE', 'ERR_LEDGER_UNAVAILABLE', 'ERR_INTERNAL',
  'ERR_OVERLOADED', 'ERR_REPLAY_NOT_FOUND', 'ERR_EVALUATION_NOT_FOUND', 'ERR_REPLAY_STORE',
  'ERR_RLM_FEATURE_DISABLED', 'ERR_RLM_BRIDGE_FAILED', 'ERR_RLM_BRIDGE_INTERNAL',
  'ERR_RLM_BRIDGE_PROTOCOL', 'ERR_RLM_BRIDGE_SCRIPT_NOT_FOUND', 'ERR_RLM_BRIDGE_SPAWN_FAILED',
  'GRPC_ERROR', 'TRANSPORT_ERROR', 'OTHER',
];
for (const outcome of EXPECTED) {
  if (!OUTCOMES.includes(outcome)) {
    throw new Error(`PECR_EXPECT names an unknown outcome ${outcome}`);
  }
}

if (MODE !== 'http' && MODE !== 'grpc') {
  throw new Error(`PECR_K6_MODE must be http or grpc, not ${MODE}`);
}
const target = MODE === 'http' ? HTTP_ADDR : GRPC_ADDR;
const host = target.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
if (!['localhost', '::1'].includes(host) && !host.startsWith('127.')) {
  throw new Error(`${target} is not a loopback address`);
}

// "20s", "1m30s", "500ms" -> seconds.
function seconds(text) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let match;
  while ((match = re.exec(text)) !== null) {
    total += Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2]];
  }
  return total;
}

const DURATION_S = seconds(DURATION);
const WARMUP_S = seconds(WARMUP);
const LATENCY = MODE === 'http' ? 'http_req_duration' : 'grpc_req_duration';

const scenarios = {
  measure: {
    executor: 'constant-vus',
    vus: VUS,
    duration: DURATION,
    startTime: WARMUP_S > 0 ? WARMUP : '0s',
    gracefulStop: '10s',
  },
};
if (ITERATIONS > 0) {
  scenarios.measure = {
    executor: 'shared-iterations',
    vus: Math.min(VUS, ITERATIONS),
    iterations: ITERATIONS,
    maxDuration: MAX_DURATION,
    gracefulStop: '10s',
  };
} else if (WARMUP_S > 0) {
  scenarios.warmup = { executor: 'constant-vus', vus: VUS, duration: WARMUP, gracefulStop: '10s' };
}

export const options = {
  scenarios,
  summaryTrendStats: ['min', 'med', 'avg', 'p(90)', 'p(95)', 'p(99)', 'max'],
  // Never failing: they only make k6 keep these submetrics.
  thresholds: {
    [`${LATENCY}{scenario:measure}`]: ['max>=0'],
    'checks{scenario:measure}': ['rate>=0'],
    'pecr_run_ok{scenario:measure}': ['rate>=0'],
    'iterations{scenario:measure}': ['count>=0'],
    'pecr_expected{scenario:measure}': ['rate>=0'],
  },
};
for (const outcome of OUTCOMES) {
  options.thresholds[`pecr_outcome{scenario:measure,outcome:${outcome}}`] = ['count>=0'];
}

// 1 when a run answered 200 / OK with terminal_mode SUPPORTED.
const runOk = new Rate('pecr_run_ok');
// Answers by outcome (tag `outcome`), and 1 when the outcome was expected.
const outcomes = new Counter('pecr_outcome');
const expected = new Rate('pecr_expected');

// Counts one answer; true when its outcome was expected.
function record(outcome) {
  const known = OUTCOMES.includes(outcome) ? outcome : 'OTHER';
  outcomes.add(1, { outcome: known });
  const ok = EXPECTED.includes(known);
  expected.add(ok);
  return ok;
}

// The protos come from proto/ (google/api/annotations.proto and
// pecr/v1/*.proto resolve from that root). PECR_K6_REFLECT=1 asks the server
// instead.
const client = MODE === 'grpc' ? new grpc.Client() : null;
if (client && !REFLECT) {
  client.load([__ENV.PECR_PROTO_ROOT || '../../proto'], 'pecr/v1/controller.proto');
}
let connected = false;
let warned = 0;

function warn(text) {
  if (warned < 3) {
    warned += 1;
    console.warn(`VU ${__VU}: ${text}`);
  }
}

function runHttp() {
  const response = http.post(`http://${HTTP_ADDR}/v1/run`, JSON.stringify(REQUEST), {
    headers: { 'content-type': 'application/json', 'x-pecr-principal-id': PRINCIPAL },
    tags: { name: 'POST /v1/run' },
    timeout: '30s',
  });
  let body = null;
  try {
    body = response.json();
  } catch (_) {
    body = null;
  }
  const mode = body && response.status === 200 ? body.terminal_mode : undefined;
  let outcome;
  if (typeof mode === 'string') {
    outcome = mode;
  } else if (body && typeof body.code === 'string') {
    outcome = body.code;
  } else {
    outcome = response.status === 0 ? 'TRANSPORT_ERROR' : 'OTHER';
  }
  const wanted = record(outcome);
  const ok = check(response, {
    'status 200': (r) => r.status === 200,
    'terminal_mode SUPPORTED': () => mode === 'SUPPORTED',
  });
  // A fault's expected refusals are not worth a warning.
  if (!wanted) {
    warn(`HTTP ${response.status} ${response.error || ''} ${String(response.body).slice(0, 300)}`);
  }
  return ok;
}

function runGrpc() {
  if (!connected) {
    client.connect(GRPC_ADDR, { plaintext: true, reflect: REFLECT, timeout: '5s' });
    connected = true;
  }
  const response = client.invoke(
    'pecr.v1.ControllerService/Run',
    REQUEST,
    { metadata: { 'x-pecr-principal-id': PRINCIPAL }, tags: { name: 'Run' }, timeout: '30s' },
  );
  const message = response.message || {};
  const mode = message.terminalMode !== undefined ? message.terminalMode : message.terminal_mode;
  const wanted = record(response.status === grpc.StatusOK ? String(mode) : 'GRPC_ERROR');
  const ok = check(response, {
    'grpc OK': (r) => r.status === grpc.StatusOK,
    'terminal_mode SUPPORTED': () => mode === 'SUPPORTED',
  });
  if (!wanted) {
    warn(`gRPC status ${response.status} ${JSON.stringify(response.error)} terminal_mode ${mode}`);
  }
  return ok;
}

export default function () {
  runOk.add(MODE === 'http' ? runHttp() : runGrpc());
}

function round(value, digits) {
  if (value === undefined || value === null || Number.isNaN(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export function handleSummary(data) {
  const metric = (name) => (data.metrics[name] || {}).values || {};
  const latency = metric(`${LATENCY}{scenario:measure}`);
  const iterations = metric('iterations{scenario:measure}').count || 0;
  const okRate = metric('pecr_run_ok{scenario:measure}');
  const checks = metric('checks{scenario:measure}');
  const okRuns = okRate.passes || 0;
  // The ITERATIONS mode runs for as long as its Runs take.
  const seconds = ITERATIONS > 0 ? data.state.testRunDurationMs / 1000 : DURATION_S;
  const summary = {
    tool: 'k6',
    script: 'perf/k6/controller_run.js',
    mode: MODE,
    target: MODE === 'http' ? `POST http://${HTTP_ADDR}/v1/run` : `grpc://${GRPC_ADDR} pecr.v1.ControllerService/Run`,
    query: QUERY,
    vus: VUS,
    loop: ITERATIONS > 0 ? `closed (${ITERATIONS} shared iterations)` : 'closed (constant VUs)',
    warmup_s: ITERATIONS > 0 ? 0 : WARMUP_S,
    duration_s: round(seconds, 3),
    // Iterations of the measured scenario (one Run each) per measured second.
    iterations: iterations,
    // Warm-up included (for CPU per run).
    iterations_all: metric('iterations').count || 0,
    throughput_runs_per_s: round(iterations / seconds, 2),
    ok_runs: okRuns,
    ok_runs_per_s: round(okRuns / seconds, 2),
    run_ok_rate: round(okRate.rate, 4),
    check_pass_rate: round(checks.rate, 4),
    checks_passed: checks.passes || 0,
    checks_failed: checks.fails || 0,
    // Measured answers by outcome (see the header), and the expected share.
    outcomes: Object.fromEntries(
      OUTCOMES.map((o) => [o, metric(`pecr_outcome{scenario:measure,outcome:${o}}`).count || 0]).filter(([, n]) => n > 0),
    ),
    expected: EXPECTED,
    expected_rate: round(metric('pecr_expected{scenario:measure}').rate, 4),
    latency_metric: LATENCY,
    latency_ms: {
      min: round(latency.min, 3),
      p50: round(latency.med, 3),
      p90: round(latency['p(90)'], 3),
      p95: round(latency['p(95)'], 3),
      p99: round(latency['p(99)'], 3),
      max: round(latency.max, 3),
      mean: round(latency.avg, 3),
    },
    k6_test_run_duration_ms: round(data.state.testRunDurationMs, 0),
  };
  const line =
    `${MODE} c${VUS}: ${summary.throughput_runs_per_s} runs/s, ` +
    `p50 ${summary.latency_ms.p50} ms, p95 ${summary.latency_ms.p95} ms, p99 ${summary.latency_ms.p99} ms, ` +
    `checks ${summary.check_pass_rate} (${summary.checks_failed} failed), summary ${SUMMARY}\n`;
  return { stdout: line, [SUMMARY]: JSON.stringify(summary, null, 2) + '\n' };
}
