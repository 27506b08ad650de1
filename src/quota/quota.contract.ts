/**
 * The behaviour every {@link Quota} must have, run against each implementation by its own test
 * file. Clock-independent: windows stay one minute and nothing here waits for them, so the same
 * assertions hold for a fake clock (memory) and Redis server time. Exact timing lives in the
 * implementation-specific tests.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import type { Limit, Quota, ReserveResult } from "./quota.ts";

/** Makes a fresh quota for one test; the test closes it. */
export type QuotaFactory = () => Quota | Promise<Quota>;

/** A scope name no other test (or earlier run against the same Redis) uses. */
function freshScope(label: string): string {
  return `${label}:${randomUUID()}`;
}

function limit(label: string, requestsPerMinute: number, tokensPerMinute: number): Limit {
  return { scope: freshScope(label), requestsPerMinute, tokensPerMinute };
}

function assertDenied(result: ReserveResult): Extract<ReserveResult, { ok: false }> {
  assert.equal(result.ok, false, "expected the reservation to be refused");
  return result as Extract<ReserveResult, { ok: false }>;
}

function assertAdmitted(result: ReserveResult): Extract<ReserveResult, { ok: true }> {
  assert.equal(result.ok, true, `expected the reservation to be admitted: ${JSON.stringify(result)}`);
  return result as Extract<ReserveResult, { ok: true }>;
}

/** Runs `body` with a fresh quota, closing it afterwards whatever happens. */
async function using(makeQuota: QuotaFactory, body: (quota: Quota) => Promise<void>): Promise<void> {
  const quota = await makeQuota();
  try {
    await body(quota);
  } finally {
    await quota.close();
  }
}

/** Registers the shared contract tests under `describe(name)`. */
export function runQuotaContract(name: string, makeQuota: QuotaFactory): void {
  describe(`${name} (quota contract)`, () => {
    requestAndTokenLimits(makeQuota);
    commits(makeQuota);
    severalLimits(makeQuota);
    edgeCases(makeQuota);
  });
}

function requestAndTokenLimits(makeQuota: QuotaFactory): void {
  it("admits up to requestsPerMinute, then refuses with reason requests", () =>
    using(makeQuota, async (quota) => {
      const rpm = limit("deployment", 3, Infinity);
      for (let i = 1; i <= 3; i++) {
        const { state } = assertAdmitted(await quota.reserve([rpm], 0));
        assert.equal(state.limitRequests, 3);
        assert.equal(state.remainingRequests, 3 - i);
      }
      const denied = assertDenied(await quota.reserve([rpm], 0));
      assert.equal(denied.reason, "requests");
      assert.equal(denied.scope, rpm.scope);
      // The oldest entry was made a moment ago: nearly the whole minute is left.
      assert.ok(denied.retryAfterMs > 50_000 && denied.retryAfterMs <= 60_000, `${denied.retryAfterMs}`);
      assert.equal(denied.state.remainingRequests, 0);
    }));

  it("admits up to tokensPerMinute counting reserved tokens, then refuses with reason tokens", () =>
    using(makeQuota, async (quota) => {
      const tpm = limit("deployment", 100, 100);
      assert.equal(assertAdmitted(await quota.reserve([tpm], 60)).state.remainingTokens, 40);
      const denied = assertDenied(await quota.reserve([tpm], 41));
      assert.equal(denied.reason, "tokens");
      assert.equal(denied.state.remainingTokens, 40);
      assert.ok(denied.retryAfterMs > 50_000 && denied.retryAfterMs <= 60_000, `${denied.retryAfterMs}`);
      assert.equal(assertAdmitted(await quota.reserve([tpm], 40)).state.remainingTokens, 0);
    }));

  it("refuses a request larger than the whole token limit as never fitting (60 s, tokens)", () =>
    using(makeQuota, async (quota) => {
      const tpm = limit("deployment", 100, 100);
      const denied = assertDenied(await quota.reserve([tpm], 101));
      assert.deepEqual([denied.reason, denied.retryAfterMs, denied.scope], ["tokens", 60_000, tpm.scope]);
      assert.equal((await quota.peek([tpm]))?.remainingTokens, 100, "nothing recorded");
    }));

  it("refuses everything under a zero limit", () =>
    using(makeQuota, async (quota) => {
      const zero = limit("key", 0, 100);
      const denied = assertDenied(await quota.reserve([zero], 1));
      assert.deepEqual([denied.reason, denied.retryAfterMs], ["requests", 60_000]);
    }));
}

