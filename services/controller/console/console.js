// The PECR browser console: asks the controller's REST edge (same origin)
// and shows what comes back. Every string from the server is written with
// textContent, never parsed as HTML. Credentials stay in this page's memory
// (sessionStorage at most, when the person asks for it) and travel in
// headers only, never in a URL.

// ---------------------------------------------------------------------------
// Server-sent events over fetch(): EventSource cannot POST, so the stream of
// POST /v1/run/stream is parsed here, following the WHATWG event-stream rules.

/** Splits an event stream into events; feed it decoded text as it arrives. */
export class SseParser {
  constructor() {
    this.buffer = "";
    this.eventName = "";
    this.data = [];
  }

  /** Takes the next piece of text; returns the events it completed. */
  push(text) {
    this.buffer += text;
    const events = [];
    for (;;) {
      const end = this.buffer.search(/[\r\n]/);
      if (end < 0) break;
      // A CR as the last character may be the first half of a CRLF that the
      // next piece completes: wait for it.
      if (this.buffer[end] === "\r" && end === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, end);
      const skip = this.buffer[end] === "\r" && this.buffer[end + 1] === "\n" ? 2 : 1;
      this.buffer = this.buffer.slice(end + skip);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  /** The stream ended: a last line ended by a lone CR still counts; an event
   * not closed by a blank line is dropped, as the rules say. */
  end() {
    const events = [];
    if (this.buffer.endsWith("\r")) {
      const event = this.line(this.buffer.slice(0, -1));
      if (event) events.push(event);
    }
    this.buffer = "";
    this.eventName = "";
    this.data = [];
    return events;
  }

  line(line) {
    if (line === "") {
      if (this.data.length === 0) {
        this.eventName = "";
        return null;
      }
      const event = { event: this.eventName || "message", data: this.data.join("\n") };
      this.eventName = "";
      this.data = [];
      return event;
    }
    if (line.startsWith(":")) return null; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.eventName = value;
    else if (field === "data") this.data.push(value);
    // `id` and `retry` mean nothing to a POST that is never retried.
    return null;
  }
}

/** How a cited unit's transform list reads to a person. */
export function transformsLabel(types) {
  if (!Array.isArray(types) || types.length === 0) return "none (as retrieved)";
  return types.map((type) => `${type} applied`).join(", ");
}

/** Numbers of the contract may come as JSON numbers or (64-bit) strings. */
export function count(value) {
  if (value === undefined || value === null || value === "") return "0";
  return String(value);
}

/** "1 claim", "2 claims". */
export function plural(value, noun) {
  const n = count(value);
  return `${n} ${noun}${n === "1" ? "" : "s"}`;
}

// ---------------------------------------------------------------------------
// The page.

const RUN_EVENTS = ["session_created", "step_started", "operator_call", "finalizing", "result"];
const STORAGE_KEY = "pecr-console-identity";

/** An error the console found before or without a server answer. */
class ConsoleError extends Error {}

/** A refusal or failure the server answered (status plus ErrorResponse). */
class ApiError extends Error {
  constructor(status, statusText, body, retryAfter) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.statusText = statusText;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

const $ = (id) => document.getElementById(id);

/** An element with text children only (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function clear(node) {
  node.replaceChildren();
}

function modeBadge(mode) {
  const name = mode || "TERMINAL_MODE_UNSPECIFIED";
  return el("span", { class: `badge mode-${name.replace(/[^A-Z_]/g, "")}` }, name);
}

// --- identity --------------------------------------------------------------

const identity = { mode: "local", principal: "", secret: "", token: "" };

function readIdentityForm() {
  identity.mode = $("auth-oidc").checked ? "oidc" : "local";
  identity.principal = $("principal-id").value.trim();
  identity.secret = $("local-secret").value;
  identity.token = $("bearer-token").value.trim();
  $("local-fields").hidden = identity.mode !== "local";
  $("oidc-fields").hidden = identity.mode !== "oidc";
  const who = $("who");
  if (identity.mode === "oidc") who.textContent = identity.token ? "OIDC bearer token set" : "No token yet";
  else who.textContent = identity.principal ? `Principal: ${identity.principal}` : "No principal yet";
  if ($("remember").checked) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(identity));
  else sessionStorage.removeItem(STORAGE_KEY);
}

function restoreIdentity() {
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
  } catch {
    sessionStorage.removeItem(STORAGE_KEY);
  }
  if (saved && typeof saved === "object") {
    $("auth-oidc").checked = saved.mode === "oidc";
    $("auth-local").checked = saved.mode !== "oidc";
    $("principal-id").value = typeof saved.principal === "string" ? saved.principal : "";
    $("local-secret").value = typeof saved.secret === "string" ? saved.secret : "";
    $("bearer-token").value = typeof saved.token === "string" ? saved.token : "";
    $("remember").checked = true;
  }
  readIdentityForm();
}

// The services take visible ASCII and spaces in these headers; say so here
// rather than let fetch() throw an opaque TypeError.
const HEADER_TEXT = /^[\x20-\x7e]*$/;

function authHeaders() {
  readIdentityForm();
  const headers = {};
  if (identity.mode === "oidc") {
    if (!identity.token) throw new ConsoleError("Enter a bearer token first (OIDC mode).");
    if (!HEADER_TEXT.test(identity.token)) throw new ConsoleError("The bearer token may hold visible ASCII characters only.");
    headers.authorization = `Bearer ${identity.token}`;
    return headers;
  }
  // No principal is sent as none: the server's refusal is shown as it comes.
  if (!HEADER_TEXT.test(identity.principal)) throw new ConsoleError("The principal id may hold visible ASCII characters and spaces only.");
  if (!HEADER_TEXT.test(identity.secret)) throw new ConsoleError("The shared secret may hold visible ASCII characters and spaces only.");
  if (identity.principal) headers["x-pecr-principal-id"] = identity.principal;
  if (identity.secret) headers["x-pecr-local-auth-secret"] = identity.secret;
  return headers;
}

// --- errors ----------------------------------------------------------------

function hideAlert() {
  $("alert").hidden = true;
  clear($("alert"));
}

function showAlert(error) {
  const alert = $("alert");
  clear(alert);
  if (error instanceof ApiError) {
    const body = error.body || {};
    alert.append(
      el("p", { class: "alert-title" },
        el("span", { class: "status", id: "alert-status" },
          error.status ? `HTTP ${error.status}${error.statusText ? ` ${error.statusText}` : ""}` : "The run ended with an error"),
        " ",
        el("code", { id: "alert-code" }, body.code || "no error code"),
      ),
      el("p", { id: "alert-message" }, body.message || "The server answered without an error body."),
    );
    const facts = [];
    if (body.terminal_mode_hint) facts.push(`terminal mode hint ${body.terminal_mode_hint}`);
    if (body.retryable !== undefined) facts.push(body.retryable ? "retryable" : "not retryable");
    if (error.retryAfter) facts.push(`retry after ${error.retryAfter} s`);
    if (facts.length) alert.append(el("p", { class: "muted" }, facts.join(" · ")));
    if (body.detail !== undefined) alert.append(el("pre", { class: "detail" }, JSON.stringify(body.detail, null, 2)));
  } else if (error instanceof ConsoleError) {
    alert.append(el("p", { class: "alert-title" }, el("code", { id: "alert-code" }, "console")), el("p", { id: "alert-message" }, error.message));
  } else {
    // fetch() failed: the controller is down or unreachable.
    alert.append(
      el("p", { class: "alert-title" }, el("code", { id: "alert-code" }, "network")),
      el("p", { id: "alert-message" }, `The controller could not be reached (${error && error.message ? error.message : error}).`),
    );
  }
  alert.hidden = false;
}

/** The ErrorResponse of a refused request, or a stand-in for an empty body. */
async function apiError(response) {
  let body = null;
  const text = await response.text();
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && typeof parsed.code === "string") body = parsed;
  } catch {
    // Not JSON: 404 and 405 of unknown routes have empty bodies.
  }
  return new ApiError(response.status, response.statusText, body, response.headers.get("retry-after"));
}

// --- REST calls --------------------------------------------------------------

async function getJson(path) {
  const response = await fetch(path, {
    method: "GET",
    headers: { ...authHeaders(), accept: "application/json" },
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) throw await apiError(response);
  return response.json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== "" && value !== undefined) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

// --- asking: the live steps ---------------------------------------------------

let running = null; // the AbortController of the run being watched

function stepsList() {
  return $("steps");
}

function addStep(kind, title, ...details) {
  $("steps-empty").hidden = true;
  const item = el("li", { class: `step step-${kind}`, "data-kind": kind },
    el("span", { class: "step-title" }, title),
    el("span", { class: "elapsed" }, `+${Math.round(performance.now() - runStartedAt)} ms`));
  for (const detail of details) if (detail) item.append(detail);
  stepsList().append(item);
  return item;
}

let runStartedAt = 0;
const stepItems = new Map();

function stepItem(step) {
  let item = stepItems.get(step);
  if (!item) {
    item = addStep("step", `Step ${step + 1}`, el("ul", { class: "calls" }));
    stepItems.set(step, item);
  }
  return item;
}

function onRunEvent(kind, payload) {
  switch (kind) {
    case "session_created":
      addStep("session", "Session created",
        el("span", { class: "step-detail" }, `session ${payload.session_id || "?"} · policy snapshot ${payload.policy_snapshot_id || "?"}`));
      if (payload.trace_id) $("run-status").textContent = `Running (trace ${payload.trace_id})…`;
      break;
    case "step_started": {
      const step = Number(payload.step || 0);
      const item = stepItem(step);
      const operators = Array.isArray(payload.operators) ? payload.operators : [];
      item.querySelector(".step-title").textContent = `Step ${step + 1}: ${operators.join(", ") || "no operators"}`;
      break;
    }
    case "operator_call": {
      const item = stepItem(Number(payload.step || 0));
      const notes = [payload.ok ? "ok" : "failed"];
      if (payload.terminal_mode) notes.push(payload.terminal_mode);
      if (payload.refs) notes.push(plural(payload.refs, "ref"));
      notes.push(`${count(payload.bytes)} bytes`);
      notes.push(plural(Array.isArray(payload.evidence_unit_ids) ? payload.evidence_unit_ids.length : 0, "evidence unit"));
      item.querySelector(".calls").append(
        el("li", { class: payload.ok ? "call ok" : "call failed" },
          el("code", {}, payload.op_name || "?"), ` ${notes.join(" · ")}`));
      break;
    }
    case "finalizing":
      addStep("finalizing", "Finalizing",
        el("span", { class: "step-detail" }, `stop reason ${payload.stop_reason || "?"} · ${plural(payload.claims, "claim")}`));
      break;
    case "result":
      addStep("result", "Result", el("span", { class: "step-detail" }, modeBadge(payload.terminal_mode)));
      renderAnswer(payload);
      break;
    default:
      break;
  }
}

function resetRun() {
  hideAlert();
  clear(stepsList());
  stepItems.clear();
  $("steps-empty").hidden = false;
  $("answer-body").hidden = true;
  $("answer-empty").hidden = false;
  $("answer").dataset.state = "idle";
  $("run-status").textContent = "";
}

function readBudget() {
  if (!$("budget-on").checked) return undefined;
  const budget = {};
  for (const field of ["max_operator_calls", "max_bytes", "max_wallclock_ms", "max_recursion_depth", "max_parallelism"]) {
    const raw = $(`budget-${field}`).value.trim();
    if (raw === "") continue;
    if (!/^\d+$/.test(raw)) throw new ConsoleError(`Budget ${field} must be a whole number.`);
    // 64-bit fields travel as strings in proto3 JSON; the edge reads both.
    budget[field] = field === "max_bytes" || field === "max_wallclock_ms" ? raw : Number(raw);
  }
  return budget;
}

async function ask(event) {
  event.preventDefault();
  if (running) running.abort();
  resetRun();
  const answer = $("answer");
  const watch = new AbortController();
  running = watch;
  $("stop").disabled = false;
  $("ask").disabled = true;
  try {
    const request = { query: $("query").value };
    const budget = readBudget();
    if (budget) request.budget = budget;
    const headers = { ...authHeaders(), "content-type": "application/json", accept: "text/event-stream" };
    answer.dataset.state = "running";
    $("run-status").textContent = "Running…";
    runStartedAt = performance.now();
    const response = await fetch("/v1/run/stream", {
      method: "POST",
      headers,
      body: JSON.stringify(request),
      credentials: "omit",
      cache: "no-store",
      signal: watch.signal,
    });
    const type = (response.headers.get("content-type") || "").toLowerCase();
    if (!response.ok) throw await apiError(response);
    if (!type.startsWith("text/event-stream")) {
      throw new ConsoleError(`Expected an event stream from /v1/run/stream, got ${type || "no content type"}.`);
    }
    const outcome = await readRunStream(response.body);
    answer.dataset.state = outcome;
    $("run-status").textContent = outcome === "done" ? "Done." : "Failed.";
  } catch (error) {
    if (watch.signal.aborted) {
      answer.dataset.state = "stopped";
      $("run-status").textContent = "Stopped watching; the run still finishes and is stored as a replay.";
    } else {
      answer.dataset.state = "failed";
      $("run-status").textContent = "Failed.";
      showAlert(error);
    }
  } finally {
    if (running === watch) running = null;
    $("stop").disabled = true;
    $("ask").disabled = false;
  }
}

/** Reads the run's events until `result` or `error`; "done" or "failed". */
async function readRunStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    const events = done ? parser.end() : parser.push(value);
    for (const event of events) {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        throw new ConsoleError(`The ${event.event} event carried data that is not JSON.`);
      }
      if (event.event === "error") {
        reader.cancel().catch(() => {});
        addStep("error", "Error", el("span", { class: "step-detail" }, (data && data.code) || "no error code"));
        // Status 0: the stream had begun (HTTP 200) when the run failed.
        showAlert(new ApiError(0, "", data && typeof data === "object" ? data : null, null));
        return "failed";
      }
      // The data is the whole RunEvent: {"<kind>": {...}}.
      const kind = RUN_EVENTS.includes(event.event) && data && data[event.event] !== undefined ? event.event : null;
      if (kind === null) continue; // an event this console does not know
      onRunEvent(kind, data[kind] || {});
      if (kind === "result") {
        reader.cancel().catch(() => {});
        return "done";
      }
    }
    if (done) break;
  }
  throw new ConsoleError("The stream ended before the run's result arrived.");
}

