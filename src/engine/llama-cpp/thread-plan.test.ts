import { test } from "node:test";
import assert from "node:assert/strict";
import { calibrateThreads, decodeSizes, ThreadPlan, threadCandidates, type CalibrationRunner } from "./thread-plan.ts";

test("candidates: 1, 2, half and all cores; sizes up to the sequences", () => {
  assert.deepEqual(threadCandidates(1), [1]);
  assert.deepEqual(threadCandidates(2), [1, 2]);
  assert.deepEqual(threadCandidates(16), [1, 2, 8, 16]);
  assert.deepEqual(decodeSizes(1), [1]);
  assert.deepEqual(decodeSizes(6), [1, 2, 4]);
  assert.deepEqual(decodeSizes(16), [1, 2, 4, 8]);
});

test("calibration keeps the fastest thread count per batch shape", async () => {
  // A binary whose two-thread pool is slow for one token and fast for four or more and for prompts.
  const cost = (tokens: number, threads: number) => (threads === 1 ? 10 * tokens : 15 + 2 * tokens);
  const calls: string[] = [];
  const runner: CalibrationRunner = {
    decodeStep: async (tokens, threads) => (calls.push(`d${tokens}@${threads}`), cost(tokens, threads)),
    promptChunk: async (threads) => (calls.push(`p@${threads}`), cost(32, threads)),
  };
  const data = await calibrateThreads(runner, [1, 2], [1, 2, 4, 8]);
  assert.deepEqual(data.decode, [[1, 1], [2, 1], [4, 2], [8, 2]]);
  assert.equal(data.prompt, 2);
  assert.equal(data.timings["decode4"]![1], 40);
  assert.equal(calls.filter((c) => c === "d1@1").length, 4, "warm-up, the hopelessness check, two timed");
  const plan = new ThreadPlan(data);
  assert.equal(plan.threadsFor(1, 0), 1);
  assert.equal(plan.threadsFor(3, 0), 2, "rounded up to the next measured size");
  assert.equal(plan.threadsFor(16, 0), 2, "beyond the largest: the largest's");
  assert.equal(plan.threadsFor(1, 100), 2, "a prompt chunk in the batch: the prompt's choice");
  assert.equal(plan.threadsFor(4, 2), 2);
});

test("a candidate far slower on one token is dropped after that timing", async () => {
  const calls: string[] = [];
  const runner: CalibrationRunner = {
    decodeStep: async (tokens, threads) => (calls.push(`d${tokens}@${threads}`), threads === 1 ? tokens : 150 * tokens),
    promptChunk: async (threads) => (calls.push(`p@${threads}`), threads === 1 ? 30 : 4000),
  };
  const data = await calibrateThreads(runner, [1, 2], [1, 2, 4]);
  assert.deepEqual(data.decode, [[1, 1], [2, 1], [4, 1]]);
  assert.equal(data.prompt, 1);
  assert.deepEqual(calls.filter((c) => c.endsWith("@2")), ["d1@2", "d1@2"], "warm-up and one timing only");
});

test("more threads are chosen only when they are more than 30 % faster", async () => {
  const runner: CalibrationRunner = {
    decodeStep: async (tokens, threads) => (threads === 1 ? 10 * tokens : 8 * tokens),
    promptChunk: async (threads) => (threads === 1 ? 100 : 50),
  };
  const data = await calibrateThreads(runner, [1, 2], [1, 2]);
  assert.deepEqual(data.decode, [[1, 1], [2, 1]], "20 % faster is not worth a second thread");
  assert.equal(data.prompt, 2, "twice as fast is");
});
