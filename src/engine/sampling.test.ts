import { test } from "node:test";
import assert from "node:assert/strict";
import { toLogprob } from "./sampling.ts";

test("logprobs from logits sum to 1 and keep the order of the logits", () => {
  const logits = [2, 1, 0.5, -3];
  const max = Math.max(...logits);
  const stats = { max, logSum: Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0)) };
  const lp = logits.map((l) => toLogprob(l, stats));
  assert.ok(Math.abs(lp.reduce((s, v) => s + Math.exp(v), 0) - 1) < 1e-12);
  assert.ok(lp.every((v) => v <= 0));
  assert.deepEqual([...lp].sort((a, b) => b - a), lp);
  assert.equal(toLogprob(max, { max, logSum: 0 }), 0, "a certain token has logprob 0");
});