// --- the answer ----------------------------------------------------------------

function renderAnswer(result) {
  const mode = result.terminal_mode || "TERMINAL_MODE_UNSPECIFIED";
  const badge = $("terminal-mode");
  badge.className = `mode mode-${mode.replace(/[^A-Z_]/g, "")}`;
  badge.textContent = mode;
  $("response-text").textContent = result.response_text || "";

  // Number the cited units so claims can point at their rows.
  const cited = Array.isArray(result.cited_evidence) ? result.cited_evidence : [];
  const numberOf = new Map();
  const rows = $("evidence-rows");
  clear(rows);
  cited.forEach((unit, index) => {
    numberOf.set(unit.evidence_unit_id, index + 1);
    rows.append(el("tr", { "data-evidence-unit-id": unit.evidence_unit_id || "" },
      el("td", {}, String(index + 1)),
      el("td", { class: "source" }, unit.source_system || ""),
      el("td", { class: "object" }, unit.object_id || ""),
      el("td", { class: "version mono", title: unit.version_id || "" }, unit.version_id || ""),
      el("td", { class: "transforms" }, transformsLabel(unit.transform_types))));
  });
  $("evidence-table").hidden = cited.length === 0;
  $("evidence-empty").hidden = cited.length > 0;

  const claims = $("claims");
  clear(claims);
  const claimMap = result.claim_map || {};
  for (const claim of Array.isArray(claimMap.claims) ? claimMap.claims : []) {
    const ids = Array.isArray(claim.evidence_unit_ids) ? claim.evidence_unit_ids : [];
    const cites = ids.map((id) => (numberOf.has(id) ? `[${numberOf.get(id)}]` : `unit ${id.slice(0, 12)}…`));
    claims.append(el("li", { class: "claim" },
      el("span", { class: `badge status-${(claim.status || "STATUS_UNSPECIFIED").replace(/[^A-Z_]/g, "")}` }, claim.status || "STATUS_UNSPECIFIED"),
      " ",
      el("span", { class: "claim-text" }, claim.claim_text || ""),
      el("span", { class: "cites muted" }, cites.length ? ` cites ${cites.join(" ")}` : " cites no evidence")));
  }
  if (!claims.childElementCount) claims.append(el("li", { class: "muted" }, "No claims."));

  $("run-id").textContent = result.run_id || "";
  $("trace-id").textContent = result.trace_id || "";
  $("stop-reason").textContent = result.stop_reason || "";
  const observed = Number(claimMap.coverage_observed || 0);
  const threshold = Number(claimMap.coverage_threshold || 0);
  $("coverage").textContent = `${observed.toFixed(2)} observed, ${threshold.toFixed(2)} required`;
  $("answer-empty").hidden = true;
  $("answer-body").hidden = false;
}

