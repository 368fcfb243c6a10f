// The console's event-stream parser (console.js), under node's test runner:
// scripts/browser-check.sh runs it before the browser checks. The page's
// script is imported as the browser gets it; without a document it only
// defines its exports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

const source = await readFile(new URL("../console.js", import.meta.url), "utf8");
const { SseParser, transformsLabel, count, plural } = await import(
  `data:text/javascript;base64,${Buffer.from(source).toString("base64")}`
);

const run = [
  ": keep-alive",
  "event: session_created",
  'data: {"session_created":{"session_id":"s1","trace_id":"t1"}}',
  "",
  "event: step_started",
  'data: {"step_started":{"step":0,"operators":["search"]}}',
  "",
  ":",
  "event: operator_call",
  'data: {"operator_call":{"step":0,"op_name":"search","ok":true,"bytes":"1234"}}',
  "",
  "event: result",
  'data: {"result":{"terminal_mode":"SUPPORTED","response_text":"a\\nb"}}',
  "",
  "",
];

const expected = [
  { event: "session_created", data: '{"session_created":{"session_id":"s1","trace_id":"t1"}}' },
  { event: "step_started", data: '{"step_started":{"step":0,"operators":["search"]}}' },
  { event: "operator_call", data: '{"operator_call":{"step":0,"op_name":"search","ok":true,"bytes":"1234"}}' },
  { event: "result", data: '{"result":{"terminal_mode":"SUPPORTED","response_text":"a\\nb"}}' },
];

function parseInPieces(text, size) {
  const parser = new SseParser();
  const events = [];
  for (let at = 0; at < text.length; at += size) events.push(...parser.push(text.slice(at, at + size)));
  events.push(...parser.end());
  return events;
}

for (const [name, newline] of [["LF", "\n"], ["CRLF", "\r\n"], ["CR", "\r"]]) {
  test(`a whole stream with ${name} line ends, in one piece`, () => {
    assert.deepEqual(parseInPieces(run.join(newline), Infinity), expected);
  });

  test(`a stream with ${name} line ends split at every possible place`, () => {
    const text = run.join(newline);
    for (const size of [1, 2, 3, 5, 7, 64]) {
      assert.deepEqual(parseInPieces(text, size), expected, `pieces of ${size}`);
    }
  });
}

test("a CRLF split between two pieces is one line end, not two", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push("event: finalizing\r\ndata: {}\r"), []);
  assert.deepEqual(parser.push("\n\r"), []);
  assert.deepEqual(parser.push("\n"), [{ event: "finalizing", data: "{}" }]);
});

test("data lines join with a newline; one leading space is dropped", () => {
  const parser = new SseParser();
  const events = parser.push("data:first\ndata:  second\ndata\n\n");
  assert.deepEqual(events, [{ event: "message", data: "first\n second\n" }]);
});

test("comments and blank lines alone make no event, and names do not leak", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push(": ping\n\n\nevent: error\n\n: ping\n\n"), []);
  assert.deepEqual(parser.push("data: {}\n\n"), [{ event: "message", data: "{}" }]);
});

test("an event the stream never closed with a blank line is dropped", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push("event: result\ndata: {}\n"), []);
  assert.deepEqual(parser.end(), []);
});

test("an error event carries the ErrorResponse", () => {
  const parser = new SseParser();
  const body = '{"code":"ERR_SOURCE_UNAVAILABLE","message":"gateway down","retryable":true}';
  assert.deepEqual(parser.push(`event: error\ndata: ${body}\n\n`), [{ event: "error", data: body }]);
});

test("transforms read as what was applied", () => {
  assert.equal(transformsLabel(["redaction"]), "redaction applied");
  assert.equal(transformsLabel(["redaction", "diff_unified_v1"]), "redaction applied, diff_unified_v1 applied");
  assert.equal(transformsLabel([]), "none (as retrieved)");
  assert.equal(transformsLabel(undefined), "none (as retrieved)");
});

test("64-bit numbers read the same as strings or numbers, missing as zero", () => {
  assert.equal(count("1234"), "1234");
  assert.equal(count(1234), "1234");
  assert.equal(count(undefined), "0");
});

test("counts read as words", () => {
  assert.equal(plural(1, "claim"), "1 claim");
  assert.equal(plural("2", "claim"), "2 claims");
  assert.equal(plural(undefined, "evidence unit"), "0 evidence units");
});
