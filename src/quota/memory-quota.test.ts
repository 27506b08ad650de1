import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Limit, Quota, ReserveResult } from "./quota.ts";
import { MemoryQuota } from "./memory-quota.ts";
import { runQuotaContract } from "./quota.contract.ts";

runQuotaContract("MemoryQuota", () => new MemoryQuota());

/** A quota on a clock the test moves by hand. */
function fakeClock(): { quota: Quota; at: (ms: number) => void } {
  let now = 1_000_000;
  const start = now;
  return { quota: new MemoryQuota({ now: () => now }), at: (ms) => (now = start + ms) };
}

function denied(result: ReserveResult): Extract<ReserveResult, { ok: false }> {
  assert.equal(result.ok, false, "expected a refusal");
  return result as Extract<ReserveResult, { ok: false }>;
}

function admitted(result: ReserveResult): Extract<ReserveResult, { ok: true }> {
  assert.equal(result.ok, true, `expected admission: ${JSON.stringify(result)}`);
  return result as Extract<ReserveResult, { ok: true }>;
}

const deployment = (rpm: number, tpm: number): Limit => ({ scope: "deployment:d", requestsPerMinute: rpm, tokensPerMinute: tpm });

describe("MemoryQuota sliding window (fake clock)", () => {
  it("requests leave the window exactly 60 s after they entered; retryAfterMs is exact", async () => {
    const { quota, at } = fakeClock();
    const limits = [deployment(2, 1000)];
    at(0);
    admitted(await quota.reserve(limits, 1));
    at(10_000);
    admitted(await quota.reserve(limits, 1));
    at(30_000);
    assert.equal(denied(await quota.reserve(limits, 1)).retryAfterMs, 30_000);
    at(59_999);
    assert.equal(denied(await quota.reserve(limits, 1)).retryAfterMs, 1);
    at(60_000);
    admitted(await quota.reserve(limits, 1));
    // Now the entry from 10 s is the oldest: free at 70 s.
    assert.equal(denied(await quota.reserve(limits, 1)).retryAfterMs, 10_000);
    at(130_000);
    assert.deepEqual(await quota.peek(limits), { limitRequests: 2, remainingRequests: 2, limitTokens: 1000, remainingTokens: 1000 });
  });

  it("token retryAfterMs waits for just enough of the oldest tokens to leave", async () => {
    const { quota, at } = fakeClock();
    const limits = [deployment(100, 100)];
    at(0);
    admitted(await quota.reserve(limits, 30));
    at(5_000);
    admitted(await quota.reserve(limits, 30));
    at(10_000);
    admitted(await quota.reserve(limits, 40));
    at(20_000);
    // 30 needed: the 30 from t=0 suffice (free at 60 s). 50 needed: also the 30 from t=5 s (65 s).
    assert.equal(denied(await quota.reserve(limits, 30)).retryAfterMs, 40_000);
    assert.equal(denied(await quota.reserve(limits, 50)).retryAfterMs, 45_000);
    assert.equal(denied(await quota.reserve(limits, 100)).retryAfterMs, 50_000);
    at(65_000);
    assert.equal(admitted(await quota.reserve(limits, 60)).state.remainingTokens, 0);
  });

  it("a commit lowers what later leaves the window, and the wait accounts for it", async () => {
    const { quota, at } = fakeClock();
    const limits = [deployment(100, 100)];
    at(0);
    const first = admitted(await quota.reserve(limits, 60));
    at(1_000);
    admitted(await quota.reserve(limits, 40));
    await first.reservation.commit(10);
    at(2_000);
    // 50 used: 60 more needs 10 gone, which the committed first entry (10) frees at 60 s.
    assert.equal(denied(await quota.reserve(limits, 60)).retryAfterMs, 58_000);
    admitted(await quota.reserve(limits, 50));
  });

  it("a commit after its entry left the window changes nothing", async () => {
    const { quota, at } = fakeClock();
    const limits = [deployment(100, 100)];
    at(0);
    const old = admitted(await quota.reserve(limits, 50));
    at(60_000);
    admitted(await quota.reserve(limits, 100));
    await old.reservation.commit(0);
    assert.equal((await quota.peek(limits))?.remainingTokens, 0);
  });

  it("across scopes, the longest wait is reported (the request fits only when all do)", async () => {
    const { quota, at } = fakeClock();
    const a: Limit = { scope: "deployment:a", requestsPerMinute: 1, tokensPerMinute: 1000 };
    const b: Limit = { scope: "key:b", requestsPerMinute: 1, tokensPerMinute: 1000 };
    at(0);
    admitted(await quota.reserve([a], 1));
    at(10_000);
    admitted(await quota.reserve([b], 1));
    at(20_000);
    const refusal = denied(await quota.reserve([a, b], 1));
    assert.deepEqual([refusal.scope, refusal.reason, refusal.retryAfterMs], ["key:b", "requests", 50_000]);
  });

  it("a clock that steps back does not resurrect or strand entries", async () => {
    const { quota, at } = fakeClock();
    const limits = [deployment(2, 1000)];
    at(10_000);
    admitted(await quota.reserve(limits, 1));
    at(5_000);
    admitted(await quota.reserve(limits, 1));
    at(70_000);
    assert.equal((await quota.peek(limits))?.remainingRequests, 2);
  });

  it("keeps exact counts over many entries (compaction)", async () => {
    const { quota, at } = fakeClock();
    const limits = [deployment(5_000, 1_000_000)];
    for (let i = 0; i < 4_000; i++) {
      at(i * 30);
      admitted(await quota.reserve(limits, 3));
    }
    // At 120 s the entries from t ≤ 60 s are gone: those at 60 030 … 119 970 ms remain (1 999).
    at(120_000);
    const state = await quota.peek(limits);
    assert.deepEqual([state?.remainingRequests, state?.remainingTokens], [5_000 - 1_999, 1_000_000 - 3 * 1_999]);
  });
});
