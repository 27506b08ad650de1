import { test } from "node:test";
import assert from "node:assert/strict";
import { createStore } from "../store/create-store.ts";
import type { UsageEntry } from "../store/store.ts";
import { bucketStarts, buildUsageReport, buildUsageSeries, MAX_SERIES_BUCKETS } from "./usage-report.ts";

const prices = { default: { promptPer1k: 0.5, completionPer1k: 1 }, deployments: { big: { promptPer1k: 10, completionPer1k: 20 } } };

let sequence = 0;
const entry = (overrides: Partial<UsageEntry> & Pick<UsageEntry, "createdAt">): UsageEntry => ({
  requestId: `r${++sequence}`, principal: "key:a", deployment: "small", model: "m", promptTokens: 1000, completionTokens: 1000,
  status: 200, stream: false, completed: true, queuedMs: 0, durationMs: 100, ttftMs: 10, ...overrides,
});

async function storeWith(entries: UsageEntry[]) {
  const store = await createStore("sqlite::memory:");
  await store.migrate();
  for (const e of entries) await store.recordUsage(e);
  return store;
}

test("a report by key prices each request at its deployment's price, and the total sums the rows", async () => {
  const t = new Date("2010-01-01T10:30:00Z");
  const store = await storeWith([
    entry({ createdAt: t }), // small: 0.5 + 1
    entry({ createdAt: t, deployment: "big" }), // big: 10 + 20
    entry({ createdAt: t, principal: "key:b", promptTokens: 0, completionTokens: 0, status: 429, ttftMs: null }),
  ]);
  try {
    const report = await buildUsageReport(store, { since: undefined, until: undefined, by: "key" }, prices);
    assert.deepEqual(report.rows.map((r) => [r.group, r.requests, r.throttled, r.costUsd]), [["key:a", 2, 0, 31.5], ["key:b", 1, 1, 0]]);
    assert.equal(report.total.costUsd, 31.5);
    assert.equal(report.total.requests, 3);
    assert.equal(report.total.totalTokens, 4000);
    assert.deepEqual(report.prices, prices);
  } finally {
    await store.close();
  }
});

test("a series has a value for every bucket of the window, zero (or null percentiles) where nothing was recorded", async () => {
  const store = await storeWith([
    entry({ createdAt: new Date("2010-01-01T10:10:00Z") }),
    entry({ createdAt: new Date("2010-01-01T12:50:00Z"), deployment: "big", ttftMs: 30 }),
    entry({ createdAt: new Date("2010-01-01T12:55:00Z"), deployment: "big", ttftMs: 50 }),
  ]);
  try {
    const series = await buildUsageSeries(store, { since: new Date("2010-01-01T10:05:00Z"), until: new Date("2010-01-01T13:00:00Z"), bucket: "hour", by: "deployment" }, prices);
    assert.deepEqual(series.buckets, ["2010-01-01T10:00:00.000Z", "2010-01-01T11:00:00.000Z", "2010-01-01T12:00:00.000Z"]);
    assert.deepEqual(series.series.map((s) => s.name), ["big", "small"]);
    const [big, small] = series.series;
    assert.deepEqual(big!.requests, [0, 0, 2]);
    assert.deepEqual(big!.costUsd, [0, 0, 60]);
    assert.deepEqual(big!.ttftMsP50, [null, null, 40]);
    assert.deepEqual(small!.requests, [1, 0, 0]);
    const total = await buildUsageSeries(store, { since: new Date("2010-01-01T00:00:00Z"), until: new Date("2010-01-02T00:00:00Z"), bucket: "day", by: "none" }, prices);
    assert.deepEqual(total.series.map((s) => [s.name, s.requests, s.costUsd]), [["total", [3], [61.5]]]);
  } finally {
    await store.close();
  }
});

test("bucketStarts covers [since, until) from the bucket holding since, and refuses too many buckets", () => {
  assert.deepEqual(bucketStarts(new Date("2010-01-01T10:59:59Z"), new Date("2010-01-01T11:00:01Z"), "hour").map((d) => d.toISOString()), ["2010-01-01T10:00:00.000Z", "2010-01-01T11:00:00.000Z"]);
  assert.deepEqual(bucketStarts(new Date("2010-01-01T00:00:00Z"), new Date("2010-01-01T00:00:00Z"), "day"), []);
  assert.throws(() => bucketStarts(new Date(0), new Date((MAX_SERIES_BUCKETS + 1) * 3_600_000), "hour"), RangeError);
});
