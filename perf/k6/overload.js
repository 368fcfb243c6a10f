// k6 load beyond capacity: REST `POST /v1/run` from more VUs than the
// controller admits (its PECR_MAX_IN_FLIGHT_REQUESTS), closed loop. Run
// through perf/run-overload-bench.sh. Every answer must be either a run
// (200) or an immediate refusal (503 ERR_OVERLOADED with retry-after); a
// timeout or any other status is a failure of the admission layer. A shed
// VU waits the Retry-After it was given, as a well-behaved client does.
//
// Environment (all optional):
//   PECR_CONTROLLER_HTTP  REST address host:port   (default: 127.0.0.1:8081)
//   PECR_QUERY            the query                (default: the dev-up query)
//   VUS                   virtual users            (default: 256)
//   DURATION              measured time            (default: 20s)
//   PECR_K6_SUMMARY       where handleSummary writes its JSON (default: k6-overload.json)
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const HTTP_ADDR = __ENV.PECR_CONTROLLER_HTTP || '127.0.0.1:8081';
const QUERY = __ENV.PECR_QUERY || 'What is the customer status and plan tier?';
const VUS = Number(__ENV.VUS || 256);
const DURATION = __ENV.DURATION || '20s';
const SUMMARY = __ENV.PECR_K6_SUMMARY || 'k6-overload.json';

const host = HTTP_ADDR.replace(/:\d+$/, '');
if (!['localhost', '[::1]'].includes(host) && !host.startsWith('127.')) {
  throw new Error(`${HTTP_ADDR} is not a loopback address`);
}

export const options = {
  scenarios: { measure: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '10s' } },
  summaryTrendStats: ['min', 'med', 'avg', 'p(90)', 'p(99)', 'max'],
};

const served = new Counter('pecr_served');
const shed = new Counter('pecr_shed');
const other = new Counter('pecr_other');
const servedLatency = new Trend('pecr_served_ms', true);
const shedLatency = new Trend('pecr_shed_ms', true);
let warned = 0;

export default function () {
  const response = http.post(`http://${HTTP_ADDR}/v1/run`, JSON.stringify({ query: QUERY }), {
    headers: { 'content-type': 'application/json', 'x-pecr-principal-id': 'dev' },
    timeout: '30s',
  });
  let code;
  try {
    code = response.json('code');
  } catch (_) {
    code = undefined;
  }
  if (response.status === 200) {
    served.add(1);
    servedLatency.add(response.timings.duration);
  } else if (response.status === 503 && code === 'ERR_OVERLOADED' && response.headers['Retry-After'] === '1') {
    shed.add(1);
    shedLatency.add(response.timings.duration);
    sleep(Number(response.headers['Retry-After']));
  } else {
    other.add(1);
    if (warned < 3) {
      warned += 1;
      console.warn(`HTTP ${response.status} ${response.error || ''} ${String(response.body).slice(0, 200)}`);
    }
  }
}

export function handleSummary(data) {
  const values = (name) => (data.metrics[name] || {}).values || {};
  const seconds = data.state.testRunDurationMs / 1000;
  const trend = (name) => {
    const v = values(name);
    return { p50_ms: v.med, p99_ms: v['p(99)'], max_ms: v.max };
  };
  const summary = {
    tool: 'k6',
    script: 'perf/k6/overload.js',
    target: `POST http://${HTTP_ADDR}/v1/run`,
    vus: VUS,
    seconds,
    served: values('pecr_served').count || 0,
    shed: values('pecr_shed').count || 0,
    other: values('pecr_other').count || 0,
    served_per_s: (values('pecr_served').count || 0) / seconds,
    shed_per_s: (values('pecr_shed').count || 0) / seconds,
    served_latency: trend('pecr_served_ms'),
    shed_latency: trend('pecr_shed_ms'),
  };
  return { [SUMMARY]: JSON.stringify(summary, null, 2) + '\n', stdout: JSON.stringify(summary, null, 2) + '\n' };
}
