/**
 * The admin API (docs/ADMIN-API.md) on a real server process with two deployments of a tiny test model: who may
 * call it (admin key, stored admin key, a token's admin role; 403 otherwise, 401 without a credential), a key
 * created, used and revoked, usage after real chat requests (a throttled one included), deployment load and
 * unload, the audit lines (never a key's secret) and the command line's remote mode.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startTestIdentityProvider, type TestIdentityProvider } from "../../src/auth/test-jwks.ts";
import { runCli, startServer, type RunningServer } from "../helpers/start-server.ts";

const ADMIN_KEY = "admin-key-0123456789abcdef";
const USER_KEY = "user-key-0123456789abcdef";

let dir: string;
let server: RunningServer;
let idp: TestIdentityProvider;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "phiserve-admin-"));
  idp = await startTestIdentityProvider();
  const model = await ensureTestModel();
  const config = join(dir, "phiserve.yaml");
  await writeFile(config, [
    "defaultDeployment: small",
    "deployments:",
    "  - name: small",
    `    model: ${model}`,
    "    modelName: phi-3.5-mini-instruct",
    "    parallel: 2",
    "  - name: other",
    `    model: ${model}`,
    "    modelName: phi-3.5-mini-instruct",
    "    parallel: 1",
    "    price: { promptPer1k: 1, completionPer1k: 2 }",
  ].join("\n"));
  server = await startServer([
    "--config", config, "--db", `sqlite:${join(dir, "admin.db")}`, "--admin-key", ADMIN_KEY, "--api-key", USER_KEY,
    "--jwt-issuer", idp.issuer, "--jwt-audience", "api://phiserve", "--jwks-uri", idp.jwksUri,
  ], { timeoutMs: 240_000 });
});
after(async () => {
  await server?.close();
  await idp?.close();
  await rm(dir, { recursive: true, force: true });
});

const admin = (path: string, init: RequestInit = {}, credential: string | null = ADMIN_KEY) =>
  fetch(`${server.url}${path}`, {
    ...init,
    headers: { ...(credential ? { authorization: `Bearer ${credential}` } : {}), ...(init.body ? { "content-type": "application/json" } : {}), ...init.headers },
  });

const chat = (key: string, body: Record<string, unknown> = {}) =>
  fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "api-key": key },
    body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 4, ...body }),
  });

interface UsageRow { group: string; requests: number; promptTokens: number; completionTokens: number; throttled: number; filtered: number; ttftMs: { p50: number } | null; tokensPerSecond: { p50: number } | null; costUsd: number }

/** The usage report once the server has written `expected` requests for `group` (usage is written off the response path). */
async function usageOnceRecorded(query: string, group: string, expected: number): Promise<{ rows: UsageRow[]; total: UsageRow }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const report = (await (await admin(`/admin/usage?${query}`)).json()) as { rows: UsageRow[]; total: UsageRow };
    const row = report.rows.find((r) => r.group === group);
    if ((row?.requests ?? 0) >= expected || Date.now() > deadline) return report;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("who may call it: an admin key, a stored admin key and a token with the admin role; 403 for other callers, 401 without a credential", async () => {
  assert.equal((await admin("/admin/deployments")).status, 200);
  const anonymous = await admin("/admin/deployments", {}, null);
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).error.code, "invalid_api_key");
  const user = await admin("/admin/keys", {}, USER_KEY);
  assert.equal(user.status, 403);
  assert.equal(user.headers.get("x-ms-error-code"), "admin_required");
  const body = await user.json();
  assert.equal(body.error.code, "admin_required");
  assert.equal(body.error.status, 403);
  assert.equal((await admin("/admin/keys", { method: "POST", body: JSON.stringify({ name: "sneaky", admin: true }) }, USER_KEY)).status, 403);
  const adminToken = await idp.sign({ roles: ["phiserve.admin"], name: "Ops Person" });
  assert.equal((await admin("/admin/usage", {}, adminToken)).status, 200);
  assert.equal((await admin("/admin/usage", {}, await idp.sign({ roles: ["Reader"], scp: "phiserve.admin" }))).status, 403);
  const created = await (await admin("/admin/keys", { method: "POST", body: JSON.stringify({ name: "ops-key", admin: true }) })).json();
  assert.equal(created.admin, true);
  assert.equal((await admin("/admin/deployments", {}, created.key)).status, 200, "a stored admin key is an admin");
  assert.equal((await admin("/admin/keys", { method: "POST", body: JSON.stringify({ name: "made-by-ops" }) }, created.key)).status, 201);
  // The admin routes are only under /admin.
  assert.equal((await admin("/models/admin/keys")).status, 404);
});

