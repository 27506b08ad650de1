/**
 * The prompt cache on the real engine (seeded Phi-3 test model, one sequence): a sequence's state saved
 * when another prompt takes the sequence, restored for a prompt that starts with it, with the same
 * numbers as when the sequence still held it; without the cache, or with too small a one, the prompt is
 * evaluated again. Which tokens were evaluated is read from the engine's counters.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { LlamaCppEngine } from "../../src/engine/llama-cpp/llama-cpp-engine.ts";
import type { GenerationRequest, TokenLogprob } from "../../src/engine/engine.ts";

let modelPath: string;

before(async () => {
  modelPath = await ensureTestModel();
});

async function withEngine(promptCacheBytes: number | undefined, body: (engine: LlamaCppEngine) => Promise<void>): Promise<void> {
  const engine = new LlamaCppEngine({ modelPath, contextSize: 512, parallel: 1, threads: 1, batchSize: 512, gpu: "cpu", extraStopTokens: [], promptCacheBytes }, pino({ level: "silent" }));
  await engine.load();
  try {
    await body(engine);
  } finally {
    await engine.close();
  }
}

const chat = (text: string) => `<|user|>\n${text}<|end|>\n<|assistant|>\n`;
const LONG = chat("the river runs past the old stone bridge and the garden behind the market ".repeat(8));
const OTHER = chat("a short question about winter");

/** A greedy generation with logprobs (top 3): its tokens' texts and numbers, and what the engine evaluated for it. */
async function run(engine: LlamaCppEngine, prompt: string): Promise<{ logprobs: TokenLogprob[]; evaluated: number; reused: number }> {
  const before = engine.stats();
  const request: GenerationRequest = { prompt, maxTokens: 6, temperature: 0, topP: 1, seed: 1, presencePenalty: 0, frequencyPenalty: 0, topLogprobs: 3 };
  const logprobs: TokenLogprob[] = [];
  for await (const event of engine.generate(request, new AbortController().signal)) if (event.type === "token") logprobs.push(...(event.logprobs ?? []));
  const after = engine.stats();
  return { logprobs, evaluated: after.promptTokensEvaluated - before.promptTokensEvaluated, reused: after.promptTokensReused - before.promptTokensReused };
}

test("a prompt whose sequence was taken by another gets its state back from the cache, with the same numbers", async () => {
  await withEngine(64 * 1024 * 1024, async (engine) => {
    const first = await run(engine, LONG);
    assert.ok(first.evaluated > 100, `the long prompt is ${first.evaluated} tokens`);
    // The sequence still holds it: only the last prompt token is evaluated (for its logits).
    const held = await run(engine, LONG);
    assert.deepEqual([held.evaluated, held.reused], [1, first.evaluated - 1]);
    assert.equal(engine.promptCacheStats()!.saves, 0, "nothing was overwritten yet");
    await run(engine, OTHER);
    assert.deepEqual({ saves: engine.promptCacheStats()!.saves, entries: engine.promptCacheStats()!.entries }, { saves: 1, entries: 1 });
    const restored = await run(engine, LONG);
    assert.deepEqual([restored.evaluated, restored.reused], [1, first.evaluated - 1], "restored, not evaluated");
    assert.equal(engine.promptCacheStats()!.restores, 1);
    // The same state and the same one-token evaluation as when the sequence held it: the same tokens and numbers.
    assert.deepEqual(restored.logprobs, held.logprobs);
    assert.equal(restored.logprobs.length, 6);
    // The short prompt's state, cut when the long one came back, was too short to be worth saving.
    assert.equal(engine.promptCacheStats()!.saves, 1);
  });
});

test("without a prompt cache, or with one too small for a state, the prompt is evaluated again", async () => {
  for (const budget of [undefined, 1024]) {
    await withEngine(budget, async (engine) => {
      const first = await run(engine, LONG);
      await run(engine, OTHER);
      const again = await run(engine, LONG);
      assert.ok(again.evaluated > first.evaluated - 10, `evaluated ${again.evaluated} of ${first.evaluated} (only the template's start is shared)`);
      if (budget === undefined) assert.equal(engine.promptCacheStats(), undefined);
      else assert.deepEqual([engine.promptCacheStats()!.entries, engine.promptCacheStats()!.dropped], [0, 1]);
    });
  }
});

test("a saved state whose file is gone (a temporary-folder cleaner) costs an evaluation, not the request", async () => {
  const before = new Set(await readdir(tmpdir()));
  await withEngine(64 * 1024 * 1024, async (engine) => {
    const folders = (await readdir(tmpdir())).filter((name) => name.startsWith("phiserve-prompt-cache-") && !before.has(name));
    assert.equal(folders.length, 1, `the engine's cache folder among ${folders.join(", ")}`);
    const folder = join(tmpdir(), folders[0]!);
    const first = await run(engine, LONG);
    await run(engine, OTHER);
    const files = await readdir(folder);
    assert.equal(files.length, 1, "the long prompt's state is saved");
    await rm(join(folder, files[0]!));
    const again = await run(engine, LONG);
    assert.equal(again.evaluated, first.evaluated, "evaluated again, whole");
    assert.deepEqual([engine.promptCacheStats()!.restores, engine.promptCacheStats()!.entries, engine.promptCacheStats()!.dropped], [0, 0, 1], "the lost entry is dropped");
    // Flash attention (llama.cpp's default) makes a token's numbers independent of how its prompt was batched.
    assert.deepEqual(again.logprobs, first.logprobs);
  });
  assert.deepEqual((await readdir(tmpdir())).filter((name) => name.startsWith("phiserve-prompt-cache-") && !before.has(name)), [], "the folder is deleted at close");
});
