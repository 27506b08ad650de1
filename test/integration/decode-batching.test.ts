/**
 * Decode-step grouping on the real engine (seeded Phi-3 test model, which never ends on its own):
 * which native batches the decode tokens went in is read from the engine's batching counters,
 * never from timings.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { LlamaCppEngine, type DecodeBatchingStats } from "../../src/engine/llama-cpp/llama-cpp-engine.ts";
import type { EngineEvent, GenerationRequest } from "../../src/engine/engine.ts";

const TOKENS = 24;
let modelPath: string;

before(async () => {
  modelPath = await ensureTestModel();
});

async function withEngine(decodeBatch: number, body: (engine: LlamaCppEngine) => Promise<void>, options: { maxStepMs?: number; contextSize?: number; padDecodeRows?: boolean } = {}): Promise<void> {
  const engine = new LlamaCppEngine({ modelPath, contextSize: options.contextSize ?? 256, parallel: 4, threads: 1, batchSize: 512, decodeBatch, gpu: "cpu", extraStopTokens: [], maxStepMs: options.maxStepMs, padDecodeRows: options.padDecodeRows }, pino({ level: "silent" }));
  await engine.load();
  try {
    await body(engine);
  } finally {
    await engine.close();
  }
}

function request(i: number, extra: Partial<GenerationRequest> = {}): GenerationRequest {
  return { prompt: `<|user|>\nstream ${i} ${"word ".repeat(i * 3)}<|end|>\n<|assistant|>\n`, maxTokens: TOKENS, temperature: 0.8, topP: 0.95, seed: i, presencePenalty: 0, frequencyPenalty: 0, ...extra };
}

async function collect(events: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const out: EngineEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

const tokenCount = (events: EngineEvent[]) => events.filter((e) => e.type === "token").length;

/** Decode tokens that went in batches of exactly `size` decode tokens. */
function tokensInBatchesOf(stats: DecodeBatchingStats, size: number): number {
  return (stats.decodeBatchSizes[size] ?? 0) * size;
}

function decodeTokens(stats: DecodeBatchingStats): number {
  return Object.entries(stats.decodeBatchSizes).reduce((sum, [size, count]) => sum + Number(size) * count, 0);
}

test("one sequence never waits at the decode gate", async () => {
  await withEngine(0, async (engine) => {
    const events = await collect(engine.generate(request(0), new AbortController().signal));
    assert.equal(tokenCount(events), TOKENS);
    const stats = engine.batchingStats();
    assert.equal(stats.soloSteps, TOKENS - 1, "every step after the prompt went at once");
    assert.equal(stats.groupsComplete + stats.groupsAfterGrace, 0);
    assert.equal(stats.decodeBatchSizes[1], TOKENS - 1);
  });
});

test("four decoding sequences are evaluated four tokens to a batch", async () => {
  await withEngine(0, async (engine) => {
    const results = await Promise.all([0, 1, 2, 3].map((i) => collect(engine.generate(request(i), new AbortController().signal))));
    assert.deepEqual(results.map(tokenCount), [TOKENS, TOKENS, TOKENS, TOKENS]);
    const stats = engine.batchingStats();
    const total = decodeTokens(stats);
    // Without the gate node-llama-cpp's loop gives batches of 3 with one sequence rotating out.
    assert.ok(tokensInBatchesOf(stats, 4) >= 0.85 * total, `decode batches ${JSON.stringify(stats.decodeBatchSizes)}`);
    assert.ok(total >= 4 * (TOKENS - 1));
    assert.equal(stats.unorderedBatches, 0, "every batch was put in sequence order (one llama.cpp micro-batch)");
    // The same counts reach /metrics through the engine's stats (phiserve_decode_batches, phiserve_decode_batch_tokens).
    const counters = engine.stats();
    assert.equal(counters.decodeBatchTokens, total);
    assert.equal(counters.decodeBatches, Object.entries(stats.decodeBatchSizes).filter(([size]) => Number(size) > 0).reduce((sum, [, count]) => sum + count, 0));
    assert.ok(counters.decodeBatchTokens / counters.decodeBatches > 3.5, "about four streams per decode batch");
  });
});

test("two streams among four sequences: their decode batches get two idle rows each, counted for /metrics, unless turned off", async () => {
  for (const padDecodeRows of [undefined, false]) {
    await withEngine(0, async (engine) => {
      const results = await Promise.all([0, 1].map((i) => collect(engine.generate(request(i), new AbortController().signal))));
      assert.deepEqual(results.map(tokenCount), [TOKENS, TOKENS]);
      const pairs = engine.batchingStats().decodeBatchSizes[2] ?? 0;
      assert.ok(pairs >= TOKENS - 2, `decode batches ${JSON.stringify(engine.batchingStats().decodeBatchSizes)}`);
      // Every batch of the two decode tokens alone is filled to four rows (a CPU engine pads by default); the
      // counter behind phiserve_decode_padding_rows counts the added rows, which are not decode tokens.
      const { decodePaddingRows, decodeBatchTokens } = engine.stats();
      if (padDecodeRows === false) assert.equal(decodePaddingRows, 0);
      else {
        assert.equal(decodePaddingRows % 2, 0, String(decodePaddingRows));
        assert.ok(decodePaddingRows >= 2 * (TOKENS - 2) && decodePaddingRows <= 2 * pairs, `${decodePaddingRows} rows for ${pairs} batches of 2`);
      }
      assert.equal(decodeBatchTokens, Object.entries(engine.batchingStats().decodeBatchSizes).reduce((sum, [size, count]) => sum + Number(size) * count, 0));
    }, padDecodeRows === undefined ? {} : { padDecodeRows });
  }
});

