/**
 * The prompt cache's decisions (what is saved, what is used, what goes), with a store that records its calls;
 * the states themselves are saved and restored by the real engine in test/integration/prompt-cache.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Token } from "node-llama-cpp";
import { PromptCache, type StateStore } from "./prompt-cache.ts";

const tokens = (...runs: [number, number][]): Token[] => runs.flatMap(([start, count]) => Array.from({ length: count }, (_, i) => (start + i) as Token));

/** A store whose files are entries in a map; each state is 10 bytes a token. */
function memoryStore() {
  const files = new Map<string, readonly Token[]>();
  const loads: string[] = [];
  const store: StateStore<{ tokens: Token[] }> = {
    save: async (sequence, file) => (files.set(file, [...sequence.tokens]), sequence.tokens.length * 10),
    load: async (sequence, file) => {
      loads.push(file);
      sequence.tokens = [...files.get(file)!];
    },
    remove: async (file) => void files.delete(file),
  };
  return { store, files, loads };
}

test("a state is saved only when the next prompt would lose enough of it, and only once", async () => {
  const { store, files } = memoryStore();
  const cache = new PromptCache(store, "state-", 10_000, 8);
  const held = tokens([0, 20]);
  assert.equal(cache.worthSaving(held, 13), false, "7 tokens lost: cheaper to evaluate again");
  assert.equal(cache.worthSaving(held, 12), true);
  await cache.save({ tokens: held }, held);
  assert.equal(files.size, 1);
  assert.equal(cache.worthSaving(held, 0), false, "already held");
  assert.equal(cache.worthSaving(tokens([0, 15]), 0), false, "a prefix of a saved state");
  assert.equal(cache.worthSaving(tokens([0, 21]), 0), true, "one more token: not held");
  assert.equal(new PromptCache(store, "x-", 0, 8).worthSaving(held, 0), false, "no budget, nothing saved");
});

test("the saved state sharing the longest start with the prompt is used, if it beats the sequence's own by enough", async () => {
  const { store, loads } = memoryStore();
  const cache = new PromptCache(store, "state-", 10_000, 8);
  await cache.save({ tokens: tokens([0, 30]) }, tokens([0, 30]));
  await cache.save({ tokens: tokens([0, 10], [100, 30]) }, tokens([0, 10], [100, 30]));
  const prompt = tokens([0, 10], [100, 20], [500, 5]);
  const hit = cache.best(prompt, 0)!;
  assert.equal(hit.length, 30);
  assert.deepEqual(hit.entry.tokens, tokens([0, 10], [100, 30]));
  assert.equal(cache.best(prompt, 23), undefined, "7 more tokens than the sequence holds: not worth a restore");
  assert.equal(cache.best(tokens([900, 40]), 0), undefined);
  const sequence = { tokens: [] as Token[] };
  assert.equal(await cache.restore(sequence, hit.entry, 30), true);
  assert.deepEqual(sequence.tokens, tokens([0, 10], [100, 30]));
  assert.equal(loads.length, 1);
  assert.deepEqual({ restores: cache.stats.restores, restoredTokens: cache.stats.restoredTokens }, { restores: 1, restoredTokens: 30 });
});

test("a state that extends a saved one replaces it; over the budget the least recently used go; too large is not kept", async () => {
  const { store, files } = memoryStore();
  const cache = new PromptCache(store, "state-", 1_000, 8);
  await cache.save({ tokens: tokens([0, 40]) }, tokens([0, 40]));
  await cache.save({ tokens: tokens([0, 60]) }, tokens([0, 60]));
  assert.deepEqual({ entries: cache.stats.entries, bytes: cache.stats.bytes, files: files.size }, { entries: 1, bytes: 600, files: 1 });
  await cache.save({ tokens: tokens([1000, 30]) }, tokens([1000, 30]));
  // 600 + 300 fit; the first is used again, so it is the more recent one when the next does not fit.
  await cache.restore({ tokens: [] }, cache.best(tokens([0, 70]), 0)!.entry, 60);
  await cache.save({ tokens: tokens([2000, 20]) }, tokens([2000, 20]));
  assert.deepEqual([cache.best(tokens([1000, 31]), 0), cache.best(tokens([2000, 21]), 0)?.length, cache.best(tokens([0, 61]), 0)?.length], [undefined, 20, 60]);
  assert.equal(files.size, 2);
  await cache.save({ tokens: tokens([3000, 101]) }, tokens([3000, 101]));
  assert.equal(cache.stats.dropped, 1, "1,010 bytes alone are over the budget");
  assert.equal(files.size, 2, "its file is deleted");
  const gone = cache.best(tokens([2000, 21]), 0)!.entry;
  await cache.clear();
  assert.deepEqual([files.size, cache.stats.entries], [0, 0]);
  assert.equal(await cache.restore({ tokens: [] }, gone, 20), false, "an entry that went is not loaded");
});

test("an entry that fails to load is dropped", async () => {
  const { store, files } = memoryStore();
  const cache = new PromptCache({ ...store, load: () => Promise.reject(new Error("no such file")) }, "state-", 10_000, 8);
  await cache.save({ tokens: tokens([0, 20]) }, tokens([0, 20]));
  const hit = cache.best(tokens([0, 21]), 0)!;
  await assert.rejects(cache.restore({ tokens: [] }, hit.entry, 20), /no such file/);
  assert.deepEqual([cache.stats.entries, cache.stats.dropped, cache.stats.restores, files.size], [0, 1, 0, 0]);
  assert.equal(cache.best(tokens([0, 21]), 0), undefined);
});

test("a failed save keeps nothing and deletes what was written", async () => {
  const { store, files } = memoryStore();
  const failing: StateStore<{ tokens: Token[] }> = { ...store, save: async (_, file) => (files.set(file, []), Promise.reject(new Error("disk full"))) };
  const cache = new PromptCache(failing, "state-", 10_000, 8);
  await assert.rejects(cache.save({ tokens: tokens([0, 20]) }, tokens([0, 20])), /disk full/);
  assert.deepEqual([files.size, cache.stats.entries, cache.stats.dropped], [0, 0, 1]);
});
