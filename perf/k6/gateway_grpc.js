// k6 gRPC load on the gateway's CallOperator (secondary tool; perf/loadgen
// is the primary one). Loopback only. Run through perf/run-gateway-bench.sh
// with PERF_K6=1, or by hand against a running gateway whose rate limits are 0
// (proto paths resolve from this file's folder):
//
//   k6 run -e PECR_GATEWAY_GRPC=127.0.0.1:50051 -e PECR_OP=fetch_rows -e VUS=8 \
//          -e DURATION=20s -e WARMUP=3s perf/k6/gateway_grpc.js
//
// Each VU opens its own session (10000 calls, 64 MiB) and rotates it before
// the call budget runs out. The figures of record are the `measure`
// scenario's: grpc_req_duration{scenario:measure,name:CallOperator}. The
// thresholds only make k6 print those submetrics; they never fail.
import grpc from 'k6/net/grpc';
import { check, fail } from 'k6';

const GATEWAY = __ENV.PECR_GATEWAY_GRPC || '127.0.0.1:50051';
const OP = __ENV.PECR_OP || 'fetch_rows';
const PARAMS = {
  fetch_rows: '{"view_id":"safe_customer_view_public","fields":["status","plan_tier"],"filter_spec":{"customer_id":"cust_public_1"}}',
  search: '{"query":"fixture","limit":10}',
}[OP] || __ENV.PECR_PARAMS;
const VUS = Number(__ENV.VUS || 8);
const WARMUP = __ENV.WARMUP || '3s';
const DURATION = __ENV.DURATION || '20s';
const SESSION_CALLS = 10000;

const host = GATEWAY.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
if (!['127.0.0.1', 'localhost', '::1'].includes(host) && !host.startsWith('127.')) {
  throw new Error(`PECR_GATEWAY_GRPC ${GATEWAY} is not a loopback address`);
}
if (!PARAMS) {
  throw new Error(`PECR_PARAMS is required for op ${OP}`);
}

export const options = {
  scenarios: {
    warmup: { executor: 'constant-vus', vus: VUS, duration: WARMUP, gracefulStop: '5s' },
    measure: { executor: 'constant-vus', vus: VUS, duration: DURATION, startTime: WARMUP, gracefulStop: '5s' },
  },
  summaryTrendStats: ['min', 'med', 'p(90)', 'p(99)', 'max', 'avg'],
  thresholds: {
    'grpc_req_duration{scenario:measure,name:CallOperator}': ['max>=0'],
    'checks{scenario:measure}': ['rate>=0'],
  },
};

// The protos come from proto/ rather than server reflection: the servers list
// grpc.reflection.v1alpha.ServerReflection without its descriptor, which
// k6's reflection client refuses ("Service not found").
const PROTO_ROOT = __ENV.PECR_PROTO_ROOT || '../../proto';
const client = new grpc.Client();
client.load([PROTO_ROOT], 'pecr/v1/gateway.proto');
let connected = false;
let session = null;

function header(headers, name) {
  const value = headers ? headers[name] : undefined;
  return Array.isArray(value) ? value[0] : value;
}

function openSession() {
  const response = client.invoke(
    'pecr.v1.GatewayService/CreateSession',
    { budget: { max_operator_calls: SESSION_CALLS, max_bytes: 67108864, max_wallclock_ms: 300000, max_recursion_depth: 3 } },
    { metadata: { 'x-pecr-principal-id': 'dev' }, tags: { name: 'CreateSession' } },
  );
  if (response.status !== grpc.StatusOK) {
    fail(`CreateSession failed: ${response.status} ${JSON.stringify(response.error)}`);
  }
  const token = header(response.headers, 'x-pecr-session-token');
  if (!token) {
    fail('CreateSession returned no x-pecr-session-token');
  }
  session = { id: response.message.sessionId || response.message.session_id, token, left: SESSION_CALLS };
}

export default function () {
  if (!connected) {
    client.connect(GATEWAY, { plaintext: true, timeout: '5s' });
    connected = true;
  }
  if (!session || session.left <= 0) {
    openSession();
  }
  session.left -= 1;
  const response = client.invoke(
    'pecr.v1.GatewayService/CallOperator',
    { op_name: OP, session_id: session.id, params: PARAMS },
    {
      metadata: { 'x-pecr-principal-id': 'dev', 'x-pecr-session-token': session.token },
      tags: { name: 'CallOperator' },
      timeout: '5s',
    },
  );
  const ok = check(response, { 'CallOperator OK': (r) => r.status === grpc.StatusOK });
  if (!ok && response.error && /budget/.test(response.error.message || '')) {
    session = null; // byte budget spent: rotate
  }
}