test("a decode batch cap splits the group into batches of at most that many tokens", async () => {
  await withEngine(2, async (engine) => {
    await Promise.all([0, 1, 2, 3].map((i) => collect(engine.generate(request(i), new AbortController().signal))));
    const stats = engine.batchingStats();
    assert.deepEqual(Object.keys(stats.decodeBatchSizes).map(Number).filter((size) => size > 2), [], JSON.stringify(stats.decodeBatchSizes));
    assert.ok(tokensInBatchesOf(stats, 2) >= 0.85 * decodeTokens(stats), JSON.stringify(stats.decodeBatchSizes));
  });
});

test("a consumer that stops pulling does not hold the other streams; it resumes where it stopped", async () => {
  await withEngine(0, async (engine) => {
    const stalled = engine.generate(request(9), new AbortController().signal)[Symbol.asyncIterator]();
    const first = await stalled.next(); // its prompt is evaluated and it is decoding: then nobody asks for more
    assert.equal(first.done, false);
    const others = await Promise.all([0, 1, 2].map((i) => collect(engine.generate(request(i), new AbortController().signal))));
    assert.deepEqual(others.map(tokenCount), [TOKENS, TOKENS, TOKENS]);
    assert.ok(engine.batchingStats().groupsAfterGrace >= 1, "the others went on without it");
    const rest: EngineEvent[] = [first.value as EngineEvent];
    for (let step = await stalled.next(); !step.done; step = await stalled.next()) rest.push(step.value);
    assert.equal(tokenCount(rest), TOKENS);
  });
});

test("aborted and finished sequences leave the group; logprobs requests take part and stay correct", async () => {
  await withEngine(0, async (engine) => {
    const abort = new AbortController();
    const aborted = (async () => {
      let n = 0;
      for await (const event of engine.generate(request(5, { maxTokens: 10_000 }), abort.signal)) if (event.type === "token" && ++n === 5) abort.abort();
      return n;
    })();
    const short = collect(engine.generate(request(6, { maxTokens: 3 }), new AbortController().signal));
    const logprobs = collect(engine.generate(request(7, { topLogprobs: 2, temperature: 0 }), new AbortController().signal));
    const plain = collect(engine.generate(request(8), new AbortController().signal));
    assert.ok((await aborted) <= 6);
    assert.equal(tokenCount(await short), 3);
    const withLogprobs = (await logprobs).filter((e) => e.type === "token");
    assert.equal(withLogprobs.length, TOKENS);
    for (const event of withLogprobs) {
      assert.equal(event.logprobs?.length, 1);
      assert.equal(event.logprobs[0]!.topLogprobs.length, 2);
      assert.ok(event.logprobs[0]!.logprob <= 0);
    }
    assert.equal(tokenCount(await plain), TOKENS);
  });
});

test("under a step budget a long prompt goes in chunks, each in a batch with the decoding stream's next token", async () => {
  // A budget of 1 ms: every step takes the minimum chunk (8 prompt tokens), so the prompt below takes dozens of steps.
  await withEngine(0, async (engine) => {
    const decoding = engine.generate(request(1, { maxTokens: 400 }), new AbortController().signal)[Symbol.asyncIterator]();
    const first = await decoding.next();
    assert.equal(first.done, false, "the stream is decoding");
    const before = engine.batchingStats();
    const longPrompt = request(2, { prompt: `<|user|>\n${"river stone light ".repeat(80)}<|end|>\n<|assistant|>\n`, maxTokens: 1 });
    const [rest, prompted] = await Promise.all([collect({ [Symbol.asyncIterator]: () => decoding }), collect(engine.generate(longPrompt, new AbortController().signal))]);
    assert.equal(tokenCount(prompted), 1);
    assert.equal(tokenCount(rest), 399);
    const after = engine.batchingStats();
    const chunks = after.promptBatches - before.promptBatches;
    const promptOnly = (after.decodeBatchSizes[0] ?? 0) - (before.decodeBatchSizes[0] ?? 0);
    assert.ok(chunks >= 20, `the prompt went in ${chunks} chunks`);
    // Without the batch loop waiting for the stream's next step, every other batch carried the prompt alone (the
    // loop built it before the stream had asked again): the stream got a token every second step.
    assert.ok(promptOnly <= chunks / 5, `${promptOnly} of ${chunks} prompt batches carried no decode token`);
  }, { maxStepMs: 1, contextSize: 1024 });
});
