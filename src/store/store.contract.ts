/**
 * The behaviour every {@link Store} implementation must have, as a node:test suite. Each
 * implementation's test file calls {@link runStoreContract} with a factory that opens a store on
 * the same database every time (so close + reopen can be checked). Tests use their own names,
 * principals and time windows, so they do not depend on each other or on `reset`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { NewApiKey, Store, UsageEntry } from "./store.ts";

/** A store under test; `reset`, if given, empties it once before the suite. */
export type StoreUnderTest = Store & { reset?: () => Promise<void> };

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

let sequence = 0;
/** A usage entry with defaults; each call gets a new request id. */
function usage(overrides: Partial<UsageEntry> & Pick<UsageEntry, "principal" | "createdAt">): UsageEntry {
  sequence += 1;
  return {
    requestId: `req-${sequence}`,
    deployment: "phi-3.5-mini",
    model: "Phi-3.5-mini-instruct",
    promptTokens: 10,
    completionTokens: 5,
    status: 200,
    stream: false,
    completed: true,
    queuedMs: 1,
    durationMs: 20,
    ...overrides,
  };
}

/**
 * Registers the contract suite under `describe(name)`. `makeStore` must return a new, unmigrated
 * or migrated store on the same database each call; the suite closes every store it opens.
 */
export function runStoreContract(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(name, () => {
    const open: Store[] = [];
    const openStore = async (): Promise<Store> => {
      const store = await makeStore();
      open.push(store);
      return store;
    };
    let store: Store;

    before(async () => {
      const first = await makeStore();
      await first.reset?.();
      await first.close();
    });
    after(async () => {
      await Promise.all(open.map((s) => s.close()));
    });

    test("migrate is idempotent, also when two stores migrate at once", async () => {
      const [a, b] = [await openStore(), await openStore()];
      await Promise.all([a.migrate(), b.migrate()]);
      await a.migrate();
      await b.migrate();
      store = a;
      assert.deepEqual(await a.usageReport({ by: "key", since: new Date("1971-01-01T00:00:00Z"), until: new Date("1971-01-02T00:00:00Z") }), []);
    });

    registerKeyTests(() => store);
    registerUsageTests(() => store);
    registerDurabilityTests(openStore);
  });
}

