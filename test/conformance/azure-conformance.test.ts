/**
 * The conformance cases of docs/AZURE-API.md "Conformance cases" that the core server covers,
 * numbered as there, sent as raw HTTP to a real phiserve process (seeded Phi-3 test model).
 * Cases 27–28 (vision) run against a second process serving the generated Phi-3-vision test model as
 * Phi-3.5-vision. Cases 21–22 (logprobs, n), 34–37 (content safety, quotas) and 40 (multiple
 * deployments) are covered elsewhere or by later issues.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { ensurePhi3vTestModel } from "../../src/model-factory/phi3v-test-model.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "conformance-key-0123456789";
let server: RunningServer;

let vision: RunningServer;

before(async () => {
  [server, vision] = await Promise.all([
    startServer(["--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY]),
    startServer(["--model", await ensurePhi3vTestModel(), "--model-name", "phi-3.5-vision-instruct", "--api-key", KEY], { timeoutMs: 120_000 }),
  ]);
});
after(async () => Promise.all([server?.close(), vision?.close()]));

interface Call {
  method?: string;
  path?: string;
  body?: unknown;
  headers?: Record<string, string>;
  apiVersion?: string | null;
  /** Another server than the Phi-3.5-mini one. */
  base?: string;
}

async function call({ method = "POST", path = "/chat/completions", body, headers = {}, apiVersion = "2024-05-01-preview", base }: Call) {
  const url = new URL((base ?? server.url) + path);
  if (apiVersion) url.searchParams.set("api-version", apiVersion);
  const res = await fetch(url, {
    method,
    headers: { "api-key": KEY, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  const json = res.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : undefined;
  return { status: res.status, headers: res.headers, text, json };
}

const hi = { messages: [{ role: "user", content: "hi" }], max_tokens: 4 };

test("#1 GET /info with api-key; #2 with only Authorization: Bearer", async () => {
  for (const headers of [{}, { "api-key": "", authorization: `Bearer ${KEY}` }] as Record<string, string>[]) {
    const res = await call({ method: "GET", path: "/info", headers });
    assert.equal(res.status, 200);
    assert.equal(res.json.model_type, "chat-completion");
    assert.equal(res.json.model_provider_name, "Microsoft");
    assert.equal(res.json.model_name, "Phi-3.5-Mini-Instruct");
  }
});

test("#3 GET /info without auth → 401 with a message; #4 wrong key in both headers → 401", async () => {
  const none = await call({ method: "GET", path: "/info", headers: { "api-key": "" } });
  assert.equal(none.status, 401);
  assert.ok(none.json.message && none.json.error.message);
  const wrong = await call({ body: hi, headers: { "api-key": "bad", authorization: "Bearer bad" } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get("x-ms-error-code"), "invalid_api_key");
});

test("#5 minimal chat; #6 request ids; #7 /models prefix; #8 no api-version", async () => {
  for (const [path, apiVersion] of [["/chat/completions", "2024-05-01-preview"], ["/models/chat/completions", "2025-04-01"], ["/chat/completions", null]] as const) {
    const res = await call({ path, apiVersion, body: { messages: [{ role: "user", content: "hi" }] , max_tokens: 8 }, headers: { "x-ms-client-request-id": "conf-6" } });
    assert.equal(res.status, 200, path);
    assert.equal(res.json.object, "chat.completion");
    assert.equal(res.json.choices[0].message.role, "assistant");
    assert.ok(["stop", "length"].includes(res.json.choices[0].finish_reason));
    assert.ok(Number.isInteger(res.json.created));
    assert.equal(res.json.usage.total_tokens, res.json.usage.prompt_tokens + res.json.usage.completion_tokens);
    assert.equal(res.headers.get("x-ms-client-request-id"), "conf-6");
    assert.ok(res.headers.get("x-request-id"));
  }
});

test("#9 max_tokens 1 with a long prompt → length; #10 stop as list and string", async () => {
  const res = await call({ body: { messages: [{ role: "user", content: "lorem ipsum ".repeat(100) }], max_tokens: 1 } });
  assert.equal(res.json.choices[0].finish_reason, "length");
  assert.ok(res.json.usage.completion_tokens <= 1);
  for (const stop of [["\n"], "\n"]) assert.equal((await call({ body: { ...hi, stop } })).status, 200);
});

test("#11 system + user on Phi-3.5-mini → 200 (system sent as a user message)", async () => {
  const res = await call({ body: { messages: [{ role: "system", content: "Be terse." }, { role: "user", content: "hi" }], max_tokens: 2 } });
  assert.equal(res.status, 200);
});

test("#12–#15 validation → 422 with loc", async () => {
  const cases: [unknown, unknown[]][] = [
    [{ messages: [] }, ["body", "messages"]],
    [{ max_tokens: 3 }, ["body", "messages"]],
    ['"a JSON string"', ["body"]],
    ["{oops", ["body"]],
    [{ ...hi, temperature: 3 }, ["body", "temperature"]],
    [{ ...hi, top_p: 1.5 }, ["body", "top_p"]],
    [{ ...hi, frequency_penalty: -3 }, ["body", "frequency_penalty"]],
    [{ ...hi, max_tokens: -1 }, ["body", "max_tokens"]],
  ];
  for (const [body, loc] of cases) {
    const res = await call({ body });
    assert.equal(res.status, 422, JSON.stringify(body));
    assert.ok(res.json.error.details.some((d: { loc: unknown[] }) => JSON.stringify(d.loc) === JSON.stringify(loc)), JSON.stringify(res.json));
  }
  const missing = await call({ body: { max_tokens: 3 } });
  assert.equal(missing.json.error.details[0].type, "missing");
});

test("#16–#20 extra-parameters", async () => {
  const body = { ...hi, top_k: 5 };
  for (const headers of [{}, { "extra-parameters": "error" }] as Record<string, string>[]) {
    const res = await call({ body, headers });
    assert.equal(res.status, 400);
    assert.match(res.json.error.message, /Extra parameters \['top_k'\] are not allowed/);
  }
  assert.equal((await call({ body, headers: { "extra-parameters": "drop" } })).status, 200);
  assert.equal((await call({ body, headers: { "extra-parameters": "pass-through" } })).status, 200);
  const bad = await call({ body, headers: { "extra-parameters": "ignore" } });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /\['error', 'drop', 'pass-through'\]/);
});

test("#23–#24 JSON output: the lenient configured 200 (grammar-constrained, parses); json_schema without name → 422; #25 tools on Phi-3.5-mini → 422", async () => {
  // phiserve's default JSON policy goes beyond Azure: output is guaranteed JSON (`--json-policy azure` gives the 422).
  for (const response_format of [{ type: "json_object" }, { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] } } }]) {
    const res = await call({ body: { ...hi, max_tokens: 40, temperature: 0, response_format } });
    assert.equal(res.status, 200);
    if (res.json.choices[0].finish_reason === "stop") assert.doesNotThrow(() => JSON.parse(res.json.choices[0].message.content));
  }
  const unnamed = await call({ body: { ...hi, response_format: { type: "json_schema", json_schema: { schema: {} } } } });
  assert.equal(unnamed.status, 422);
  assert.deepEqual(unnamed.json.error.details[0].loc, ["body", "response_format", "json_schema", "name"]);
  const tools = await call({ body: { ...hi, tools: [{ type: "function", function: { name: "f", parameters: {} } }] } });
  assert.equal(tools.status, 422);
  assert.equal(tools.json.error.code, "parameter_not_supported");
});

