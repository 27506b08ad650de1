/**
 * The standing hostile-input suite (issue 10): hundreds of malformed and hostile requests over a real
 * socket — every failure the issue lists, wrong types for every field, malformed JSON, headers,
 * routes, oversized and deeply nested bodies, schema-aware random bodies from a seeded PRNG, and
 * malformed HTTP. Every answer must be a success or a 4xx documented in docs/ERRORS.md, in the Azure
 * envelope; only Node's HTTP parser may answer 400/431 without it (listed separately). No 5xx, the
 * server keeps answering /health throughout, and the heap does not grow between two identical rounds.
 * The scripted engine stands behind the HTTP path: token counts and outputs are not the subject here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import pino from "pino";
import { createApp } from "../../src/app.ts";
import { createFakeEngineFactory } from "../../src/engine/fake/fake-engine-factory.ts";
import { SeededRandom } from "../../src/model-factory/prng.ts";
import { fakeServeConfig } from "../helpers/fake-config.ts";

const KEY = "hostile-input-key";
const PRNG_SEED = 0x1510;
const RANDOM_BODIES = 260;
const BODY_LIMIT_BYTES = 256 * 1024;
const CONCURRENCY = 4;
/** Generous: the scripted engine keeps nothing per request, so real growth would be a leak. */
const HEAP_GROWTH_LIMIT_BYTES = 24 * 1024 * 1024;

interface Probe {
  family: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Must be refused (a 4xx), not merely answered without a 5xx: each once got a 200 or a 500. */
  mustRefuse?: boolean;
}