function registerKeyTests(getStore: () => Store): void {
  test("createApiKey returns a prefixed random secret whose SHA-256 is stored", async () => {
    const store = getStore();
    const { record, key } = await store.createApiKey({ name: "contract-create", deployments: ["a", "b"], rpm: 60, tpm: 1000 });
    assert.match(key, /^phs_[A-Za-z0-9_-]{40}$/);
    assert.match(record.id, /^key_[0-9a-f]{12}$/);
    assert.equal(record.keyHash, sha256(key));
    const { name, deployments, rpm, tpm, contentSafety, revokedAt, createdAt } = record;
    assert.deepEqual(
      { name, deployments, rpm, tpm, contentSafety, revokedAt },
      { name: "contract-create", deployments: ["a", "b"], rpm: 60, tpm: 1000, contentSafety: null, revokedAt: null },
    );
    assert.ok(Math.abs(createdAt.getTime() - Date.now()) < 60_000, "createdAt is about now");
    const other = await store.createApiKey({ name: "contract-create-2" });
    assert.notEqual(other.key, key);
    assert.notEqual(other.record.id, record.id);
    assert.deepEqual([other.record.deployments, other.record.rpm, other.record.tpm, other.record.contentSafety], [null, null, null, null]);
  });

  test("a key's content-safety override round-trips through create, list and find; null and absent mean none", async () => {
    const store = getStore();
    const cases = [
      { input: "off", stored: "off" },
      { input: "annotate", stored: "annotate" },
      { input: null, stored: null },
      { input: undefined, stored: null },
    ] as const;
    for (const { input, stored } of cases) {
      const name = `contract-safety-${String(input)}`;
      const { record, key } = await store.createApiKey(input === undefined ? { name } : { name, contentSafety: input });
      assert.equal(record.contentSafety, stored, `created with ${String(input)}`);
      assert.equal((await store.findApiKeyByHash(sha256(key)))?.contentSafety, stored, `found with ${String(input)}`);
      assert.equal((await store.listApiKeys()).find((k) => k.id === record.id)?.contentSafety, stored, `listed with ${String(input)}`);
    }
  });

  test("listApiKeys shows every key and never the secret", async () => {
    const store = getStore();
    const { record, key } = await store.createApiKey({ name: "contract-list", deployments: ["phi-4"] });
    const listed = await store.listApiKeys();
    const found = listed.find((k) => k.id === record.id);
    assert.ok(found, "created key is listed");
    assert.deepEqual(found, record);
    assert.ok(!JSON.stringify(listed).includes(key), "secret must not appear in the list");
    assert.ok(!JSON.stringify(listed).includes(key.slice(4)), "secret body must not appear in the list");
  });

  test("findApiKeyByHash finds by SHA-256 hex, and still finds revoked keys", async () => {
    const store = getStore();
    const { record, key } = await store.createApiKey({ name: "contract-find" });
    assert.deepEqual(await store.findApiKeyByHash(sha256(key)), record);
    assert.equal(await store.findApiKeyByHash(sha256(`${key}x`)), undefined);
    assert.equal(await store.findApiKeyByHash(key), undefined, "the clear key is not a hash");
    assert.equal(await store.revokeApiKey(record.id), true);
    const revoked = await store.findApiKeyByHash(sha256(key));
    assert.ok(revoked?.revokedAt instanceof Date, "revokedAt is set");
    assert.ok(Math.abs(revoked.revokedAt.getTime() - Date.now()) < 60_000, "revokedAt is about now");
  });

  test("revokeApiKey is false for unknown ids and keeps the first revocation time", async () => {
    const store = getStore();
    assert.equal(await store.revokeApiKey("key_000000000000"), false);
    const { record } = await store.createApiKey({ name: "contract-revoke" });
    assert.equal(await store.revokeApiKey(record.id), true);
    const first = (await store.listApiKeys()).find((k) => k.id === record.id)?.revokedAt;
    assert.ok(first instanceof Date);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(await store.revokeApiKey(record.id), true);
    assert.deepEqual((await store.listApiKeys()).find((k) => k.id === record.id)?.revokedAt, first);
  });

  test("a key's admin flag round-trips through create, list and find; absent means false", async () => {
    const store = getStore();
    const admin = await store.createApiKey({ name: "contract-admin", admin: true });
    const plain = await store.createApiKey({ name: "contract-not-admin" });
    assert.equal(admin.record.admin, true);
    assert.equal(plain.record.admin, false);
    assert.equal((await store.findApiKeyByHash(sha256(admin.key)))?.admin, true);
    assert.equal((await store.findApiKeyByHash(sha256(plain.key)))?.admin, false);
    const listed = await store.listApiKeys();
    assert.deepEqual([admin.record.id, plain.record.id].map((id) => listed.find((k) => k.id === id)?.admin), [true, false]);
  });

  test("createApiKey rejects bad input", async () => {
    const store = getStore();
    await assert.rejects(store.createApiKey({ name: "  " }), /name/);
    await assert.rejects(store.createApiKey({ name: "x", rpm: 0 }), /rpm/);
    await assert.rejects(store.createApiKey({ name: "x", tpm: 1.5 }), /tpm/);
    await assert.rejects(store.createApiKey({ name: "x", deployments: [] }), /deployments/);
    for (const contentSafety of ["filter", "OFF", "", "none"]) {
      // Callers outside TypeScript (a config file, JSON) can send any string: the store must refuse it.
      const input = { name: "x", contentSafety } as unknown as NewApiKey;
      await assert.rejects(store.createApiKey(input), /contentSafety must be annotate or off/, contentSafety);
    }
  });
}