test("#26 tool round trip messages are accepted; a tool message without tool_call_id → 422", async () => {
  const call1 = { id: "call_1", type: "function", function: { name: "f", arguments: "{}" } };
  const ok = await call({ body: { messages: [{ role: "user", content: "x" }, { role: "assistant", content: null, tool_calls: [call1] }, { role: "tool", tool_call_id: "call_1", content: "42" }], max_tokens: 2 } });
  assert.equal(ok.status, 200);
  const bad = await call({ body: { messages: [{ role: "user", content: "x" }, { role: "tool", content: "42" }] } });
  assert.equal(bad.status, 422);
});

test("#27 one image on Phi-3.5-vision → 200; #28 two images in the turn → 400", async () => {
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
  const image = { type: "image_url", image_url: { url: `data:image/png;base64,${png.toString("base64")}`, detail: "low" } };
  const text = { type: "text", text: "What is in this image?" };
  const one = await call({ base: vision.url, body: { messages: [{ role: "user", content: [text, image] }], max_tokens: 2 } });
  assert.equal(one.status, 200);
  assert.equal(one.json.model, "Phi-3.5-vision-Instruct");
  // At num_crops 16 a 64×48 image is upscaled to 1344×1008 (4×3 tiles): (12 + 1)·144 + 1 + 4·12 = 1921 image tokens.
  const textOnly = await call({ base: vision.url, body: { messages: [{ role: "user", content: "What is in this image?" }], max_tokens: 2 } });
  assert.equal(one.json.usage.prompt_tokens, textOnly.json.usage.prompt_tokens + 1921);
  const two = await call({ base: vision.url, body: { messages: [{ role: "user", content: [text, image, image] }], max_tokens: 2 } });
  assert.equal(two.status, 400);
  assert.equal(two.json.error.code, "invalid_image");
  assert.match(two.json.error.message, /one image per turn/);
});

test("#29–#30 stream framing: data lines, LF, role first, shared id, finish_reason+usage last, [DONE], EOF", async () => {
  const res = await call({ body: { ...hi, max_tokens: 6, stream: true } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.doesNotMatch(res.text, /\r/);
  assert.ok(res.text.endsWith("data: [DONE]\n\n"));
  const lines = res.text.split("\n").filter(Boolean);
  assert.ok(lines.every((l) => l.startsWith("data: ")));
  const chunks = lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)));
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
  const last = chunks.at(-1);
  assert.ok(last.choices[0].finish_reason);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  assert.ok(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null && c.usage === undefined));
});

test("#33 stream with an invalid body → JSON 422, not SSE", async () => {
  const res = await call({ body: { messages: [], stream: true } });
  assert.equal(res.status, 422);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
});

test("#38 prompt + max_tokens over the context → 400 maximum context length", async () => {
  const res = await call({ body: { ...hi, max_tokens: 4096 } });
  assert.equal(res.status, 400);
  assert.match(res.json.error.message, /maximum context length/);
});

test("#39 POST /embeddings on a chat model → 404", async () => {
  assert.equal((await call({ path: "/embeddings", body: { input: ["x"] } })).status, 404);
});
