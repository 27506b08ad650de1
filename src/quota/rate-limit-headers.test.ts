import assert from "node:assert/strict";
import { it } from "node:test";
import { toRateLimitHeaders } from "./rate-limit-headers.ts";

it("reports the four Azure headers as non-negative integers", () => {
  assert.deepEqual(
    toRateLimitHeaders({ limitRequests: 1000, limitTokens: 200_000, remainingRequests: -3, remainingTokens: 1234.7 }),
    {
      "x-ratelimit-limit-requests": "1000",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-limit-tokens": "200000",
      "x-ratelimit-remaining-tokens": "1234",
    },
  );
});

it("leaves out a dimension without a limit", () => {
  assert.deepEqual(
    toRateLimitHeaders({ limitRequests: 5, limitTokens: Infinity, remainingRequests: 4, remainingTokens: Infinity }),
    { "x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "4" },
  );
});
