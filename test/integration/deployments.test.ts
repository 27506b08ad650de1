/**
 * Several deployments in one process from a config file: routing, /v1/models, /info?model=,
 * unknown names → 404, loading on first use within a memory budget, and config validation.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { runCli, startServer, type RunningServer } from "../helpers/start-server.ts";

let dir: string;
let server: RunningServer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "phiserve-config-"));
  const config = join(dir, "phiserve.yaml");
  // A budget that fits one tiny model at a time, so loading one unloads the other.
  await writeFile(config, [
    "defaultDeployment: small",
    "memoryBudget: 30MB",
    "deployments:",
    `  - name: small`,
    `    model: ${await ensureTestModel()}`,
    `    modelName: phi-3.5-mini-instruct`,
    `    parallel: 2`,
    `  - name: mini`,
    `    model: ${await ensureTestModel({ family: "phi4-mini" })}`,
    `    json: azure`,
    `    maxStepMs: 1500`,
    `    padDecodeRows: false`,
    `    promptCache: 64MiB`,
    `    flashAttention: false`,
  ].join("\n"));
  server = await startServer(["--config", config]);
});
after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const chat = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${server.url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 2, ...body }) });

test("/v1/models lists every deployment; /info?model= describes one", async () => {
  const models = await (await fetch(`${server.url}/v1/models`)).json();
  assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["small", "mini"]);
  assert.equal((await (await fetch(`${server.url}/info`)).json()).model_name, "Phi-3.5-Mini-Instruct");
  assert.equal((await (await fetch(`${server.url}/info?model=mini`)).json()).model_name, "Phi-4-mini-instruct");
  const unknown = await fetch(`${server.url}/info?model=nope`);
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "model_not_found");
});

test("requests route by header, then body model, then the default; unknown names → 404", async () => {
  const byHeader = await (await chat({}, { "azureml-model-deployment": "mini" })).json();
  assert.equal(byHeader.model, "Phi-4-mini-instruct", JSON.stringify(byHeader));
  assert.equal((await (await chat({ model: "mini" })).json()).model, "Phi-4-mini-instruct");
  const byAzureName = await (await chat({ model: "Phi-4-mini-instruct" })).json();
  assert.equal(byAzureName.model, "Phi-4-mini-instruct", JSON.stringify(byAzureName));
  assert.equal((await (await chat({})).json()).model, "Phi-3.5-Mini-Instruct");
  for (const res of [await chat({}, { "azureml-model-deployment": "gpt-4o" }), await chat({ model: "gpt-4o" })]) {
    assert.equal(res.status, 404);
    assert.match((await res.json()).error.message, /'gpt-4o' does not exist/);
  }
});

test("per-deployment policies apply: the 'mini' deployment gives Azure's 422 for JSON output", async () => {
  const res = await chat({ model: "mini", response_format: { type: "json_object" } });
  assert.equal(res.status, 422);
  assert.equal((await chat({ model: "small", response_format: { type: "json_object" }, max_tokens: 20 })).status, 200);
});

test("engine keys apply per deployment: 'mini' loads with its step budget, a prompt cache, no flash attention and no row padding, 'small' with the defaults", async () => {
  await chat({ model: "mini" });
  await chat({ model: "small" });
  const loaded = server.logs().split("\n").filter((l) => l.includes('"event":"engine.loaded"')).map((l) => JSON.parse(l) as { deployment: string; maxStepMs: number | null; padDecodeRows: boolean; promptCacheBytes: number; flashAttention: boolean | "auto" });
  const of = (deployment: string) => loaded.filter((l) => l.deployment === deployment).map((l) => [l.maxStepMs, l.padDecodeRows, l.promptCacheBytes, l.flashAttention]);
  // On a CPU padding is on by default, flash attention is llama.cpp's choice; no step budget nor prompt cache without the flag or the key.
  assert.deepEqual(new Set(of("small").map(String)), new Set([String([null, true, 0, "auto"])]), JSON.stringify(loaded));
  assert.deepEqual(new Set(of("mini").map(String)), new Set([String([1500, false, 64 * 2 ** 20, false])]), JSON.stringify(loaded));
});

test("the memory budget is respected: loading one deployment unloads the idle other", async () => {
  await chat({ model: "mini" });
  await chat({ model: "small" });
  const unloads = server.logs().split("\n").filter((l) => l.includes('"event":"deployment.unloaded"'));
  assert.ok(unloads.length >= 2, unloads.join("\n"));
});

test("an invalid config file is refused at start with the offending path", async () => {
  const bad = join(dir, "bad.yaml");
  await writeFile(bad, "deployments:\n  - name: x\n    model: m.gguf\n    parallel: 0\n    colour: blue\n");
  const res = await runCli(["serve", "--config", bad, "--port", "0"]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /\/deployments\/0\/parallel: must be >= 1/);
  assert.match(res.stderr, /'colour'/);
});

test("a prompt cache size that is not a size is refused, as a flag and as a key", async () => {
  const flag = await runCli(["serve", "--model", "m.gguf", "--port", "0", "--prompt-cache", "lots"]);
  assert.equal(flag.code, 1);
  assert.match(flag.stderr, /--prompt-cache.*expected a size such as 2GiB/);
  const bad = join(dir, "bad-cache.yaml");
  await writeFile(bad, "deployments:\n  - name: x\n    model: m.gguf\n    promptCache: lots\n");
  const key = await runCli(["serve", "--config", bad, "--port", "0"]);
  assert.equal(key.code, 1);
  assert.match(key.stderr, /\/deployments\/0\/promptCache: must match pattern/);
});
