/**
 * The openai SDK and the CLI against a real phiserve process (seeded Phi-3 test model):
 * OpenAI routes, the unchanged Azure JS sample, and the command-line contract.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { runCli, startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "openai-key-0123456789abcdef";
let server: RunningServer;
let model: string;

before(async () => {
  model = await ensureTestModel();
  server = await startServer(["--model", model, "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY, "--deployment", "phi35-test"], {
    env: { PHISERVE_API_KEYS: "second-key-abcdefghijklmnop" },
  });
});
after(async () => server?.close());

test("openai SDK: models list, chat, stream (same text as non-stream at temperature 0)", async () => {
  const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  const models = await openai.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ["phi35-test"]);
  const request = { model: "phi35-test", messages: [{ role: "user" as const, content: "Hello" }], max_tokens: 10, temperature: 0 };
  const completion = await openai.chat.completions.create(request);
  assert.equal(completion.choices[0]?.message.role, "assistant");
  assert.equal(completion.usage?.total_tokens, (completion.usage?.prompt_tokens ?? 0) + (completion.usage?.completion_tokens ?? 0));
  let text = "";
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of await openai.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } })) {
    text += chunk.choices[0]?.delta?.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, completion.choices[0]?.message.content);
  assert.deepEqual(usage, completion.usage);
});

test("keys from PHISERVE_API_KEYS work; errors parse as OpenAI errors", async () => {
  const second = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "second-key-abcdefghijklmnop", maxRetries: 0 });
  const res = await second.chat.completions.create({ model: "phi35-test", messages: [{ role: "user", content: "hi" }], max_tokens: 1 });
  assert.equal(res.choices.length, 1);
  const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "nope", maxRetries: 0 });
  await assert.rejects(wrong.chat.completions.create({ model: "x", messages: [{ role: "user", content: "hi" }] }), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  await assert.rejects(openai.chat.completions.create({ model: "x", messages: [{ role: "user", content: "hi" }], temperature: 5 }), (e: unknown) => e instanceof OpenAI.UnprocessableEntityError);
});

test("the Azure JS sample runs unchanged (but for allowInsecureConnection)", async () => {
  const sample = fileURLToPath(new URL("../../examples/azure-js-sample.ts", import.meta.url));
  for (const endpoint of [server.url, `${server.url}/models`]) {
    const child = spawn(process.execPath, ["--import", "tsx", sample], { env: { ...process.env, ENDPOINT: endpoint, KEY }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const [code] = await once(child, "exit");
    assert.equal(code, 0, out);
    assert.match(out, /^Phi-3.5-Mini-Instruct chat-completion\n/);
  }
});

test("CLI: no key on a non-loopback address is refused", async () => {
  const res = await runCli(["serve", "--model", model, "--host", "0.0.0.0", "--port", "0"], { PHISERVE_API_KEYS: "" });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /Refusing to serve 0\.0\.0\.0 without an API key.*--no-auth/);
});

test("CLI: offline first run explains how to serve a local file", async () => {
  const cache = await mkdtemp(join(tmpdir(), "phiserve-cache-"));
  try {
    // A loopback port nobody listens on stands in for an unreachable hub.
    const probe = createServer().listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    const env = { PHISERVE_CACHE_DIR: cache, PHISERVE_MODEL_BASE_URL: `http://127.0.0.1:${port}` };
    for (const args of [["serve", "--port", "0"], ["pull", "phi-3.5-mini-instruct"]]) {
      const res = await runCli(args, env);
      assert.equal(res.code, 1, res.stderr);
      assert.match(res.stderr, /looks offline/);
      assert.match(res.stderr, /phiserve serve --model \/path\/to\/model\.gguf/);
      assert.match(res.stderr, /Phi-3\.5-mini-instruct-Q4_K_M\.gguf/);
    }
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
});

test("CLI: models lists the whole catalog honestly; test-model writes a loadable GGUF", async () => {
  const list = await runCli(["models", "--json"]);
  assert.equal(list.code, 0, list.stderr);
  const catalog = JSON.parse(list.stdout) as { models: { name: string; available: boolean; reason: string | null }[] };
  assert.equal(catalog.models.length, 12);
  for (const m of catalog.models) assert.equal(m.available, m.reason === null, m.name);
  const dir = await mkdtemp(join(tmpdir(), "phiserve-model-"));
  try {
    const out = join(dir, "tiny.gguf");
    const made = await runCli(["test-model", "--family", "phi3", "--out", out, "--layers", "1", "--seed", "7"]);
    assert.equal(made.code, 0, made.stderr);
    assert.ok((await stat(out)).size > 1_000_000);
    const served = await startServer(["--model", out]);
    try {
      const health = await fetch(`${served.url}/health`);
      assert.equal(health.status, 200);
      const info = await (await fetch(`${served.url}/info`)).json();
      assert.equal(info.model_name, "Phi-3.5-Mini-Instruct"); // matched from general.name; served open on loopback
    } finally {
      await served.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
