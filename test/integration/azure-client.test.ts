/**
 * The official Azure JS client (@azure-rest/ai-inference) against a real phiserve process
 * serving a seeded Phi-3 test model through node-llama-cpp. Random weights: assertions are on
 * mechanics (shapes, exact counts, determinism), never on wording.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import ModelClient, { isUnexpected, type ModelClient as Client } from "@azure-rest/ai-inference";
import { AzureKeyCredential } from "@azure/core-auth";
import { createSseStream } from "@azure/core-sse";
import llamaTokenizer from "llama-tokenizer-js";
import { readGgufFileInfo } from "node-llama-cpp";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "integration-key-0123456789";
let server: RunningServer;
let client: Client;
let modelPath: string;

const clientFor = (endpoint: string, key = KEY): Client =>
  ModelClient(endpoint, new AzureKeyCredential(key), { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } });

before(async () => {
  modelPath = await ensureTestModel();
  server = await startServer(["--model", modelPath, "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY, "--parallel", "2"]);
  client = clientFor(server.url);
});
after(async () => server?.close());

async function complete(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await client.path("/chat/completions").post({ body: body as never, headers });
  return res;
}

test("GET /info through the client, at / and under /models", async () => {
  for (const endpoint of [server.url, `${server.url}/models`]) {
    const res = await clientFor(endpoint).path("/info").get();
    assert.equal(res.status, "200");
    if (isUnexpected(res)) throw res.body.error;
    assert.deepEqual(res.body, { model_name: "Phi-3.5-Mini-Instruct", model_type: "chat-completion", model_provider_name: "Microsoft" });
  }
});

test("a wrong key is refused with 401", async () => {
  const res = await clientFor(server.url, "wrong-key").path("/info").get();
  assert.equal(res.status, "401");
});

test("chat completion: documented shape, exact prompt token count, echoed client request id", async () => {
  const res = await complete({ messages: [{ role: "user", content: "Hello world" }], max_tokens: 8, temperature: 0 });
  if (isUnexpected(res)) throw res.body.error;
  const body = res.body;
  assert.equal((body as unknown as { object: string }).object, "chat.completion");
  assert.equal(body.model, "Phi-3.5-Mini-Instruct");
  assert.equal(body.choices.length, 1);
  assert.equal(body.choices[0]?.message.role, "assistant");
  assert.ok(["stop", "length"].includes(body.choices[0]!.finish_reason!));
  assert.ok(body.usage.completion_tokens >= 1 && body.usage.completion_tokens <= 8);
  assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
  // "<|user|>\nHello world<|end|>\n<|assistant|>\n": three special tokens (llama.cpp strips the "\n"
  // after Phi-3 specials, rstrip) + the SentencePiece tokens of the text, counted independently.
  assert.equal(body.usage.prompt_tokens, 3 + llamaTokenizer.encode("Hello world", false, true).length);
  assert.ok(res.headers["x-request-id"]);
  assert.ok(res.request.headers.get("x-ms-client-request-id"));
  assert.equal(res.headers["x-ms-client-request-id"], res.request.headers.get("x-ms-client-request-id"));
});

test("the Azure docs' REST sample counts 19 prompt tokens on Phi-3.5-mini, as Azure reports", async () => {
  // The messages of the docs' REST sample, exactly (Azure answers it with usage.prompt_tokens 19). Phi-3.5-mini
  // does not support the system role, so the system message becomes a user message of its own:
  // "<|user|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHow many languages are in the world?<|end|>\n<|assistant|>\n"
  // (folding it into the user turn gives 18). `max_tokens` is the only addition to the sample's body: it leaves the
  // prompt alone and keeps the random-weight generation short (without it the model writes up to its context size).
  const system = "You are a helpful assistant.";
  const user = "How many languages are in the world?";
  // Like the real Phi-3.5 GGUFs, the test model asks for no BOS, so the rendered prompt is all there is.
  const gguf = await readGgufFileInfo(modelPath, { readTensorInfo: false });
  assert.equal((gguf.metadata as unknown as { tokenizer: { ggml: { add_bos_token: boolean } } }).tokenizer.ggml.add_bos_token, false);
  const res = await complete({ messages: [{ role: "system", content: system }, { role: "user", content: user }], max_tokens: 1 });
  if (isUnexpected(res)) throw res.body.error;
  assert.equal(res.body.usage.prompt_tokens, 19);
  // The same figure counted independently: five special tokens (llama.cpp strips the "\n" after Phi-3 specials)
  // + the SentencePiece tokens of each text.
  assert.equal(res.body.usage.prompt_tokens, 5 + llamaTokenizer.encode(system, false, true).length + llamaTokenizer.encode(user, false, true).length);
});

test("temperature 0 is deterministic, and the stream carries the same text as the JSON response", async () => {
  const body = { messages: [{ role: "user", content: "Count to three" }], max_tokens: 16, temperature: 0, seed: 1 };
  const a = await complete(body);
  const b = await complete(body);
  if (isUnexpected(a) || isUnexpected(b)) throw new Error("unexpected status");
  assert.equal(a.body.choices[0]?.message.content, b.body.choices[0]?.message.content);

  const stream = await client.path("/chat/completions").post({ body: { ...body, stream: true } }).asNodeStream();
  assert.equal(stream.status, "200");
  let text = "";
  let last: { choices: { finish_reason: string | null }[]; usage?: { completion_tokens: number; prompt_tokens: number } } | undefined;
  for await (const event of createSseStream(stream.body as IncomingMessage)) {
    if (event.data === "[DONE]") break;
    const chunk = JSON.parse(event.data);
    for (const choice of chunk.choices) text += choice.delta?.content ?? "";
    last = chunk;
  }
  assert.equal(text, a.body.choices[0]?.message.content);
  assert.equal(last?.choices[0]?.finish_reason, a.body.choices[0]?.finish_reason);
  assert.equal(last?.usage?.completion_tokens, a.body.usage.completion_tokens);
  assert.equal(last?.usage?.prompt_tokens, a.body.usage.prompt_tokens);
});

test("the same seed gives the same text at temperature 1", async () => {
  const body = { messages: [{ role: "user", content: "Tell me a story" }], max_tokens: 12, temperature: 1, seed: 1234 };
  const [a, b] = await Promise.all([complete(body), complete(body)]);
  if (isUnexpected(a) || isUnexpected(b)) throw new Error("unexpected status");
  assert.equal(a.body.choices[0]?.message.content, b.body.choices[0]?.message.content);
});

test("max_tokens 1 ends with length; stop as string or list is accepted", async () => {
  const one = await complete({ messages: [{ role: "user", content: "word ".repeat(200) }], max_tokens: 1 });
  if (isUnexpected(one)) throw one.body.error;
  assert.equal(one.body.choices[0]?.finish_reason, "length");
  assert.equal(one.body.usage.completion_tokens, 1);
  for (const stop of ["\n", ["\n", "."]]) {
    const res = await complete({ messages: [{ role: "user", content: "hi" }], max_tokens: 4, stop });
    assert.equal(res.status, "200");
  }
});

test("stop strings never appear in the output (stream or not)", async () => {
  const base = { messages: [{ role: "user", content: "Write a long answer" }], max_tokens: 24, temperature: 0 };
  const free = await complete(base);
  if (isUnexpected(free)) throw free.body.error;
  const text = free.body.choices[0]!.message.content!;
  const stop = text.slice(6, 9); // a substring the model will produce, likely mid-token
  assert.ok(stop.trim().length > 0, `unexpected short output ${JSON.stringify(text)}`);
  const stopped = await complete({ ...base, stop: [stop] });
  if (isUnexpected(stopped)) throw stopped.body.error;
  assert.equal(stopped.body.choices[0]?.message.content, text.slice(0, text.indexOf(stop)));
  assert.equal(stopped.body.choices[0]?.finish_reason, "stop");
});

test("Azure error cases: 422 range, 400 extra parameter, pass-through/drop, 400 context, 404 route", async () => {
  const bad = await complete({ messages: [{ role: "user", content: "hi" }], temperature: 3 });
  assert.equal(bad.status, "422");
  assert.deepEqual((bad.body as unknown as { error: { details: { loc: string[] }[] } }).error.details[0]?.loc, ["body", "temperature"]);

  const extra = { messages: [{ role: "user", content: "hi" }], max_tokens: 2, top_k: 5 };
  const refused = await complete(extra);
  assert.equal(refused.status, "400");
  assert.match(JSON.stringify(refused.body), /Extra parameters \['top_k'\] are not allowed/);
  assert.equal((await complete(extra, { "extra-parameters": "drop" })).status, "200");
  assert.equal((await complete(extra, { "extra-parameters": "pass-through" })).status, "200");

  const long = await complete({ messages: [{ role: "user", content: "hi" }], max_tokens: 5000 });
  assert.equal(long.status, "400");
  assert.match(JSON.stringify(long.body), /maximum context length is 4096 tokens/);

  const embeddings = await client.path("/embeddings" as never).post({ body: { input: ["x"] } } as never);
  assert.equal((embeddings as { status: string }).status, "404");
});

test("the stream satisfies the Python client's strict SSE parser", async () => {
  const res = await fetch(`${server.url}/chat/completions?api-version=2024-05-01-preview`, {
    method: "POST",
    headers: { "api-key": KEY, "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 6, stream: true }),
  });
  const raw = await res.text();
  // azure-ai-inference's parser: split on "\n"; blank lines skipped; anything else must start with "data: ".
  const lines = raw.split("\n").filter((l) => l !== "");
  for (const line of lines) assert.ok(line.startsWith("data: "), `not a data line: ${JSON.stringify(line)}`);
  assert.doesNotMatch(raw, /\r/);
  assert.equal(lines.at(-1), "data: [DONE]");
  const chunks = lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)));
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  assert.ok(chunks.every((c) => c.choices.length === 1 && c.object === "chat.completion.chunk"));
  assert.ok(chunks.at(-1).usage && chunks.at(-1).choices[0].finish_reason);
});
