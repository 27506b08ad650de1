/**
 * What Azure does around the model, on real servers with the official clients: stored key
 * lifecycle, static keys, Entra-style JWTs (JWKS on loopback), 429s and their headers (the JS
 * client retries on Retry-After), one exact limit across two replicas sharing Redis, and usage
 * metered to SQLite and PostgreSQL surviving a restart.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ModelClient, { isUnexpected } from "@azure-rest/ai-inference";
import { AzureKeyCredential } from "@azure/core-auth";
import OpenAI from "openai";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startTestIdentityProvider, type TestIdentityProvider } from "../../src/auth/test-jwks.ts";
import { runCli, startServer, type RunningServer } from "../helpers/start-server.ts";

let dir: string;
let model: string;
const BASE = ["--model-name", "phi-3.5-mini-instruct"];
const hi = { messages: [{ role: "user" as const, content: "hi" }], max_tokens: 3 };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "phiserve-identity-"));
  model = await ensureTestModel();
});
after(async () => rm(dir, { recursive: true, force: true }));

const post = (server: RunningServer, headers: Record<string, string>, body: unknown = hi) =>
  fetch(`${server.url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

async function createKey(db: string, extra: string[] = []): Promise<{ id: string; key: string }> {
  const res = await runCli(["keys", "create", "--name", "test", "--db", db, "--json", ...extra]);
  assert.equal(res.code, 0, res.stderr);
  return JSON.parse(res.stdout);
}

test("stored keys: created keys work with the Azure client, static keys still work, a revoked key is refused within 5 s", async () => {
  const db = `sqlite:${join(dir, "keys.db")}`;
  const created = await createKey(db);
  assert.ok(created.key.length >= 32);
  const list = await runCli(["keys", "list", "--db", db, "--json"]);
  assert.ok(!list.stdout.includes(created.key), "the secret is never listed");
  const server = await startServer(["--model", model, ...BASE, "--db", db, "--api-key", "static-key-0123456789abcdef"]);
  try {
    const client = ModelClient(server.url, new AzureKeyCredential(created.key), { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } });
    const ok = await client.path("/chat/completions").post({ body: hi });
    assert.equal(ok.status, "200");
    assert.equal((await post(server, { "api-key": "static-key-0123456789abcdef" })).status, 200);
    assert.equal((await post(server, { "api-key": "phs_not-a-real-key-000000000000000000000" })).status, 401);
    const revoked = await runCli(["keys", "revoke", created.id, "--db", db, "--json"]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const revokedAt = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - revokedAt < 6000) {
      status = (await post(server, { "api-key": created.key })).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 401);
    assert.ok(Date.now() - revokedAt <= 5200, `refused only after ${Date.now() - revokedAt} ms`);
  } finally {
    await server.close();
  }
});

test("a key limited to other deployments gets 403; its own rpm applies", async () => {
  const db = `sqlite:${join(dir, "limited.db")}`;
  const elsewhere = await createKey(db, ["--deployments", "some-other"]);
  const slow = await createKey(db, ["--rpm", "1"]);
  const server = await startServer(["--model", model, ...BASE, "--db", db]);
  try {
    const denied = await post(server, { "api-key": elsewhere.key });
    assert.equal(denied.status, 403);
    assert.equal((await denied.json()).error.code, "permission_denied");
    assert.equal((await post(server, { "api-key": slow.key })).status, 200);
    assert.equal((await post(server, { "api-key": slow.key })).status, 429);
  } finally {
    await server.close();
  }
});

function forge(header: object, payload: object, secret?: string): string {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64(header)}.${b64(payload)}`;
  return `${body}.${secret ? createHmac("sha256", secret).update(body).digest("base64url") : ""}`;
}

test("Entra-style tokens: RS256/ES256 accepted; expired, wrong audience, alg none, HMAC with the public key → 401; roles restrict deployments", async () => {
  const idp: TestIdentityProvider = await startTestIdentityProvider({ audience: "api://phiserve" });
  const server = await startServer(["--model", model, ...BASE, "--deployment", "phi35", "--jwt-issuer", idp.issuer, "--jwt-audience", "api://phiserve", "--jwks-uri", idp.jwksUri]);
  try {
    const withToken = (token: string) => new OpenAI({ baseURL: `${server.url}/v1`, apiKey: token, maxRetries: 0 }).chat.completions.create({ model: "phi35", ...hi });
    for (const alg of ["RS256", "ES256"] as const) assert.equal((await withToken(await idp.sign({ sub: "alice" }, { alg }))).choices.length, 1);
    const now = Math.floor(Date.now() / 1000);
    const bad = [
      await idp.sign({ sub: "alice" }, { expiresInSeconds: -3600 }),
      await idp.sign({ sub: "alice" }, { audience: "api://someone-else" }),
      forge({ alg: "none", typ: "JWT" }, { sub: "mallory", iss: idp.issuer, aud: "api://phiserve", exp: now + 600 }),
      forge({ alg: "HS256", typ: "JWT", kid: idp.publicJwks().keys[0]!.kid }, { sub: "mallory", iss: idp.issuer, aud: "api://phiserve", exp: now + 600 }, JSON.stringify(idp.publicJwks().keys[0])),
    ];
    for (const token of bad) await assert.rejects(withToken(token), (e: unknown) => e instanceof OpenAI.AuthenticationError, token.slice(0, 20));
    await assert.rejects(withToken(await idp.sign({ sub: "bob", roles: ["deployment:other"] })), (e: unknown) => e instanceof OpenAI.PermissionDeniedError);
    assert.equal((await withToken(await idp.sign({ sub: "carol", roles: ["deployment:phi35"] }))).choices.length, 1);
  } finally {
    await server.close();
    await idp.close();
  }
});

test("429 with Retry-After, retry-after-ms and rate-limit headers; the Azure JS client retries on them", async () => {
  const server = await startServer(["--model", model, ...BASE, "--rpm", "2"]);
  try {
    const first = await post(server, {});
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("x-ratelimit-limit-requests"), "2");
    assert.equal(first.headers.get("x-ratelimit-remaining-requests"), "1");
    assert.ok(Number(first.headers.get("x-ratelimit-remaining-tokens")) < 200_000);
    assert.equal((await post(server, {})).status, 200);
    const limited = await post(server, {});
    assert.equal(limited.status, 429);
    const seconds = Number(limited.headers.get("retry-after"));
    assert.ok(Number.isInteger(seconds) && seconds >= 1 && seconds <= 60, String(seconds));
    assert.ok(Math.abs(Number(limited.headers.get("retry-after-ms")) / 1000 - seconds) <= 1);
    assert.equal(limited.headers.get("x-ratelimit-remaining-requests"), "0");
    assert.match((await limited.json()).error.message, /Rate limit is exceeded\. Try again in \d+ seconds\./);

    // The client honours Retry-After: with 3 retries it makes 4 attempts (the delay is shortened
    // in the pipeline so the test does not wait a minute; the header's presence is what counts).
    let attempts = 0;
    const client = ModelClient(server.url, new AzureKeyCredential("unused"), {
      allowInsecureConnection: true,
      retryOptions: { maxRetries: 3 },
      additionalPolicies: [{
        position: "perRetry",
        policy: { name: "count-and-shorten", async sendRequest(request, next) {
          attempts += 1;
          const response = await next(request);
          if (response.status === 429 && response.headers.get("retry-after")) { response.headers.set("retry-after", "0"); response.headers.delete("retry-after-ms"); }
          return response;
        } },
      }],
    });
    const res = await client.path("/chat/completions").post({ body: hi });
    assert.equal(res.status, "429");
    assert.equal(attempts, 4);
  } finally {
    await server.close();
  }
});

test("two replicas sharing Redis enforce one limit exactly", { skip: !process.env.PHISERVE_TEST_REDIS_URL && !process.env.CI && "PHISERVE_TEST_REDIS_URL not set" }, async () => {
  const redis = process.env.PHISERVE_TEST_REDIS_URL;
  assert.ok(redis, "CI must provide PHISERVE_TEST_REDIS_URL (scripts/test-services.sh)");
  const deployment = `shared-${Date.now()}`; // a fresh quota scope per run
  const args = ["--model", model, ...BASE, "--deployment", deployment, "--redis", redis, "--rpm", "10", "--parallel", "4"];
  const [a, b] = await Promise.all([startServer(args), startServer(args)]);
  try {
    const statuses = await Promise.all(Array.from({ length: 30 }, (_, i) => post(i % 2 ? a : b, {}, { ...hi, max_tokens: 1 }).then((r) => r.status)));
    assert.equal(statuses.filter((s) => s === 200).length, 10);
    assert.equal(statuses.filter((s) => s === 429).length, 20);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

async function meteringRoundTrip(db: string): Promise<void> {
  const server = await startServer(["--model", model, ...BASE, "--db", db, "--api-key", "meter-key-0123456789abcdef", "--deployment", "m"]);
  let received = { prompt: 0, completion: 0 };
  let aborted = 0;
  try {
    const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "meter-key-0123456789abcdef", maxRetries: 0 });
    for (const max_tokens of [3, 5]) {
      const res = await openai.chat.completions.create({ model: "m", ...hi, max_tokens });
      received = { prompt: received.prompt + res.usage!.prompt_tokens, completion: received.completion + res.usage!.completion_tokens };
    }
    let streamedUsage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of await openai.chat.completions.create({ model: "m", ...hi, max_tokens: 4, stream: true, stream_options: { include_usage: true } })) streamedUsage = chunk.usage ?? streamedUsage;
    received = { prompt: received.prompt + streamedUsage!.prompt_tokens, completion: received.completion + streamedUsage!.completion_tokens };
    // An aborted stream is billed for what was generated.
    const controller = new AbortController();
    const stream = await openai.chat.completions.create({ model: "m", ...hi, max_tokens: 3000, stream: true }, { signal: controller.signal });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) aborted += 1;
      if (aborted >= 3) break;
    }
    controller.abort();
  } finally {
    await server.close(); // flushes pending usage writes
  }
  const report = await runCli(["usage", "--db", db, "--by", "key", "--json"]);
  assert.equal(report.code, 0, report.stderr);
  const rows = JSON.parse(report.stdout) as { rows?: unknown[] } | unknown[];
  const list = (Array.isArray(rows) ? rows : rows.rows ?? []) as { group: string; requests: number; promptTokens: number; completionTokens: number }[];
  const mine = list.find((r) => r.group.startsWith("static:"));
  assert.ok(mine, report.stdout);
  assert.equal(mine.requests, 4);
  assert.ok(mine.promptTokens >= received.prompt + 1, "the aborted request's prompt is billed too");
  const abortedCompletion = mine.completionTokens - received.completion;
  assert.ok(abortedCompletion >= aborted && abortedCompletion < 3000, `aborted stream billed ${abortedCompletion} tokens`);
}

test("usage metering on SQLite: what clients received, plus the aborted stream, after a restart", async () => {
  await meteringRoundTrip(`sqlite:${join(dir, "usage.db")}`);
});

test("usage metering on PostgreSQL", { skip: !process.env.PHISERVE_TEST_POSTGRES_URL && !process.env.CI && "PHISERVE_TEST_POSTGRES_URL not set" }, async () => {
  const url = process.env.PHISERVE_TEST_POSTGRES_URL;
  assert.ok(url, "CI must provide PHISERVE_TEST_POSTGRES_URL (scripts/test-services.sh)");
  const pg = await import("pg");
  const admin = new pg.default.Client({ connectionString: url });
  await admin.connect();
  const name = `phiserve_usage_${Date.now()}`;
  await admin.query(`CREATE DATABASE ${name}`);
  try {
    const target = new URL(url);
    target.pathname = `/${name}`;
    await meteringRoundTrip(target.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
});