function commits(makeQuota: QuotaFactory): void {
  it("commit lowers the reserved tokens to the actual ones, freeing the rest", () =>
    using(makeQuota, async (quota) => {
      const tpm = limit("deployment", 100, 100);
      const first = assertAdmitted(await quota.reserve([tpm], 100));
      assertDenied(await quota.reserve([tpm], 10));
      await first.reservation.commit(30);
      assert.equal((await quota.peek([tpm]))?.remainingTokens, 70);
      assert.equal(assertAdmitted(await quota.reserve([tpm], 70)).state.remainingTokens, 0);
    }));

  it("only the first commit counts, and a commit never raises the reservation", () =>
    using(makeQuota, async (quota) => {
      const tpm = limit("deployment", 100, 100);
      const a = assertAdmitted(await quota.reserve([tpm], 50));
      await a.reservation.commit(30);
      await a.reservation.commit(0);
      assert.equal((await quota.peek([tpm]))?.remainingTokens, 70);
      const b = assertAdmitted(await quota.reserve([tpm], 20));
      await b.reservation.commit(500);
      assert.equal((await quota.peek([tpm]))?.remainingTokens, 50);
    }));

  it("commit applies to every scope of the reservation", () =>
    using(makeQuota, async (quota) => {
      const deployment = limit("deployment", 10, 1000);
      const key = limit("key", 10, 200);
      const { reservation } = assertAdmitted(await quota.reserve([deployment, key], 150));
      await reservation.commit(0);
      assert.equal((await quota.peek([deployment]))?.remainingTokens, 1000);
      assert.equal((await quota.peek([key]))?.remainingTokens, 200);
      assert.equal((await quota.peek([key]))?.remainingRequests, 9, "the request itself still counts");
    }));
}

function severalLimits(makeQuota: QuotaFactory): void {
  it("is all-or-nothing across scopes", () =>
    using(makeQuota, async (quota) => {
      const deployment = limit("deployment", 10, 1000);
      const key = limit("key", 1, 1000);
      assertAdmitted(await quota.reserve([deployment, key], 5));
      const denied = assertDenied(await quota.reserve([deployment, key], 5));
      assert.deepEqual([denied.scope, denied.reason], [key.scope, "requests"]);
      const state = await quota.peek([deployment]);
      assert.deepEqual([state?.remainingRequests, state?.remainingTokens], [9, 995], "refused: nothing recorded");
      assertAdmitted(await quota.reserve([deployment], 5));
    }));

  it("reports the tightest limit per dimension", () =>
    using(makeQuota, async (quota) => {
      const deployment = limit("deployment", 10, 50);
      const key = limit("key", 5, 1000);
      const { state } = assertAdmitted(await quota.reserve([deployment, key], 20));
      assert.deepEqual(state, { limitRequests: 5, remainingRequests: 4, limitTokens: 50, remainingTokens: 30 });
      assert.deepEqual(await quota.peek([deployment, key]), state);
    }));

  it("an unlimited dimension (Infinity) never refuses and never wins 'tightest'", () =>
    using(makeQuota, async (quota) => {
      const key = limit("key", 2, Infinity);
      const deployment = limit("deployment", 100, 1000);
      const { state } = assertAdmitted(await quota.reserve([key, deployment], 900));
      assert.deepEqual(state, { limitRequests: 2, remainingRequests: 1, limitTokens: 1000, remainingTokens: 100 });
      assertAdmitted(await quota.reserve([key], 1_000_000));
    }));

  it("counts a scope named twice once, under the stricter limits", () =>
    using(makeQuota, async (quota) => {
      const loose = limit("deployment", 10, 100);
      const strict = { ...loose, requestsPerMinute: 2 };
      const { state } = assertAdmitted(await quota.reserve([loose, strict], 10));
      assert.deepEqual([state.limitRequests, state.remainingRequests, state.remainingTokens], [2, 1, 90]);
    }));
}

function edgeCases(makeQuota: QuotaFactory): void {
  it("peek reports without reserving; no limits: undefined", () =>
    using(makeQuota, async (quota) => {
      const deployment = limit("deployment", 4, 40);
      const full = { limitRequests: 4, remainingRequests: 4, limitTokens: 40, remainingTokens: 40 };
      assert.deepEqual(await quota.peek([deployment]), full);
      assert.deepEqual(await quota.peek([deployment]), full);
      assert.equal(await quota.peek([]), undefined);
    }));

  it("no limits: admitted without recording; bad input is a RangeError", () =>
    using(makeQuota, async (quota) => {
      const { reservation } = assertAdmitted(await quota.reserve([], 10));
      await reservation.commit(5);
      const deployment = limit("deployment", 4, 40);
      await assert.rejects(quota.reserve([deployment], -1), RangeError);
      await assert.rejects(quota.reserve([deployment], 1.5), RangeError);
      await assert.rejects(quota.reserve([{ ...deployment, requestsPerMinute: -1 }], 1), RangeError);
      assert.equal((await quota.peek([deployment]))?.remainingRequests, 4);
    }));
}
