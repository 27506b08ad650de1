import { test } from "node:test";
import assert from "node:assert/strict";
import { LogitSampler, topEntries, type SamplerOptions } from "./onnx-sampler.ts";

const options = (extra: Partial<SamplerOptions> = {}): SamplerOptions => ({
  vocabSize: 6, temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0, bias: new Map(), topLogprobs: undefined, seed: 1, ...extra,
});
const LOGITS = Float32Array.from([1, 3, 2, 3, 0, -1]);

test("temperature 0 takes the highest logit, the first of equals", () => {
  assert.equal(new LogitSampler(options()).choose(LOGITS).token, 1);
});

test("logit_bias moves and bans tokens; a fully banned vocabulary ends the generation", () => {
  assert.equal(new LogitSampler(options({ bias: new Map([[1, -Infinity]]) })).choose(LOGITS).token, 3);
  assert.equal(new LogitSampler(options({ bias: new Map([[5, 10]]) })).choose(LOGITS).token, 5);
  const all = new Map(Array.from({ length: 6 }, (_, i) => [i, -Infinity] as [number, number]));
  assert.equal(new LogitSampler(options({ bias: all })).choose(LOGITS).token, -1);
});

test("penalties follow OpenAI's formula over the generated tokens", () => {
  const frequency = new LogitSampler(options({ frequencyPenalty: 0.6, topLogprobs: 6 }));
  frequency.accept(1);
  frequency.accept(1);
  // Token 1: 3 − 2 × 0.6 = 1.8 < token 3's 3.
  const choice = frequency.choose(LOGITS);
  assert.equal(choice.token, 3);
  const logits = [1, 1.8, 2, 3, 0, -1];
  const logSum = Math.log(logits.reduce((s, l) => s + Math.exp(l - 3), 0));
  assert.ok(Math.abs(choice.top.find(([id]) => id === 1)![1] - (1.8 - 3 - logSum)) < 1e-5);
  const presence = new LogitSampler(options({ presencePenalty: 1.5, topLogprobs: 6 }));
  presence.accept(1);
  presence.accept(1);
  presence.accept(3);
  const chosen = presence.choose(LOGITS);
  assert.equal(chosen.token, 2, "both 3s lose 1.5, once however often they came; 2 wins");
  const top = new Map(chosen.top);
  assert.ok(Math.abs(top.get(1)! - top.get(3)!) < 1e-6);
  assert.ok(Math.abs(top.get(2)! - top.get(1)! - 0.5) < 1e-6);
});

test("logprobs are the log-softmax before temperature, with the top alternatives highest first", () => {
  const choice = new LogitSampler(options({ topLogprobs: 3, temperature: 0 })).choose(LOGITS);
  const logSum = Math.log([...LOGITS].reduce((s, l) => s + Math.exp(l - 3), 0));
  assert.ok(Math.abs(choice.logprob - (0 - logSum)) < 1e-6);
  assert.deepEqual(choice.top.map(([id]) => id), [1, 3, 2]);
  assert.ok(Math.abs(choice.top.reduce((s, [, l]) => s + Math.exp(l), 0) - [3, 3, 2].reduce((s, l) => s + Math.exp(l - 3 - logSum), 0)) < 1e-6);
});

test("seeded sampling is reproducible and follows the distribution; top-p keeps only the nucleus", () => {
  const draw = (seed: number, topP: number, n = 2000) => {
    const sampler = new LogitSampler(options({ temperature: 1, topP, seed }));
    return Array.from({ length: n }, () => sampler.choose(LOGITS).token);
  };
  assert.deepEqual(draw(7, 1, 50), draw(7, 1, 50));
  assert.notDeepEqual(draw(7, 1, 50), draw(8, 1, 50));
  const counts = new Array<number>(6).fill(0);
  for (const t of draw(3, 1)) counts[t]!++;
  const total = [...LOGITS].reduce((s, l) => s + Math.exp(l), 0);
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(counts[i]! / 2000 - Math.exp(LOGITS[i]!) / total) < 0.04, `token ${i}: ${counts[i]}`);
  // Tokens 1 and 3 hold 2 × e³ / total ≈ 0.78 of the mass: top-p 0.5 keeps exactly those two.
  assert.deepEqual(new Set(draw(3, 0.5)), new Set([1, 3]));
  assert.deepEqual(new Set(draw(3, 0.8)), new Set([1, 3, 2]));
});

test("topEntries returns the highest finite values, highest first", () => {
  assert.deepEqual(topEntries(Float32Array.from([0, 5, -Infinity, 7, 5, 1]), 3), [[3, 7], [1, 5], [4, 5]]);
  assert.deepEqual(topEntries(Float32Array.from([-Infinity, 2]), 5), [[1, 2]]);
  assert.deepEqual(topEntries(Float32Array.from([1]), 0), []);
});