/** (status, wire code) pairs docs/ERRORS.md documents, read from its table. */
function documentedErrors(): Set<string> {
  const doc = readFileSync(new URL("../../docs/ERRORS.md", import.meta.url), "utf8");
  const pairs = new Set<string>();
  for (const match of doc.matchAll(/^\| [A-Z_]+ \| (\d{3}) \| `([^`]+)` \|/gm)) pairs.add(`${match[1]} ${match[2]}`);
  return pairs;
}

const HI = [{ role: "user", content: "hi" }];
const json = (value: unknown) => JSON.stringify(value);
const withBody = (family: string, fields: Record<string, unknown>): Probe => ({ family, body: json({ messages: HI, ...fields }) });
const nested = (levels: number, open: string, close: string, inner: string) => open.repeat(levels) + inner + close.repeat(levels);

/** Every failure issue 10 reported, verbatim or nearly. */
function reportedFailures(): Probe[] {
  const probes: Probe[] = [];
  for (const seed of ['"1e999"', "1e400", "-1e400", '"Infinity"', '"-Infinity"', "Infinity", "-Infinity", "NaN", "1e300", '"NaN"']) {
    probes.push({ family: "seed", body: `{"messages":${json(HI)},"seed":${seed}}` });
  }
  const deepObjects = nested(3000, '{"type":"object","properties":{"a":', "}}", '{"type":"string"}');
  const deepArrays = nested(20000, "[", "]", "1");
  probes.push(
    { family: "deep", body: `{"messages":${json(HI)},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":${deepObjects}}}}` },
    { family: "deep", body: `{"messages":${json(HI)},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"array","items":${deepArrays}}}}}` },
    { family: "deep", body: `{"messages":[{"role":"user","content":${deepArrays}}]}` },
    { family: "deep", body: `{"messages":${json(HI)},"stop":${deepArrays}}` },
    { family: "deep", body: `{"messages":${json(HI)},"temperature":${deepArrays}}` },
    { family: "deep", path: "/v1/chat/completions", body: `{"messages":${json(HI)},"logit_bias":{"1":${deepArrays}}}` },
    { family: "deep", headers: { "extra-parameters": "pass-through" }, body: `{"messages":${json(HI)},"logit_bias":{"1":${deepArrays}}}` },
    { family: "deep", body: nested(200, '{"a":', "}", "1") },
    { family: "deep", body: `{"messages":${json(HI)},"tools":[{"type":"function","function":{"name":"f","parameters":${nested(60, '{"type":"array","items":', "}", "{}")}}}]}` },
    { family: "deep", body: `{"messages":${json(HI)},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":${nested(40, '{"type":"array","items":', "}", "{}")}}}}` },
  );
  // `model[]` is another parameter (ignored) and an empty name means the default deployment: both answer 200.
  for (const query of ["model=a&model=b", "model[]=a", "model=a&model=b&model=c", `model=${"x".repeat(5000)}`, "model=%00", "model="]) {
    const mustRefuse = !["model[]=a", "model="].includes(query);
    probes.push({ family: "info-query", method: "GET", path: `/info?${query}`, mustRefuse });
    probes.push({ family: "info-query", method: "GET", path: `/models/info?${query}`, mustRefuse });
  }
  for (const schema of [{ $ref: "#/$defs/missing" }, { $ref: "#/definitions/x" }, { $ref: "http://example.com/s.json" }, { $defs: { a: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" }, { $defs: { a: { anyOf: [{ $ref: "#/$defs/a" }] } }, $ref: "#/$defs/a" }, { type: "object", properties: { a: { $ref: "#/$defs/b" } } }, { $ref: 5 }, { $defs: [], $ref: "#/$defs/0" }]) {
    probes.push(withBody("json-schema", { response_format: { type: "json_schema", json_schema: { name: "x", schema } } }));
  }
  for (const id of [null, 5, true, [], {}, ""]) probes.push({ family: "tool-message", body: json({ messages: [...HI, { role: "tool", content: "42", tool_call_id: id }] }) });
  for (const [field, value] of [["temperature", ""], ["top_p", " "], ["max_tokens", ""], ["stop", 5], ["stop", [null]], ["stop", [1, 2]], ["stream", "maybe"], ["model", 5], ["temperature", "0.5"], ["temperature", true], ["max_tokens", "3"]] as const) {
    probes.push(withBody("coercion", { [field]: value }));
  }
  probes.push({ family: "coercion", body: json({ messages: [{ role: "user", content: 5 }] }) });
  probes.push({ family: "coercion", body: json({ messages: [{ role: "user", content: [{ type: "text", text: 5 }] }] }) });
  return probes.map((probe) => ({ ...probe, mustRefuse: probe.mustRefuse ?? !ACCEPTED_REPORTED.has(probe.body ?? "") }));
}

/** The reported-failure probes that are valid after all (lax-mode conversions; an empty id is a string). */
const ACCEPTED_REPORTED = new Set([
  json({ messages: HI, temperature: "0.5" }),
  json({ messages: HI, temperature: true }),
  json({ messages: HI, max_tokens: "3" }),
  json({ messages: [...HI, { role: "tool", content: "42", tool_call_id: "" }] }),
]);

/** A wrong (or borderline) value for every field of the body. */
function wrongTypes(): Probe[] {
  const values: unknown[] = ["", "abc", "1e999", " 0.5 ", 1e300, -1, 3, 1.5, 0, true, false, null, [], {}, [null], [[1]], { a: 1 }, "\u0000", "x".repeat(3000)];
  const fields = ["messages", "model", "temperature", "top_p", "frequency_penalty", "presence_penalty", "max_tokens", "stop", "stream", "seed", "response_format", "tools", "tool_choice"];
  return fields.flatMap((field) => values.map((value) => withBody("wrong-type", { [field]: value })));
}

function malformedJson(): Probe[] {
  const bodies = [
    "", " ", "{", "}", "[", "{\"messages\":", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]", "nul", "tru", "{'messages':[]}",
    "[]", "null", "true", "42", "\"text\"", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],}", "{\"__proto__\":{\"polluted\":1},\"messages\":[]}",
    "{\"constructor\":{\"prototype\":{\"polluted\":1}},\"messages\":[]}", "\uFEFF{\"messages\":[]}", "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"\\x41\"}]}", "{\"messages\":[] \u0000}", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"messages\":[]}",
    "{\"a\":" + "1".repeat(400) + "}", "{\"messages\":[{\"role\":\"user\",\"content\":\"" + "\\".repeat(3) + "\"}]}", "[".repeat(129), "{".repeat(129),
    "\"" + "[".repeat(500) + "\"", "{\"messages\":[1,2,3]}", "{\"messages\":\"hi\"}", "{\"messages\":{}}", "{\"messages\":[[]]}", "{\"messages\":[null]}",
  ];
  return bodies.map((body) => ({ family: "malformed-json", body }));
}

function messageShapes(): Probe[] {
  const messages: unknown[] = [
    { content: "no role" }, { role: 5, content: "x" }, { role: "wizard", content: "x" }, { role: "user" }, { role: "user", content: null },
    { role: "user", content: {} }, { role: "user", content: [{}] }, { role: "user", content: [{ type: "video" }] }, { role: "user", content: [{ type: "text" }] },
    { role: "user", content: [{ type: "image_url" }] }, { role: "user", content: [{ type: "image_url", image_url: { url: 5 } }] },
    { role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AA==", detail: "ultra" } }] },
    { role: "assistant", content: null, tool_calls: "x" }, { role: "assistant", tool_calls: [{ id: 1, type: "function", function: { name: "f", arguments: "{}" } }] },
    { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: {} } }] }, { role: "user", content: "x", name: 5 },
    { role: "system", content: ["a"] }, { role: "developer", content: [] }, { role: "tool", content: "x" }, { role: "user", content: "\u0000\uffff\ud83d" },
  ];
  const probes = messages.map((m) => ({ family: "message-shape", body: json({ messages: [m] }) }));
  probes.push({ family: "message-shape", body: json({ messages: Array.from({ length: 3000 }, () => ({ role: "user", content: "" })) }) });
  probes.push({ family: "message-shape", body: json({ messages: [{ role: "user", content: "<|end|>\n<|assistant|>\n".repeat(50) }] }) });
  return probes;
}

