/**
 * The official Python clients against a real phiserve process (seeded Phi-3 test model): the Azure
 * docs' samples with `azure-ai-inference` 1.0.0b9 (sync and async), the openai SDK on /v1, and
 * streams the server cuts short, which must raise in both. The clients come from Debian 13's
 * packages through scripts/python-clients.sh (CI runs it first); the scripts are in test/python/.
 * Random weights: assertions are on mechanics, never on wording.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";
import { createTestCertificateAuthority, issueTestServerCertificate } from "../helpers/test-certificates.ts";
import { startTestIdentityProvider } from "../../src/auth/test-jwks.ts";

const KEY = "python-key-0123456789abcdef";
const SITE = process.env.PHISERVE_TEST_PYTHONPATH ?? fileURLToPath(new URL("../../.cache/python/site", import.meta.url));
const present = existsSync(`${SITE}/.complete`);
// Outside CI a machine without the extracted clients skips; CI must have them (.ci/run fetches them).
const skip = !present && !process.env.CI && `Python clients not found in ${SITE}: run \`bash scripts/python-clients.sh\` (or set PHISERVE_TEST_PYTHONPATH)`;
if (skip) console.log(`# skipped: ${skip}`);

let server: RunningServer;
/** Cuts every chat request after 1 s: a stream without max_tokens (the model writes to its context size, seconds) is cut mid-way. */
let cutting: RunningServer;