function registerUsageTests(getStore: () => Store): void {
  const day1 = new Date("2001-03-04T00:00:00.000Z");
  const day2 = new Date("2001-03-05T00:00:00.000Z");
  const day3 = new Date("2001-03-06T00:00:00.000Z");
  const at = (day: Date, hour: number): Date => new Date(day.getTime() + hour * 3_600_000);

  test("usageReport groups by key, deployment and UTC day, within [since, until)", async () => {
    const store = getStore();
    const entries = [
      usage({ principal: "key_b", createdAt: at(day1, 0), promptTokens: 100, completionTokens: 10 }),
      usage({ principal: "key_a", createdAt: at(day1, 23.99), deployment: "phi-4", promptTokens: 7, completionTokens: 3, stream: true, completed: false }),
      usage({ principal: "key_a", createdAt: at(day2, 12), promptTokens: 1, completionTokens: 2, status: 500 }),
      usage({ principal: "key_a", createdAt: day3, promptTokens: 1000, completionTokens: 1000 }), // == until: excluded
      usage({ principal: "key_c", createdAt: new Date(day1.getTime() - 1), promptTokens: 1000 }), // < since: excluded
    ];
    for (const entry of entries) await store.recordUsage(entry);
    const window = { since: day1, until: day3 };
    assert.deepEqual(await store.usageReport({ ...window, by: "key" }), [
      { group: "key_a", requests: 2, promptTokens: 8, completionTokens: 5 },
      { group: "key_b", requests: 1, promptTokens: 100, completionTokens: 10 },
    ]);
    assert.deepEqual(await store.usageReport({ ...window, by: "deployment" }), [
      { group: "phi-3.5-mini", requests: 2, promptTokens: 101, completionTokens: 12 },
      { group: "phi-4", requests: 1, promptTokens: 7, completionTokens: 3 },
    ]);
    assert.deepEqual(await store.usageReport({ ...window, by: "day" }), [
      { group: "2001-03-04", requests: 2, promptTokens: 107, completionTokens: 13 },
      { group: "2001-03-05", requests: 1, promptTokens: 1, completionTokens: 2 },
    ]);
    assert.deepEqual(await store.usageReport({ since: day2, until: day3, by: "key" }), [
      { group: "key_a", requests: 1, promptTokens: 1, completionTokens: 2 },
    ]);
  });

  test("usageReport without bounds covers everything; only since or until also work", async () => {
    const store = getStore();
    const principal = `contract-bounds-${Date.now()}`;
    await store.recordUsage(usage({ principal, createdAt: new Date("1990-06-01T00:00:00Z") }));
    await store.recordUsage(usage({ principal, createdAt: new Date("2090-06-01T00:00:00Z") }));
    const mine = async (q: Parameters<Store["usageReport"]>[0]) =>
      (await store.usageReport(q)).find((r) => r.group === principal)?.requests ?? 0;
    assert.equal(await mine({ by: "key" }), 2);
    assert.equal(await mine({ by: "key", since: new Date("2000-01-01T00:00:00Z") }), 1);
    assert.equal(await mine({ by: "key", until: new Date("2000-01-01T00:00:00Z") }), 1);
  });

  test("usageReport sorts groups by byte order", async () => {
    const store = getStore();
    const t = new Date("1980-01-01T12:00:00Z");
    for (const principal of ["b", "B", "a", "_", "A"]) await store.recordUsage(usage({ principal, createdAt: t }));
    const groups = (await store.usageReport({ by: "key", since: t, until: new Date(t.getTime() + 1) })).map((r) => r.group);
    assert.deepEqual(groups, ["A", "B", "_", "a", "b"]);
  });

  test("usageStats: sums, throttled and filtered counts, and percentiles per group (hour × deployment), within [since, until)", async () => {
    const store = getStore();
    const day = new Date("2002-07-08T00:00:00.000Z");
    const principal = "stats-key";
    const entries = [
      // hour 10, phi-3.5-mini: three that generated (ttft 100/200/400 ms), one throttled, one prompt-filtered
      usage({ principal, createdAt: at(day, 10), promptTokens: 10, completionTokens: 10, queuedMs: 100, durationMs: 1100, ttftMs: 100 }), // 10 tok / 1 s
      usage({ principal, createdAt: at(day, 10.5), promptTokens: 20, completionTokens: 20, queuedMs: 100, durationMs: 1100, ttftMs: 200, stream: true }), // 20 tok / 1 s
      usage({ principal, createdAt: at(day, 10.9), promptTokens: 30, completionTokens: 3, queuedMs: 100, durationMs: 400, ttftMs: 400 }), // 3 tok / 0.3 s
      usage({ principal, createdAt: at(day, 10.95), promptTokens: 0, completionTokens: 0, status: 429, durationMs: 1, ttftMs: null }),
      usage({ principal, createdAt: at(day, 10.99), promptTokens: 0, completionTokens: 0, status: 400, durationMs: 2, filtered: true }),
      // hour 11, phi-4: one completion the filter cut
      usage({ principal, createdAt: at(day, 11), deployment: "phi-4", promptTokens: 5, completionTokens: 6, queuedMs: 0, durationMs: 600, ttftMs: 100, filtered: true }),
      usage({ principal, createdAt: at(day, 12), promptTokens: 999 }), // == until: excluded
    ];
    for (const entry of entries) await store.recordUsage(entry);
    const window = { since: at(day, 10), until: at(day, 12) };
    const rows = await store.usageStats({ ...window, groupBy: ["hour", "deployment"], percentiles: true });
    assert.deepEqual(rows, [
      {
        groups: ["2002-07-08T10:00Z", "phi-3.5-mini"], requests: 5, promptTokens: 60, completionTokens: 33, throttled: 1, filtered: 1,
        // percentile_cont over [100, 200, 400]: p50 = 200, p90 = 200 + 0.8 × 200 = 360, p99 = 200 + 0.98 × 200 = 396
        ttftMs: { p50: 200, p90: 360, p99: 396 },
        // over [10, 10, 20]: p50 = 10, p90 = 10 + 0.8 × 10 = 18, p99 = 10 + 0.98 × 10 = 19.8
        tokensPerSecond: { p50: 10, p90: 18, p99: 19.8 },
      },
      {
        groups: ["2002-07-08T11:00Z", "phi-4"], requests: 1, promptTokens: 5, completionTokens: 6, throttled: 0, filtered: 1,
        ttftMs: { p50: 100, p90: 100, p99: 100 }, tokensPerSecond: { p50: 10, p90: 10, p99: 10 },
      },
    ]);
    const byKey = await store.usageStats({ ...window, groupBy: ["key"], percentiles: false });
    assert.deepEqual(byKey, [{ groups: [principal], requests: 6, promptTokens: 65, completionTokens: 39, throttled: 1, filtered: 2, ttftMs: null, tokensPerSecond: null }]);
    const byHour = await store.usageReport({ ...window, by: "hour" });
    assert.deepEqual(byHour.map((r) => [r.group, r.requests]), [["2002-07-08T10:00Z", 5], ["2002-07-08T11:00Z", 1]]);
    const whole = await store.usageStats({ ...window, groupBy: [], percentiles: true });
    assert.deepEqual(whole.map((r) => [r.groups, r.requests, r.throttled, r.filtered, r.ttftMs]), [[[], 6, 1, 2, { p50: 150, p90: 340, p99: 394 }]]);
    assert.deepEqual(await store.usageStats({ since: new Date(0), until: new Date(1), groupBy: [], percentiles: true }), [], "no usage: no row");
    await assert.rejects(store.usageStats({ groupBy: ["key", "deployment", "day", "hour"], percentiles: false }), /at most three/);
    await assert.rejects(store.usageStats({ groupBy: ["key", "key"], percentiles: false }), /twice/);
  });

  test("usageStats: a group whose requests produced no output has null percentiles", async () => {
    const store = getStore();
    const t = new Date("2003-01-01T00:00:00.000Z");
    await store.recordUsage(usage({ principal: "stats-none", createdAt: t, status: 429, promptTokens: 0, completionTokens: 0 }));
    const rows = await store.usageStats({ since: t, until: new Date(t.getTime() + 1), groupBy: ["key"], percentiles: true });
    assert.deepEqual(rows, [{ groups: ["stats-none"], requests: 1, promptTokens: 0, completionTokens: 0, throttled: 1, filtered: 0, ttftMs: null, tokensPerSecond: null }]);
  });

  test("recordUsage rejects invalid entries", async () => {
    const store = getStore();
    await assert.rejects(store.recordUsage(usage({ principal: "x", createdAt: new Date(), promptTokens: -1 })), /promptTokens/);
    await assert.rejects(store.recordUsage(usage({ principal: "x", createdAt: new Date(Number.NaN) })), /createdAt/);
    await assert.rejects(store.recordUsage(usage({ principal: "x", createdAt: new Date(), ttftMs: -1 })), /ttftMs/);
  });

  test("200 concurrent recordUsage calls all land", async () => {
    const store = getStore();
    const createdAt = new Date("1999-12-31T23:59:59Z");
    const writes = Array.from({ length: 200 }, (_, i) => store.recordUsage(usage({ principal: "concurrent", createdAt, promptTokens: i, completionTokens: 1 })));
    await Promise.all(writes);
    const report = await store.usageReport({ by: "key", since: createdAt, until: new Date(createdAt.getTime() + 1000) });
    assert.deepEqual(report, [{ group: "concurrent", requests: 200, promptTokens: (199 * 200) / 2, completionTokens: 200 }]);
  });
}