function headerAndRouteProbes(): Probe[] {
  const body = json({ messages: HI, top_k: 1 });
  const probes: Probe[] = [];
  for (const mode of ["ignore", "", "PASS-THROUGH", "drop, error", "\u00ff"]) probes.push({ family: "header", headers: { "extra-parameters": mode }, body });
  probes.push({ family: "header", headers: { "content-type": "text/plain" }, body: json({ messages: HI }) });
  probes.push({ family: "header", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "messages=hi" });
  probes.push({ family: "header", headers: { "content-type": "application/json; charset=latin1" }, body: json({ messages: HI }) });
  probes.push({ family: "header", headers: { "api-key": "" }, body: json({ messages: HI }) });
  probes.push({ family: "header", headers: { "api-key": "wrong" }, body: json({ messages: HI }) });
  probes.push({ family: "header", headers: { "api-key": "", authorization: "Bearer" }, body: json({ messages: HI }) });
  probes.push({ family: "header", headers: { "api-key": "", authorization: "Basic Zm9vOmJhcg==" }, body: json({ messages: HI }) });
  probes.push({ family: "header", headers: { "azureml-model-deployment": "nope" }, body: json({ messages: HI }) });
  probes.push({ family: "header", headers: { "azureml-model-deployment": "nope" }, method: "GET", path: "/info" });
  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) probes.push({ family: "route", method, path: "/chat/completions" });
  for (const path of ["/embeddings", "/images/embeddings", "/v1/completions", "/chat/completions/x", "/%2e%2e/etc/passwd", "/info/../health", "/models/models/info", "//chat/completions"]) {
    probes.push({ family: "route", path, body: json({ messages: HI }) });
  }
  probes.push({ family: "size", body: json({ messages: [{ role: "user", content: "x".repeat(BODY_LIMIT_BYTES) }] }) });
  probes.push({ family: "size", body: `{"messages":${json(HI)},"stop":"${"y".repeat(BODY_LIMIT_BYTES * 2)}"}` });
  probes.push({ family: "size", body: json({ messages: HI, max_tokens: 1e9 }) });
  probes.push({ family: "size", body: json({ messages: [{ role: "user", content: "x".repeat(20_000) }] }) });
  return probes;
}

