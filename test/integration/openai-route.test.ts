/**
 * OpenAI fidelity of /v1/chat/completions, and what the Azure routes keep, against the real CLI
 * (seeded Phi-3 test model): `max_completion_tokens`, `stream_options.include_usage`, the model
 * name rule, 405 for other methods (docs/AZURE-API.md "OpenAI route", docs/ERRORS.md).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "openai-route-key-0123456789";
let server: RunningServer;
const MESSAGES = [{ role: "user", content: "Hello" }];

before(async () => {
  server = await startServer(["--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY, "--deployment", "phi35-test", "--parallel", "2"]);
});
after(async () => server?.close());

const post = (path: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", "api-key": KEY, ...headers }, body: JSON.stringify(body) });

/** The JSON frames of an SSE body, and whether it ended with `[DONE]`. */
async function frames(res: Response): Promise<{ chunks: Record<string, any>[]; done: boolean }> {
  const events = (await res.text()).split("\n\n").filter(Boolean).map((e) => e.slice("data: ".length));
  const done = events.at(-1) === "[DONE]";
  return { chunks: events.filter((e) => e !== "[DONE]").map((e) => JSON.parse(e)), done };
}

test("other methods than POST on the chat routes: 405 with allow: POST, in the error envelope", async () => {
  for (const path of ["/chat/completions", "/models/chat/completions", "/v1/chat/completions"]) {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const res = await fetch(`${server.url}${path}`, { method, headers: { "api-key": KEY } });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), "POST");
      assert.equal(res.headers.get("x-ms-error-code"), "method_not_allowed");
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "method_not_allowed");
    }
  }
});

test("/v1 accepts the served model's names (deployment, catalog id, Azure name) and answers another with 404 model_not_found", async () => {
  for (const model of ["phi35-test", "phi-3.5-mini-instruct", "Phi-3.5-Mini-Instruct", "PHI35-TEST"]) {
    assert.equal((await post("/v1/chat/completions", { model, messages: MESSAGES, max_tokens: 1 })).status, 200, model);
  }
  const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  await assert.rejects(openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], max_tokens: 1 }), (error: unknown) => {
    assert.ok(error instanceof OpenAI.NotFoundError);
    assert.equal(error.code, "model_not_found");
    assert.equal(error.param, "model");
    assert.match(error.message, /The model `gpt-4o` does not exist or you do not have access to it\./);
    return true;
  });
  // A single-model Azure endpoint ignores the body's model, as serverless Azure endpoints do.
  assert.equal((await post("/chat/completions", { model: "gpt-4o", messages: MESSAGES, max_tokens: 1 })).status, 200);
});

test("max_completion_tokens is honoured on /v1 and the Azure routes; disagreeing with max_tokens is refused", async () => {
  for (const path of ["/v1/chat/completions", "/chat/completions", "/models/chat/completions"]) {
    const res = await post(path, { messages: MESSAGES, max_completion_tokens: 3, temperature: 0 });
    assert.equal(res.status, 200, path);
    const body = (await res.json()) as { usage: { completion_tokens: number }; choices: { finish_reason: string }[] };
    assert.equal(body.usage.completion_tokens, 3, path);
    assert.equal(body.choices[0]?.finish_reason, "length");
  }
  const same = (await (await post("/v1/chat/completions", { messages: MESSAGES, max_tokens: 2, max_completion_tokens: 2 })).json()) as { usage: { completion_tokens: number } };
  assert.equal(same.usage.completion_tokens, 2);
  const both = await post("/v1/chat/completions", { messages: MESSAGES, max_tokens: 2, max_completion_tokens: 5 });
  assert.equal(both.status, 422);
  const error = ((await both.json()) as { error: { code: string; message: string; param: string } }).error;
  assert.equal(error.message, "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.");
  assert.equal(error.param, "max_tokens");
  assert.equal((await post("/v1/chat/completions", { messages: MESSAGES, max_completion_tokens: -1 })).status, 422);
});

test("/v1 streams: usage only with stream_options.include_usage, as OpenAI sends it (null on every chunk, then one choices-less chunk)", async () => {
  const request = { model: "phi35-test", messages: MESSAGES, max_tokens: 4, temperature: 0, stream: true };
  const plain = await frames(await post("/v1/chat/completions", request));
  assert.ok(plain.done);
  assert.ok(plain.chunks.every((c) => !("usage" in c)), "no usage unless asked");
  assert.equal(plain.chunks.at(-1)?.choices[0].finish_reason, "length");

  const asked = await frames(await post("/v1/chat/completions", { ...request, stream_options: { include_usage: true } }));
  assert.ok(asked.done);
  assert.equal(asked.chunks.length, plain.chunks.length + 1);
  const usageChunk = asked.chunks.at(-1)!;
  assert.deepEqual(usageChunk.choices, []);
  assert.deepEqual(usageChunk.usage, { prompt_tokens: usageChunk.usage.prompt_tokens, completion_tokens: 4, total_tokens: usageChunk.usage.prompt_tokens + 4 });
  assert.equal(usageChunk.id, asked.chunks[0]!.id);
  for (const chunk of asked.chunks.slice(0, -1)) assert.equal(chunk.usage, null);
  assert.equal(asked.chunks.at(-2)?.choices[0].finish_reason, "length");

  const notStreaming = await post("/v1/chat/completions", { ...request, stream: false, stream_options: { include_usage: true } });
  assert.equal(notStreaming.status, 422);
  assert.equal(((await notStreaming.json()) as { error: { param: string } }).error.param, "stream_options");
  assert.equal((await post("/v1/chat/completions", { ...request, stream_options: { include_usage: "yes" } })).status, 422);
});

test("the Azure routes keep Azure's shape: usage on the finish chunk, always; stream_options is an extra parameter", async () => {
  const request = { messages: MESSAGES, max_tokens: 4, temperature: 0, stream: true };
  const azure = await frames(await post("/chat/completions", request));
  assert.ok(azure.done);
  const last = azure.chunks.at(-1)!;
  assert.equal(last.choices[0].finish_reason, "length");
  assert.equal(last.usage.completion_tokens, 4);
  assert.ok(azure.chunks.slice(0, -1).every((c) => !("usage" in c)));
  assert.equal((await post("/chat/completions", { ...request, stream_options: { include_usage: true } })).status, 400);
  const passed = await frames(await post("/chat/completions", { ...request, stream_options: { include_usage: true } }, { "extra-parameters": "pass-through" }));
  assert.equal(passed.chunks.length, azure.chunks.length);
  assert.equal(passed.chunks.at(-1)?.usage.completion_tokens, 4);
});