function registerDurabilityTests(openStore: () => Promise<Store>): void {
  test("data survives close and reopen", async () => {
    const first = await openStore();
    await first.migrate();
    const { record, key } = await first.createApiKey({ name: "contract-durable", deployments: ["d1"], tpm: 5, contentSafety: "annotate" });
    const createdAt = new Date("1970-01-02T03:04:05.678Z");
    await first.recordUsage(usage({ principal: record.id, createdAt, promptTokens: 3, completionTokens: 4 }));
    await first.close();

    const second = await openStore();
    await second.migrate();
    assert.deepEqual(await second.findApiKeyByHash(sha256(key)), record);
    assert.deepEqual(await second.usageReport({ by: "key", since: createdAt, until: new Date(createdAt.getTime() + 1) }), [
      { group: record.id, requests: 1, promptTokens: 3, completionTokens: 4 },
    ]);
    await second.close();
  });

  test("a second store sees a key the first created, and concurrent key creation yields distinct keys", async () => {
    const [a, b] = [await openStore(), await openStore()];
    await Promise.all([a.migrate(), b.migrate()]);
    const created = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).createApiKey({ name: `contract-many-${i}` })));
    assert.equal(new Set(created.map((c) => c.record.id)).size, 20);
    assert.equal(new Set(created.map((c) => c.key)).size, 20);
    const listedByB = new Set((await b.listApiKeys()).map((k) => k.id));
    for (const { record } of created) assert.ok(listedByB.has(record.id));
  });
}