/** Bodies built along the request schema, each field valid, wrong or absent at random. */
function randomBodies(random: SeededRandom): Probe[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random.nextFloat() * items.length)]!;
  const chance = (p: number) => random.nextFloat() < p;
  const anyValue = (depth: number): unknown => {
    switch (Math.floor(random.nextFloat() * (depth > 3 ? 6 : 8))) {
      case 0: return null;
      case 1: return chance(0.5);
      case 2: return pick([0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, -0, 7]);
      case 3: return pick(["", "0.5", "1e999", "true", "abc", "\u0000", "<|end|>", "Infinity", " 3 ", "x".repeat(200)]);
      case 4: return pick(["user", "assistant", "text", "json_schema", "function", "auto"]);
      case 5: return pick([[], {}, [null], [""]]);
      case 6: return Array.from({ length: Math.floor(random.nextFloat() * 4) }, () => anyValue(depth + 1));
      default: return Object.fromEntries(Array.from({ length: Math.floor(random.nextFloat() * 4) }, (_, i) => [pick(["type", "text", "role", "content", "name", `k${i}`]), anyValue(depth + 1)]));
    }
  };
  const message = (): unknown => {
    if (chance(0.1)) return anyValue(1);
    const m: Record<string, unknown> = { role: chance(0.85) ? pick(["system", "developer", "user", "assistant", "tool"]) : anyValue(2) };
    if (chance(0.9)) m.content = chance(0.6) ? pick(["hi", "", "a longer turn", "<|system|>"]) : chance(0.5) ? [{ type: "text", text: "part" }, anyValue(2)] : anyValue(2);
    if (chance(0.2)) m.tool_call_id = chance(0.5) ? "call_1" : anyValue(2);
    if (chance(0.1)) m.tool_calls = chance(0.5) ? [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] : anyValue(2);
    if (chance(0.1)) m.name = anyValue(2);
    return m;
  };
  const valid: Record<string, () => unknown> = {
    temperature: () => pick([0, 0.7, 2, "1"]),
    top_p: () => pick([0.5, 1, "0.9"]),
    frequency_penalty: () => pick([-2, 0, 1.5]),
    presence_penalty: () => pick([0, "0.1"]),
    max_tokens: () => pick([1, 3, "2", null]),
    stop: () => pick(["x", ["a", "b"], null]),
    stream: () => pick([true, false, "true"]),
    seed: () => pick([1, -5, "42", 2 ** 40]),
    model: () => pick(["phi-3.5-mini-instruct", "Phi-3.5-Mini-Instruct", "other"]),
    response_format: () => pick([{ type: "text" }, { type: "json_object" }, { type: "json_schema", json_schema: { name: "s", schema: { type: "object", properties: { a: { type: "string" } } } } }]),
    tools: () => [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
    tool_choice: () => pick(["auto", "none", "required"]),
  };
  const probes: Probe[] = [];
  for (let i = 0; i < RANDOM_BODIES; i++) {
    let body: unknown;
    if (chance(0.05)) body = anyValue(0);
    else {
      const b: Record<string, unknown> = {};
      if (chance(0.92)) b.messages = chance(0.9) ? Array.from({ length: 1 + Math.floor(random.nextFloat() * 3) }, message) : anyValue(1);
      for (const [field, make] of Object.entries(valid)) if (chance(0.25)) b[field] = chance(0.6) ? make() : anyValue(1);
      if (chance(0.15)) b[pick(["n", "logprobs", "top_logprobs", "logit_bias", "top_k", "unknown"])] = anyValue(1);
      body = b;
    }
    const headers: Record<string, string> = chance(0.3) ? { "extra-parameters": pick(["drop", "pass-through", "error", "bogus"]) } : {};
    probes.push({ family: "random", path: pick(["/chat/completions", "/models/chat/completions", "/v1/chat/completions"]), headers, body: json(body) });
  }
  return probes;
}

/** Malformed HTTP that Node's parser refuses before any route runs. */
const TRANSPORT_PROBES: { name: string; bytes: string }[] = [
  { name: "bad request line", bytes: "GARBAGE\r\n\r\n" },
  { name: "header without colon", bytes: "POST /chat/completions HTTP/1.1\r\nHost: x\r\nno-colon-here\r\n\r\n" },
  { name: "non-numeric content-length", bytes: "POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n" },
  { name: "content-length with transfer-encoding", bytes: "POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
  { name: "bad chunk size", bytes: "POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" },
  { name: "oversized header", bytes: `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n` },
  { name: "bad http version", bytes: "GET /health HTTP/9.9\r\nHost: x\r\n\r\n" },
  { name: "control byte in header", bytes: "GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\u0001b\r\n\r\n" },
];

/** Sends raw bytes; resolves with the status code of the answer (0 when the connection closed without one). */
function sendRaw(port: number, bytes: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let received = "";
    socket.setTimeout(10_000, () => socket.destroy(new Error("no answer to a malformed request within 10 s")));
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      if (received.includes("\r\n")) socket.destroy();
    });
    socket.on("error", (error) => (received ? undefined : reject(error)));
    socket.on("close", () => resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(received)?.[1] ?? 0)));
    socket.write(bytes, "latin1");
  });
}