// --- replays and scorecards -------------------------------------------------------

function when(unixMs) {
  const ms = Number(unixMs || 0);
  return ms ? new Date(ms).toLocaleString() : "";
}

async function loadReplays(event) {
  event.preventDefault();
  hideAlert();
  try {
    const listed = await getJson(`/v1/replays${query({ limit: $("replays-limit").value, engine_mode: $("replays-engine").value })}`);
    const replays = Array.isArray(listed.replays) ? listed.replays : [];
    const rows = $("replays-rows");
    clear(rows);
    for (const replay of replays) {
      const open = el("button", { type: "button", class: "open" }, "Open");
      open.addEventListener("click", () => openReplay(replay.run_id || ""));
      rows.append(el("tr", { "data-run-id": replay.run_id || "" },
        el("td", {}, when(replay.recorded_at_unix_ms)),
        el("td", {}, modeBadge(replay.terminal_mode)),
        el("td", {}, replay.engine_mode || ""),
        el("td", {}, Number(replay.quality_score || 0).toFixed(2)),
        el("td", { class: "mono" }, replay.run_id || ""),
        el("td", {}, open)));
    }
    $("replays-table").hidden = replays.length === 0;
    $("replays-empty").hidden = replays.length > 0;
  } catch (error) {
    showAlert(error);
  }
}