test("a key created through the API works at once, is listed without its secret, and is refused after revocation", async () => {
  const response = await admin("/admin/keys", { method: "POST", body: JSON.stringify({ name: "team-a", deployments: ["small"], rpm: 100 }) });
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("cache-control"), "no-store");
  const created = await response.json();
  assert.match(created.key, /^phs_[A-Za-z0-9_-]{40}$/);
  assert.deepEqual({ ...created, key: undefined, id: undefined, createdAt: undefined }, {
    key: undefined, id: undefined, createdAt: undefined, name: "team-a", deployments: ["small"], rpm: 100, tpm: null, contentSafety: null, admin: false, revokedAt: null,
  });
  assert.equal((await chat(created.key)).status, 200);
  assert.equal((await chat(created.key, { model: "other" })).status, 403, "limited to its deployment");
  const listed = await (await admin("/admin/keys")).json();
  const mine = listed.data.find((k: { id: string }) => k.id === created.id);
  assert.equal(mine.name, "team-a");
  assert.ok(!JSON.stringify(listed).includes(created.key.slice(4)), "no secret in the list");
  assert.ok(!("keyHash" in mine));

  const revoked = await admin(`/admin/keys/${created.id}`, { method: "DELETE" });
  assert.equal(revoked.status, 200);
  const revokedBody = await revoked.json();
  assert.equal(revokedBody.revoked, true);
  assert.ok(!Number.isNaN(Date.parse(revokedBody.revokedAt)));
  let status = 200;
  const deadline = Date.now() + 6000;
  while (status === 200 && Date.now() < deadline) {
    status = (await chat(created.key)).status;
    if (status === 200) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(status, 401, "refused within the stored-key cache's 4 s");

  const unknown = await admin("/admin/keys/key_000000000000", { method: "DELETE" });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "key_not_found");
  const invalid = await admin("/admin/keys", { method: "POST", body: JSON.stringify({ name: "x", rpm: 0, colour: "blue" }) });
  assert.equal(invalid.status, 422);
  const details = (await invalid.json()).error.details as { loc: (string | number)[] }[];
  assert.ok(details.some((d) => d.loc[0] === "body"), JSON.stringify(details));
});

test("usage after real chat requests: requests, tokens, throttled, time to first token, tokens/s, cost at each deployment's price, and the time series", async () => {
  const key = await (await admin("/admin/keys", { method: "POST", body: JSON.stringify({ name: "metered", rpm: 2 }) })).json();
  const principal = `key:${key.id}`;
  const received = { prompt: 0, completion: 0 };
  for (const model of ["small", "other"]) {
    const res = await chat(key.key, { model, max_tokens: 6 });
    assert.equal(res.status, 200);
    const body = await res.json();
    received.prompt += body.usage.prompt_tokens;
    received.completion += body.usage.completion_tokens;
  }
  const throttled = await chat(key.key);
  assert.equal(throttled.status, 429);

  const byKey = await usageOnceRecorded("by=key&since=1h", principal, 3);
  const row = byKey.rows.find((r) => r.group === principal);
  assert.ok(row, JSON.stringify(byKey));
  assert.equal(row.requests, 3);
  assert.equal(row.throttled, 1);
  assert.equal(row.filtered, 0);
  assert.equal(row.promptTokens, received.prompt);
  assert.equal(row.completionTokens, received.completion);
  assert.ok(row.ttftMs && row.ttftMs.p50 > 0, "time to first token recorded");
  assert.ok(row.tokensPerSecond && row.tokensPerSecond.p50 > 0, "generation speed recorded");

  const byDeployment = (await (await admin("/admin/usage?by=deployment&since=1h")).json()) as { rows: UsageRow[]; prices: { default: { promptPer1k: number; completionPer1k: number } } };
  const other = byDeployment.rows.find((r) => r.group === "other")!;
  const small = byDeployment.rows.find((r) => r.group === "small")!;
  assert.equal(other.costUsd, Math.round(((other.promptTokens / 1000) * 1 + (other.completionTokens / 1000) * 2) * 1e8) / 1e8, "its own price");
  const p = byDeployment.prices.default;
  assert.equal(small.costUsd, Math.round(((small.promptTokens / 1000) * p.promptPer1k + (small.completionTokens / 1000) * p.completionPer1k) * 1e8) / 1e8, "the default price");

  const series = await (await admin("/admin/usage/series?bucket=hour&by=key&since=2h")).json();
  assert.equal(series.buckets.length, 3, "every hour of the window, the first one at or before since");
  const line = series.series.find((s: { name: string }) => s.name === principal);
  assert.equal(line.requests.reduce((a: number, b: number) => a + b, 0), 3);
  assert.equal(line.throttled.at(-1), 1, "this hour");
  assert.equal(line.requests.length, series.buckets.length);

  const bad = await admin("/admin/usage?since=yesterday");
  assert.equal(bad.status, 422);
  assert.deepEqual((await bad.json()).error.details[0].loc, ["query", "since"]);
  assert.equal((await admin("/admin/usage?by=week")).status, 422);
});

