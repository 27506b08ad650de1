/**
 * The HTTP layer over a scripted engine (fastify inject, no sockets): wire shapes, headers and
 * every error mapping. Real inference is covered by test/integration.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { createApp, type App } from "../app.ts";
import { createFakeEngineFactory } from "../engine/fake/fake-engine-factory.ts";
import type { ServeConfig } from "../config/serve-config.ts";
import { fakeServeConfig } from "../../test/helpers/fake-config.ts";

const KEY = "unit-test-key";
const engines = createFakeEngineFactory({ tokens: ["Hel", "lo", " wor", "ld", "!"], contextLength: 200 });
let app: App;

const config: ServeConfig = fakeServeConfig({ apiKeys: [KEY], bodyLimitBytes: 2048 }, { jsonPolicy: "azure", maxChoices: 4 });

before(async () => {
  app = await createApp(config, pino({ level: "silent" }), { engines });
  await app.deployments.default.load();
});
after(async () => app.close());

const chat = (body: unknown, headers: Record<string, string> = {}, url = "/chat/completions") =>
  app.http.inject({ method: "POST", url, headers: { "api-key": KEY, "content-type": "application/json", ...headers }, payload: typeof body === "string" ? body : JSON.stringify(body) });

const user = [{ role: "user", content: "hi" }];

test("GET /info returns the Azure model name with either auth header", async () => {
  for (const headers of [{ "api-key": KEY }, { authorization: `Bearer ${KEY}` }]) {
    const res = await app.http.inject({ method: "GET", url: "/info?api-version=2024-05-01-preview", headers });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { model_name: "Phi-3.5-Mini-Instruct", model_type: "chat-completion", model_provider_name: "Microsoft" });
  }
});

test("missing or wrong keys give 401 with both envelopes and x-ms-error-code", async () => {
  for (const headers of [{}, { "api-key": "nope", authorization: "Bearer nope" }]) {
    const res = await app.http.inject({ method: "GET", url: "/models/info", headers });
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers["x-ms-error-code"], "invalid_api_key");
    assert.equal(res.json().error.code, "invalid_api_key");
    assert.match(res.json().message, /Auth token validation failed/);
  }
});

test("health needs no key; every response carries x-request-id and echoes x-ms-client-request-id", async () => {
  const res = await app.http.inject({ method: "GET", url: "/health", headers: { "x-ms-client-request-id": "abc-123" } });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers["x-request-id"]), /^[0-9a-f-]{36}$/);
  assert.equal(res.headers["x-ms-client-request-id"], "abc-123");
});

test("a chat completion has the documented shape and exact usage", async () => {
  const res = await chat({ messages: [{ role: "system", content: "Be terse." }, ...user], max_tokens: 10 });
  assert.equal(res.statusCode, 200);
  const body = res.json();
  assert.equal(body.object, "chat.completion");
  assert.match(body.id, /^[0-9a-f]{32}$/);
  assert.equal(Number.isInteger(body.created), true);
  assert.deepEqual(body.choices, [{ index: 0, message: { role: "assistant", content: "Hello world!", tool_calls: null }, finish_reason: "stop", logprobs: null }]);
  // Phi-3.5-mini: the system message becomes a user message of its own (Azure translates it).
  const prompt = engines.engines[0]!.requests.at(-1)?.prompt;
  assert.equal(prompt, "<|user|>\nBe terse.<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\n");
  assert.deepEqual(body.usage, { prompt_tokens: prompt!.length, completion_tokens: 5, total_tokens: prompt!.length + 5 });
});

test("max_tokens cuts with finish_reason length; stop strings are never emitted", async () => {
  const cut = (await chat({ messages: user, max_tokens: 2 })).json();
  assert.equal(cut.choices[0].finish_reason, "length");
  assert.equal(cut.choices[0].message.content, "Hello");
  assert.equal(cut.usage.completion_tokens, 2);
  for (const [stop, expected] of [["lo w", "Hel"], [["zz", "o wo"], "Hell"]] as const) {
    const res = (await chat({ messages: user, stop })).json();
    assert.equal(res.choices[0].message.content, expected);
    assert.equal(res.choices[0].finish_reason, "stop");
  }
});

test("numeric strings are accepted where numbers are expected", async () => {
  const res = await chat({ messages: user, presence_penalty: "0.1", temperature: "0", max_tokens: "3" });
  assert.equal(res.statusCode, 200);
  assert.equal(engines.engines[0]!.requests.at(-1)?.presencePenalty, 0.1);
  assert.equal(res.json().usage.completion_tokens, 3);
});

test("range and schema errors are 422 with pydantic-style loc", async () => {
  const cases: [unknown, (string | number)[], string][] = [
    [{ messages: user, temperature: 3 }, ["body", "temperature"], "less_than_equal"],
    [{ messages: user, top_p: 1.5 }, ["body", "top_p"], "less_than_equal"],
    [{ messages: user, frequency_penalty: -3 }, ["body", "frequency_penalty"], "greater_than_equal"],
    [{ messages: user, max_tokens: -1 }, ["body", "max_tokens"], "greater_than_equal"],
    [{ messages: [] }, ["body", "messages"], "too_short"],
    [{}, ["body", "messages"], "missing"],
    [{ messages: [{ role: "wizard", content: "x" }] }, ["body", "messages", 0, "role"], "literal_error"],
    [{ messages: [{ role: "tool", content: "x" }] }, ["body", "messages", 0, "tool_call_id"], "missing"],
    ['"just a string"', ["body"], "model_attributes_type"],
    ["{not json", ["body"], "json_invalid"],
  ];
  for (const [body, loc, type] of cases) {
    const res = await chat(body);
    assert.equal(res.statusCode, 422, JSON.stringify(body));
    assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
    const detail = res.json().error.details.find((d: { loc: unknown[] }) => JSON.stringify(d.loc) === JSON.stringify(loc));
    assert.ok(detail, `${JSON.stringify(body)} → ${JSON.stringify(res.json().error.details)}`);
    assert.equal(detail.type, type);
  }
});

test("extra-parameters: absent/error → 400 naming keys, drop → 200, pass-through → engine, bad value → 400", async () => {
  const body = { messages: user, top_k: 5, max_tokens: 1 };
  for (const headers of [{}, { "extra-parameters": "error" }] as Record<string, string>[]) {
    const res = await chat(body, headers);
    assert.equal(res.statusCode, 400);
    assert.match(res.json().error.message, /Extra parameters \['top_k'\] are not allowed/);
    assert.equal(res.json().detail, res.json().error.message);
  }
  assert.equal((await chat(body, { "extra-parameters": "drop" })).statusCode, 200);
  assert.equal((await chat(body, { "extra-parameters": "pass-through" })).statusCode, 200);
  const bad = await chat(body, { "extra-parameters": "ignore" });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().error.message, /\['error', 'drop', 'pass-through'\]/);
});

test("JSON output, tools and images on Phi-3.5-mini → 422 parameter_not_supported", async () => {
  const cases = [
    { messages: user, response_format: { type: "json_object" } },
    { messages: user, response_format: { type: "json_schema", json_schema: { name: "x", schema: {} } } },
    { messages: user, tools: [{ type: "function", function: { name: "f" } }] },
    { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] }] },
  ];
  for (const body of cases) {
    const res = await chat(body);
    assert.equal(res.statusCode, 422, JSON.stringify(body));
    assert.equal(res.json().error.code, "parameter_not_supported");
  }
  const unnamed = await chat({ messages: user, response_format: { type: "json_schema", json_schema: { schema: {} } } });
  assert.equal(unnamed.statusCode, 422);
  assert.equal(unnamed.json().error.code, "invalid_request");
});

test("prompts over the context window → 400 maximum context length", async () => {
  const res = await chat({ messages: [{ role: "user", content: "x".repeat(150) }], max_tokens: 100 });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().error.code, "context_length_exceeded");
  assert.match(res.json().error.message, /maximum context length is 200 tokens/);
});

test("oversized bodies → 413; unknown routes → 404", async () => {
  const big = await chat({ messages: [{ role: "user", content: "x".repeat(5000) }] });
  assert.equal(big.statusCode, 413);
  assert.equal(big.json().error.code, "payload_too_large");
  const missing = await app.http.inject({ method: "POST", url: "/embeddings", headers: { "api-key": KEY }, payload: {} });
  assert.equal(missing.statusCode, 404);
});

test("streams are strict SSE: data lines, LF only, role first, finish_reason+usage last, then [DONE]", async () => {
  const res = await chat({ messages: user, stream: true, max_tokens: 10 });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers["content-type"], "text/event-stream; charset=utf-8");
  assert.ok(res.headers["x-request-id"]);
  assert.doesNotMatch(res.body, /\r/);
  const events = res.body.split("\n\n").filter(Boolean);
  assert.equal(events.at(-1), "data: [DONE]");
  for (const e of events) assert.match(e, /^data: [^\n]+$/);
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  const last = chunks.at(-1);
  assert.equal(last.choices[0].finish_reason, "stop");
  assert.equal(last.usage.completion_tokens, 5);
  assert.equal(chunks.map((c) => c.choices[0].delta.content ?? "").join(""), "Hello world!");
});

test("a stream with an invalid body is a JSON 422, not SSE", async () => {
  const res = await chat({ messages: [], stream: true });
  assert.equal(res.statusCode, 422);
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
});

test("before the model is loaded /health is 503; a chat request loads it (shared with start-up) instead of failing", async () => {
  const freshEngines = createFakeEngineFactory({ tokens: ["ok"] });
  const loading = await createApp({ ...config, apiKeys: [] }, pino({ level: "silent" }), { engines: freshEngines });
  const fresh = freshEngines.engines[0]!;
  try {
    const health = await loading.http.inject({ method: "GET", url: "/health" });
    assert.equal(health.statusCode, 503);
    assert.equal(health.json().status, "loading");
    const res = await loading.http.inject({ method: "POST", url: "/chat/completions", payload: { messages: user } });
    assert.equal(res.statusCode, 200);
    assert.equal(fresh.isReady(), true);
    assert.equal((await loading.http.inject({ method: "GET", url: "/health" })).statusCode, 200);
  } finally {
    await loading.close();
  }
});