function facts(pairs) {
  const list = el("dl", { class: "facts" });
  for (const [name, value] of pairs) list.append(el("dt", {}, name), el("dd", {}, value));
  return list;
}

async function openReplay(runId) {
  hideAlert();
  const detail = $("replay-detail");
  try {
    const bundle = await getJson(`/v1/replays/${encodeURIComponent(runId)}`);
    const meta = bundle.metadata || {};
    const budget = bundle.budget || {};
    clear(detail);
    detail.append(
      el("h2", {}, "Replay"),
      el("div", { class: "mode-line" }, modeBadge(meta.terminal_mode), el("span", { class: "muted" }, ` engine loop ended ${bundle.loop_terminal_mode || "TERMINAL_MODE_UNSPECIFIED"}`)),
      el("h3", {}, "Question"),
      el("p", { id: "replay-query", class: "response-text" }, bundle.query || ""),
      el("h3", {}, "Answer"),
      el("p", { id: "replay-response", class: "response-text" }, bundle.response_text || ""),
    );
    const claims = el("ol", { class: "claims" });
    for (const claim of (bundle.claim_map && Array.isArray(bundle.claim_map.claims)) ? bundle.claim_map.claims : []) {
      const ids = Array.isArray(claim.evidence_unit_ids) ? claim.evidence_unit_ids : [];
      claims.append(el("li", { class: "claim" },
        el("span", { class: `badge status-${(claim.status || "STATUS_UNSPECIFIED").replace(/[^A-Z_]/g, "")}` }, claim.status || "STATUS_UNSPECIFIED"),
        " ", el("span", { class: "claim-text" }, claim.claim_text || ""),
        el("span", { class: "cites muted mono" }, ids.length ? ` cites ${ids.map((id) => `${id.slice(0, 12)}…`).join(" ")}` : " cites no evidence")));
    }
    detail.append(el("h3", {}, "Claims"), claims);
    detail.append(facts([
      ["Run", meta.run_id || ""],
      ["Trace", meta.trace_id || ""],
      ["Recorded", when(meta.recorded_at_unix_ms)],
      ["Engine", meta.engine_mode || ""],
      ["Quality score", Number(meta.quality_score || 0).toFixed(2)],
      ["Operator calls", `${count(bundle.operator_calls_used)} of ${count(budget.max_operator_calls)}`],
      ["Bytes", `${count(bundle.bytes_used)} of ${count(budget.max_bytes)}`],
      ["Depth", `${count(bundle.depth_used)} of ${count(budget.max_recursion_depth)}`],
      ["Evidence units", count(Array.isArray(bundle.evidence_unit_ids) ? bundle.evidence_unit_ids.length : 0)],
      ["Session", bundle.session_id || ""],
      ["Policy snapshot", bundle.policy_snapshot_id || ""],
      ["Bundle hash", meta.bundle_hash || ""],
    ]));
    detail.dataset.runId = meta.run_id || runId;
    detail.hidden = false;
    detail.scrollIntoView({ block: "nearest" });
  } catch (error) {
    showAlert(error);
  }
}