/** A GC function: --expose-gc switched on at run time, so `node --test` needs no flag. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

test("hostile input: every answer is a documented 4xx in the Azure envelope (or a success), /health answers throughout, the heap holds", async (t) => {
  const documented = documentedErrors();
  const engines = createFakeEngineFactory({ tokens: ["{", "}"], contextLength: 4096 });
  const config = fakeServeConfig({ apiKeys: [KEY], bodyLimitBytes: BODY_LIMIT_BYTES }, { parallel: 4, maxQueue: 64, maxChoices: 4 });
  const app = await createApp(config, pino({ level: "silent" }), { engines });
  await app.deployments.default.load();
  const address = await app.http.listen({ host: "127.0.0.1", port: 0 });
  const port = Number(new URL(address).port);
  t.after(() => app.close());

  const probes = [...reportedFailures(), ...wrongTypes(), ...malformedJson(), ...messageShapes(), ...headerAndRouteProbes(), ...randomBodies(new SeededRandom(PRNG_SEED))];
  const histogram = new Map<string, number>();
  const failures: string[] = [];

  const send = async (probe: Probe): Promise<void> => {
    const method = probe.method ?? "POST";
    const headers: Record<string, string> = { "api-key": KEY, ...(probe.body !== undefined ? { "content-type": "application/json" } : {}), ...probe.headers };
    for (const [name, value] of Object.entries(headers)) if (value === "") delete headers[name];
    const res = await fetch(`http://127.0.0.1:${port}${probe.path ?? "/chat/completions"}`, { method, headers, ...(probe.body !== undefined && method !== "GET" ? { body: probe.body } : {}) });
    const text = await res.text();
    histogram.set(String(res.status), (histogram.get(String(res.status)) ?? 0) + 1);
    const where = `${probe.family} ${method} ${probe.path ?? "/chat/completions"} ${(probe.body ?? "").slice(0, 100)} → ${res.status} ${text.slice(0, 200)}`;
    if (res.status >= 500) return void failures.push(`5xx: ${where}`);
    if (res.status < 400) return void (probe.mustRefuse ? failures.push(`accepted: ${where}`) : undefined);
    let body: { error?: { code?: unknown; message?: unknown; status?: unknown } } | undefined;
    try {
      body = JSON.parse(text);
    } catch {
      return void failures.push(`not JSON: ${where}`);
    }
    const error = body?.error;
    if (typeof error?.code !== "string" || typeof error.message !== "string") return void failures.push(`not the Azure envelope: ${where}`);
    if (!documented.has(`${res.status} ${error.code}`)) failures.push(`undocumented status/code: ${where}`);
    if (res.headers.get("x-ms-error-code") !== error.code) failures.push(`x-ms-error-code differs: ${where}`);
  };

  let running = true;
  let healthChecks = 0;
  const health = (async () => {
    while (running) {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      await res.text();
      if (res.status !== 200) failures.push(`/health answered ${res.status}`);
      healthChecks++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();

  const runRound = async () => {
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < probes.length) await send(probes[next++]!);
    }));
  };
  const gc = exposeGc();
  await runRound(); // warms every path (compiled validators, caches)
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  await runRound();
  gc();
  const heapAfter = process.memoryUsage().heapUsed;

  const transport: string[] = [];
  for (const probe of TRANSPORT_PROBES) {
    const status = await sendRaw(port, probe.bytes);
    transport.push(`${probe.name}: ${status}`);
    if (![400, 431, 0].includes(status) && status >= 400) failures.push(`transport ${probe.name} → ${status}`);
    if (status >= 500) failures.push(`transport 5xx: ${probe.name}`);
  }
  running = false;
  await health;
  const final = await fetch(`http://127.0.0.1:${port}/health`);
  assert.equal(final.status, 200, "the server still answers /health");

  const sorted = [...histogram].sort(([a], [b]) => a.localeCompare(b));
  t.diagnostic(`${probes.length} probes × 2 rounds; statuses ${sorted.map(([s, n]) => `${s}: ${n}`).join(", ")}`);
  t.diagnostic(`transport-level (Node's HTTP parser; no envelope expected): ${transport.join("; ")}`);
  t.diagnostic(`/health answered ${healthChecks} times; heapUsed after GC ${(heapBefore / 2 ** 20).toFixed(1)} → ${(heapAfter / 2 ** 20).toFixed(1)} MiB`);
  assert.deepEqual(failures, []);
  assert.ok(probes.length >= 400, `only ${probes.length} probes`);
  const refusals = sorted.filter(([s]) => s.startsWith("4")).reduce((sum, [, n]) => sum + n, 0) / 2;
  assert.ok(refusals >= 400, `only ${refusals} 4xx answers per round`);
  assert.ok(healthChecks > 0);
  assert.ok(heapAfter - heapBefore < HEAP_GROWTH_LIMIT_BYTES, `heap grew ${heapAfter - heapBefore} bytes over a round`);
});
