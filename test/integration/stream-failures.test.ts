/**
 * Streams that end badly must say so, in every official client: a stream the request timeout or
 * the drain timeout cuts ends with an error frame and then the connection ends, with neither
 * `data: [DONE]` nor HTTP's last chunk (docs/AZURE-API.md "Streaming"). The Azure JS client's
 * documented loop and the openai SDK are run here against the real CLI (the Python clients in
 * python-clients.test.ts); a non-streamed request the drain timeout cuts gets a 503 JSON.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import ModelClient from "@azure-rest/ai-inference";
import { AzureKeyCredential } from "@azure/core-auth";
import { createSseStream } from "@azure/core-sse";
import OpenAI from "openai";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "stream-failure-key-0123456789";
let model: string;
/** Cuts every chat request after 1 s; without max_tokens the test model writes to its context size (seconds). */
let cutting: RunningServer;
const MESSAGES = [{ role: "user" as const, content: "How many languages are in the world?" }];

before(async () => {
  model = await ensureTestModel();
  cutting = await startServer(["--model", model, "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY, "--request-timeout", "1"]);
  await warmUp(cutting);
});

/** One short request, so the model is loaded before a test's 1 s deadline starts counting. */
async function warmUp(server: RunningServer): Promise<void> {
  const res = await fetch(`${server.url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json", "api-key": KEY }, body: JSON.stringify({ messages: MESSAGES, max_tokens: 1 }) });
  assert.equal(res.status, 200, await res.text());
}
after(async () => cutting?.close());

test("Azure JS client, the documented streaming loop: a cut stream throws instead of ending quietly", async () => {
  const client = ModelClient(cutting.url, new AzureKeyCredential(KEY), { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } });
  const response = await client.path("/chat/completions").post({ body: { messages: MESSAGES, temperature: 0, stream: true } }).asNodeStream();
  assert.equal(response.status, "200");
  const events: string[] = [];
  // The loop of examples/azure-js-sample.ts, with the Python client's guard for frames without choices
  // (so what ends it is the connection, not a parse of the error frame).
  await assert.rejects(async () => {
    for await (const event of createSseStream(response.body as IncomingMessage)) {
      events.push(event.data);
      if (event.data === "[DONE]") break;
      const chunk = JSON.parse(event.data);
      for (const choice of chunk.choices ?? []) void choice.delta?.content;
    }
  });
  assert.ok(events.length > 1);
  assert.ok(!events.includes("[DONE]"), "no [DONE] after a failure");
  const last = JSON.parse(events.at(-1)!);
  assert.equal(last.error.code, "timeout");
});

test("openai SDK (JS): a cut stream raises APIError with the server's message", async () => {
  const openai = new OpenAI({ baseURL: `${cutting.url}/v1`, apiKey: KEY, maxRetries: 0 });
  let chunks = 0;
  await assert.rejects(
    async () => {
      for await (const chunk of await openai.chat.completions.create({ model: "phi-3.5-mini-instruct", messages: MESSAGES, temperature: 0, stream: true })) {
        chunks += chunk.choices.length;
      }
    },
    (error: unknown) => error instanceof OpenAI.APIError && /request timeout/.test(error.message),
  );
  assert.ok(chunks > 1);
});

/** Resolves once the server has logged `count` lines matching `pattern` (debug logs on stderr). */
async function logged(server: RunningServer, pattern: RegExp, count: number): Promise<void> {
  const seen = () => server.logs().split("\n").filter((line) => pattern.test(line)).length >= count;
  while (!seen()) {
    const ended = await Promise.race([once(server.process.stderr!, "data").then(() => undefined), server.exited()]);
    if (ended && !seen()) throw new Error(`the server ended (${ended[0] ?? ended[1]}) before logging ${pattern} ${count} times\n${server.logs()}`);
  }
}

/** Reads a streamed body as text until it ends or fails; says which. */
async function readAll(res: Response): Promise<{ text: string; failed: boolean }> {
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const bytes of res.body!) text += decoder.decode(bytes, { stream: true });
    return { text, failed: false };
  } catch {
    return { text, failed: true };
  }
}

test("SIGTERM past --drain-timeout: a running stream gets an error frame and no [DONE], a running non-streamed request a 503 JSON", async () => {
  const server = await startServer(["--model", model, "--model-name", "phi-3.5-mini-instruct", "--parallel", "2", "--drain-timeout", "1", "--log-level", "debug"]);
  try {
    await warmUp(server);
    const post = (stream: boolean) =>
      fetch(`${server.url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: MESSAGES, temperature: 0, stream }) });
    const plain = post(false);
    const streamed = await post(true);
    assert.equal(streamed.status, 200);
    const body = readAll(streamed);
    // Both admitted (generating): now the drain timeout cuts them.
    await logged(server, /"event":"scheduler\.admitted"/, 2);
    server.process.kill("SIGTERM");
    const [{ text, failed }, cut] = await Promise.all([body, plain]);
    const frames = text.split("\n\n").filter(Boolean);
    assert.ok(frames.every((f) => f.startsWith("data: {")), "no [DONE], only JSON frames");
    const last = JSON.parse(frames.at(-1)!.slice("data: ".length));
    assert.equal(last.error.code, "overloaded");
    assert.match(last.error.message, /shutting down/);
    assert.ok(failed, "the body ends without HTTP's last chunk");
    assert.equal(cut.status, 503);
    assert.equal(cut.headers.get("x-ms-error-code"), "overloaded");
    const json = (await cut.json()) as { error: { code: string; message: string } };
    assert.equal(json.error.code, "overloaded");
    assert.match(json.error.message, /shutting down/);
    const [code, signal] = await server.exited();
    assert.equal(signal, null, `the server died of ${signal}\n${server.logs().split("\n").slice(-20).join("\n")}`);
    assert.equal(code, 0);
  } finally {
    await server.close();
  }
});