function percent(rate) {
  return `${(Number(rate || 0) * 100).toFixed(1)} %`;
}

async function loadScorecards(event) {
  event.preventDefault();
  hideAlert();
  try {
    const answer = await getJson(`/v1/evaluations/scorecards${query({ limit: $("scorecards-limit").value, engine_mode: $("scorecards-engine").value })}`);
    const cards = Array.isArray(answer.scorecards) ? answer.scorecards : [];
    const rows = $("scorecards-rows");
    clear(rows);
    for (const card of cards) {
      rows.append(el("tr", { "data-engine": card.engine_mode || "" },
        el("td", {}, card.engine_mode || ""),
        el("td", {}, count(card.run_count)),
        el("td", {}, Number(card.average_quality_score || 0).toFixed(2)),
        el("td", {}, Number(card.minimum_quality_score || 0).toFixed(2)),
        el("td", {}, Number(card.maximum_quality_score || 0).toFixed(2)),
        el("td", {}, percent(card.supported_rate)),
        el("td", {}, percent(card.source_unavailable_rate)),
        el("td", {}, Number(card.average_coverage_observed || 0).toFixed(2))));
    }
    $("scorecards-table").hidden = cards.length === 0;
    $("scorecards-empty").hidden = cards.length > 0;
  } catch (error) {
    showAlert(error);
  }
}

// --- navigation and start ---------------------------------------------------------

function show(view) {
  for (const button of document.querySelectorAll("nav [data-view]")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const name of ["ask", "replays", "scorecards"]) $(`view-${name}`).hidden = name !== view;
  hideAlert();
}

function boot() {
  restoreIdentity();
  $("identity-form").addEventListener("input", readIdentityForm);
  $("identity-form").addEventListener("change", readIdentityForm);
  $("identity-form").addEventListener("submit", (event) => event.preventDefault());
  $("ask-form").addEventListener("submit", ask);
  $("query").addEventListener("keydown", (event) => {
    // Enter asks; Shift+Enter starts a new line.
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => running && running.abort());
  $("replays-form").addEventListener("submit", loadReplays);
  $("scorecards-form").addEventListener("submit", loadScorecards);
  for (const button of document.querySelectorAll("nav [data-view]")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  document.documentElement.dataset.ready = "true";
}

if (typeof document !== "undefined") boot();
