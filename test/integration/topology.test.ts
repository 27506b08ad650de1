/**
 * The multi-replica topology (scripts/topology.ts; docs/DEPLOY.md "Multi-replica topology"): three real
 * replicas behind a real HAProxy, one Redis, one PostgreSQL, one replica SIGKILLed mid-load and
 * brought back. Asserts the figures the script prints. Skips only when HAProxy, PostgreSQL or Redis
 * cannot be had on this machine (no root to install them); under CI it fails instead.
 */
import { test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureHaproxy, ensureServices, runTopology } from "../../scripts/topology.ts";

function unavailable(t: TestContext, reason: string): void {
  if (process.env.CI) assert.fail(`${reason}: CI must provide it (.ci/run installs haproxy, PostgreSQL and Redis)`);
  t.skip(reason);
}

test("three replicas behind HAProxy: quotas exact across replicas, usage equal to what clients received, only in-flight requests lost to a SIGKILL, /health checks take the replica out and back", async (t) => {
  try {
    await ensureHaproxy();
  } catch (error) {
    return unavailable(t, `HAProxy unavailable (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`);
  }
  const dir = await mkdtemp(join(tmpdir(), "phiserve-topology-test-"));
  let services: Awaited<ReturnType<typeof ensureServices>>;
  try {
    services = await ensureServices({}, dir);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    return unavailable(t, `PostgreSQL/Redis unavailable (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`);
  }
  try {
    const report = await runTopology({ postgresUrl: services.postgresUrl, redisUrl: services.redisUrl, log: (line) => t.diagnostic(line) });
    const { quota, load, usage, health } = report;

    // Quotas: exactly the key's limit admitted, every other request 429, the requests spread over replicas.
    assert.equal(quota.admitted, quota.limit, `admitted ${JSON.stringify(quota.admittedByReplica)}`);
    assert.equal(quota.limited, quota.sent - quota.limit);
    assert.equal(quota.other, 0);
    const reached = new Set([...Object.keys(quota.admittedByReplica), ...Object.keys(quota.limitedByReplica)]);
    assert.ok(reached.size >= 2, `the quota requests reached ${[...reached].join(", ")}`);

    // Load: every request either completed or was lost in flight on the killed replica (HAProxy's log says which).
    assert.equal(load.completed + load.failed.length, load.sent);
    assert.deepEqual(load.failed.filter((f) => f.server !== health.killed || !f.termination.startsWith("S")), [], "requests lost that were not in flight on the killed replica");
    assert.ok(load.failed.length <= load.concurrency, `${load.failed.length} lost: more than the clients had outstanding`);
    assert.ok(Object.keys(load.completedByReplica).length === report.replicas.length, "every replica served load");
    assert.ok(load.completedByKilledAfterReturn > 0, "the returned replica served again");

    // Usage: one row per completed request, its tokens equal to the response's usage.
    assert.equal(usage.clientRequests, quota.admitted + load.completed);
    assert.deepEqual(usage.missing, []);
    assert.deepEqual(usage.mismatched, []);
    assert.equal(usage.dbRows, usage.clientRequests);
    assert.equal(usage.dbPromptTokens, usage.clientPromptTokens);
    assert.equal(usage.dbCompletionTokens, usage.clientCompletionTokens);
    assert.ok(usage.extraRows <= load.failed.length, "rows only for requests the clients received, or lost in flight");

    // Health checks: DOWN after the SIGKILL (connection refused), UP again on a 200 from /health.
    const down = health.samples.find((s) => s.status === "DOWN");
    assert.ok(down, JSON.stringify(health.samples));
    assert.match(down.check, /^L4/, "marked down by failed connections");
    const last = health.samples.at(-1)!;
    assert.deepEqual([last.status, last.check, last.checkCode], ["UP", "L7OK", "200"]);
  } finally {
    await services.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