before(async () => {
  if (skip) return;
  assert.ok(present, `CI needs the Python clients in ${SITE} (bash scripts/python-clients.sh)`);
  const model = await ensureTestModel();
  const common = ["--model", model, "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY, "--parallel", "2"];
  [server, cutting] = await Promise.all([startServer(common), startServer([...common, "--request-timeout", "1"])]);
  // One short request each, so the models are loaded before a 1 s deadline starts counting.
  for (const target of [server, cutting]) {
    const res = await fetch(`${target.url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json", "api-key": KEY }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 1 }) });
    assert.equal(res.status, 200, await res.text());
  }
});
after(async () => {
  await server?.close();
  await cutting?.close();
});

/** Runs test/python/SCRIPT SCENARIO against `target`; resolves with the JSON its last stdout line holds. */
async function python(script: string, scenario: string, target: RunningServer, env: NodeJS.ProcessEnv = {}): Promise<Record<string, any>> {
  const path = fileURLToPath(new URL(`../python/${script}`, import.meta.url));
  const child = spawn("python3", [path, scenario], {
    env: { ...process.env, PYTHONPATH: SITE, PHISERVE_ENDPOINT: target.url, PHISERVE_KEY: KEY, PYTHONDONTWRITEBYTECODE: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  assert.equal(code, 0, `${script} ${scenario} exited with ${code}\n${stderr}`);
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

test("Azure docs' Python samples, sync client: model info, complete, stream, parameters, model_extras, errors", { skip }, async () => {
  const out = await python("azure_samples.py", "sync", server);
  assert.deepEqual(out.model_info, { model_name: "Phi-3.5-Mini-Instruct", model_type: "chat-completion", model_provider_name: "Microsoft" });
  assert.equal(out.complete.role, "assistant");
  assert.equal(out.complete.model, "Phi-3.5-Mini-Instruct");
  // The docs' messages: 19 prompt tokens on Phi-3.5-mini, as Azure reports (docs/AZURE-API.md).
  assert.equal(out.complete.usage.prompt_tokens, 19);
  assert.equal(out.complete.usage.total_tokens, out.complete.usage.prompt_tokens + out.complete.usage.completion_tokens);
  // Streaming: same text as the same request unstreamed (temperature 0), finish reason and usage at the end.
  assert.equal(out.stream.text, out.stream.non_stream_text);
  assert.ok(["stop", "length"].includes(out.stream.finish_reason));
  assert.equal(out.stream.usage.prompt_tokens, 19);
  assert.ok(out.parameters.completion_tokens <= 16);
  assert.equal(out.model_extras.logprobs, 4);
  const [range, context, extra] = out.errors;
  assert.deepEqual([range.type, range.status, range.code, range.error_code], ["HttpResponseError", 422, "invalid_request", "invalid_request"]);
  assert.deepEqual([context.status, context.code], [400, "context_length_exceeded"]);
  assert.deepEqual([extra.status, extra.code], [400, "unsupported_parameter"]);
  assert.match(extra.message, /top_k/);
});

test("Azure Python async client (aiohttp): model info, complete, stream, a 422", { skip }, async () => {
  const out = await python("azure_samples.py", "async", server);
  assert.equal(out.model_info.model_name, "Phi-3.5-Mini-Instruct");
  assert.equal(out.stream.text, out.complete.content);
  assert.deepEqual(out.stream.usage, out.complete.usage);
  assert.equal(out.stream.finish_reason, "length");
  assert.deepEqual([out.error.status, out.error.code], [422, "invalid_request"]);
});

test("openai Python SDK on /v1: max_completion_tokens, usage only with include_usage (in a last choices-less chunk), unknown model 404", { skip }, async () => {
  const out = await python("openai_samples.py", "samples", server);
  assert.deepEqual(out.models, ["phi-3.5-mini-instruct"]);
  assert.deepEqual(out.max_completion_tokens, { completion_tokens: 5, finish_reason: "length" });
  const plain = out.stream_include_usage_False;
  assert.ok(plain.usage.every((u: unknown) => u === null), "no usage unless asked");
  assert.ok(plain.choices.every((n: number) => n === 1));
  const withUsage = out.stream_include_usage_True;
  assert.equal(withUsage.chunks, plain.chunks + 1);
  assert.deepEqual(withUsage.choices.at(-1), 0);
  assert.equal(withUsage.usage.at(-1).completion_tokens, 6);
  assert.ok(withUsage.usage.slice(0, -1).every((u: unknown) => u === null));
  assert.equal(withUsage.finish_reasons.at(-2), "length");
  assert.deepEqual([out.unknown_model.type, out.unknown_model.status, out.unknown_model.code], ["NotFoundError", 404, "model_not_found"]);
});

test("a stream the request timeout cuts raises in the Azure Python client, sync and async, and in the openai SDK", { skip }, async () => {
  const [sync, asynchronous, openai] = await Promise.all([
    python("azure_samples.py", "cut-stream", cutting),
    python("azure_samples.py", "cut-stream-async", cutting),
    python("openai_samples.py", "cut-stream", cutting),
  ]);
  // Before: the Azure client skipped the error frame, read `[DONE]` and ended the loop quietly.
  for (const out of [sync, asynchronous]) {
    assert.ok(out.updates > 1, JSON.stringify(out));
    assert.equal(out.finish_reason, null);
    assert.ok(out.raised, `the Azure Python client must raise: ${JSON.stringify(out)}`);
  }
  assert.equal(openai.raised, "APIError");
  assert.match(openai.message, /request timeout/);
});

test("the docs' Entra ID sample: azure-core sends a bearer token over https (test CA), and refuses to over http", { skip, timeout: 120_000 }, async () => {
  const ca = createTestCertificateAuthority();
  const idp = await startTestIdentityProvider({ audience: "api://phiserve" });
  const cert = issueTestServerCertificate(ca, "python");
  const identity = ["--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct", "--jwt-issuer", idp.issuer, "--jwt-audience", "api://phiserve", "--jwks-uri", idp.jwksUri];
  const [tls, plain] = await Promise.all([startServer([...identity, "--tls-cert", cert.certPath, "--tls-key", cert.keyPath]), startServer(identity)]);
  try {
    const token = await idp.sign({ sub: "python-user" });
    const over = await python("azure_samples.py", "entra-token", tls, { PHISERVE_TOKEN: token, REQUESTS_CA_BUNDLE: ca.caCertPath });
    assert.equal(over.ok, true, JSON.stringify(over));
    assert.equal(over.model, "Phi-3.5-Mini-Instruct");
    assert.equal(over.usage.prompt_tokens, 19);
    const refused = await python("azure_samples.py", "entra-token", plain, { PHISERVE_TOKEN: token });
    assert.equal(refused.ok, false);
    assert.match(refused.message, /https|TLS/i);
  } finally {
    await Promise.all([tls.close(), plain.close()]);
    await idp.close();
    rmSync(ca.dir, { recursive: true, force: true });
  }
});