test("deployments: state, unload and load through the registry; a busy deployment is not unloaded; unknown names are 404", async () => {
  const list = (await (await admin("/admin/deployments")).json()).data as { name: string; state: string; default: boolean; sequences: number }[];
  assert.deepEqual(list.map((d) => d.name), ["small", "other"]);
  assert.equal(list[0]!.default, true);
  assert.equal(list[0]!.sequences, 2);

  await chat(USER_KEY, { model: "other" }); // loaded now
  const unloaded = await admin("/admin/deployments/other/unload", { method: "POST" });
  assert.equal(unloaded.status, 200);
  assert.equal((await unloaded.json()).state, "unloaded");
  assert.equal((await (await admin("/admin/deployments")).json()).data[1].state, "unloaded");
  const loaded = await admin("/admin/deployments/other/load", { method: "POST" });
  assert.equal(loaded.status, 200);
  assert.equal((await loaded.json()).state, "loaded");
  assert.equal((await chat(USER_KEY, { model: "other" })).status, 200);

  // A stream holds a sequence of `small` until it is aborted: unload is refused meanwhile.
  const controller = new AbortController();
  const stream = await fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "api-key": USER_KEY },
    body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 4000, stream: true }),
    signal: controller.signal,
  });
  const reader = stream.body!.getReader();
  await reader.read(); // the first frame: the request is running
  const busy = await admin("/admin/deployments/small/unload", { method: "POST" });
  assert.equal(busy.status, 503);
  assert.equal(busy.headers.get("retry-after"), "5");
  assert.equal((await busy.json()).error.code, "deployment_busy");
  controller.abort();
  await reader.cancel().catch(() => undefined);

  const unknown = await admin("/admin/deployments/nope/load", { method: "POST" });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "model_not_found");
});

test("the command line's remote mode: keys create, list, revoke and usage through --server", async () => {
  const remote = ["--server", server.url, "--admin-key", ADMIN_KEY];
  const created = await runCli(["keys", "create", "--name", "from-cli", "--json", ...remote]);
  assert.equal(created.code, 0, created.stderr);
  const key = JSON.parse(created.stdout) as { id: string; key: string; admin: boolean };
  assert.equal(key.admin, false);
  assert.equal((await chat(key.key)).status, 200);
  const listed = await runCli(["keys", "list", "--json", ...remote]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.ok((JSON.parse(listed.stdout) as { id: string }[]).some((k) => k.id === key.id));
  const table = await runCli(["keys", "list", ...remote]);
  assert.match(table.stdout, /from-cli/);
  const usage = await runCli(["usage", "--by", "deployment", "--json", ...remote]);
  assert.equal(usage.code, 0, usage.stderr);
  assert.ok((JSON.parse(usage.stdout) as { rows: { group: string }[] }).rows.some((r) => r.group === "small"));
  const revoked = await runCli(["keys", "revoke", key.id, ...remote]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, new RegExp(`Revoked ${key.id}`));

  const denied = await runCli(["keys", "list", "--server", server.url, "--admin-key", USER_KEY]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /403 admin_required/);
  const both = await runCli(["keys", "list", "--server", server.url, "--db", `sqlite:${join(dir, "admin.db")}`]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /Choose one of --db/);
  // The local mode still works on the same database.
  const local = await runCli(["keys", "list", "--json", "--db", `sqlite:${join(dir, "admin.db")}`]);
  assert.equal(local.code, 0, local.stderr);
  assert.ok((JSON.parse(local.stdout) as { id: string; revokedAt: string | null }[]).find((k) => k.id === key.id)?.revokedAt);
});

test("audit lines name who did what to which target, and no log line holds a key's secret", async () => {
  const created = await (await admin("/admin/keys", { method: "POST", body: JSON.stringify({ name: "audited" }) })).json();
  await admin(`/admin/keys/${created.id}`, { method: "DELETE" });
  await admin("/admin/keys", {}, USER_KEY);
  // Logs are written asynchronously and flushed at exit: read them once the server has stopped.
  await server.close();
  const lines = server.logs().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const audits = lines.filter((l) => l.event === "admin.audit");
  const find = (action: string, target: string) => audits.find((l) => l.action === action && l.target === target);
  assert.match(String(find("keys.create", created.id)?.who), /^admin:[0-9a-f]{8}$/);
  assert.equal(find("keys.revoke", created.id)?.outcome, "ok");
  assert.equal(find("admin.denied", "GET /admin/keys")?.outcome, "denied");
  assert.match(String(find("admin.denied", "GET /admin/keys")?.who), /^static:/);
  assert.ok(audits.some((l) => l.action === "deployments.unload" && l.target === "other" && l.outcome === "ok"));
  assert.ok(audits.some((l) => l.action === "deployments.unload" && l.target === "small" && l.outcome === "busy"));
  assert.ok(audits.some((l) => l.action === "keys.create" && l.whoName === "ops-key" && String(l.who).startsWith("key:")), "a stored key's name");
  const logs = server.logs();
  for (const secret of [created.key, created.key.slice(4), ADMIN_KEY, USER_KEY]) assert.ok(!logs.includes(secret), "no secret in the logs");
});

test("a server with no credential source on loopback opens its admin API, as every other route", async () => {
  const open = await startServer(["--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct"], { timeoutMs: 240_000 });
  try {
    const response = await fetch(`${open.url}/admin/deployments`);
    assert.equal(response.status, 200);
    assert.equal((await response.json()).data[0].state, "loaded");
  } finally {
    await open.close();
  }
});
