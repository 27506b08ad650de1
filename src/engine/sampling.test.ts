import { test } from "node:test";
import assert from "node:assert/strict";
import { logSumExp, sampleToken, SeededRandom, toLogprob } from "./sampling.ts";

test("logprobs from logits sum to 1 and keep the order of the logits", () => {
  const logits = [2, 1, 0.5, -3];
  const stats = logSumExp(logits);
  const lp = logits.map((l) => toLogprob(l, stats));
  assert.ok(Math.abs(lp.reduce((s, v) => s + Math.exp(v), 0) - 1) < 1e-12);
  assert.ok(lp.every((v) => v <= 0));
  assert.deepEqual([...lp].sort((a, b) => b - a), lp);
});

test("temperature 0 is greedy; top_p keeps only the nucleus", () => {
  const entries = [[5, 1], [7, 3], [9, 2]] as const;
  assert.equal(sampleToken(entries, 0, 1, new SeededRandom(1)), 7);
  // With a tiny nucleus only the most likely token can be drawn, whatever the seed.
  for (let seed = 0; seed < 50; seed++) assert.equal(sampleToken(entries, 1, 0.01, new SeededRandom(seed)), 7);
});

test("sampling is deterministic per seed and follows the distribution", () => {
  const entries = [[1, Math.log(0.7)], [2, Math.log(0.2)], [3, Math.log(0.1)]] as const;
  const draw = (seed: number) => {
    const random = new SeededRandom(seed);
    return Array.from({ length: 2000 }, () => sampleToken(entries, 1, 1, random));
  };
  assert.deepEqual(draw(42), draw(42));
  const counts = draw(7).reduce((m, t) => m.set(t, (m.get(t) ?? 0) + 1), new Map<number, number>());
  assert.ok(Math.abs(counts.get(1)! / 2000 - 0.7) < 0.05, JSON.stringify([...counts]));
  assert.ok(Math.abs(counts.get(3)! / 2000 - 0.1) < 0.03, JSON.stringify([...counts]));
});

test("banned tokens (-Infinity) are never drawn", () => {
  const entries = [[1, 0], [2, -Infinity]] as const;
  for (let seed = 0; seed < 100; seed++) assert.equal(sampleToken(entries, 2, 1, new SeededRandom(seed)), 1);
});
