/**
 * The engine's tuning against the installed node-llama-cpp binary (prebuilt in CI, a local build
 * where `phiserve engine build` ran): which binary it is, the native-batch hook, and the thread plan
 * measured at load and then read from its cache.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { getLlama } from "node-llama-cpp";
import { ensureTestModel } from "../../model-factory/test-models.ts";
import { describeBinary, inspectBinary, parseSystemInfo } from "./engine-binary.ts";
import { instrumentNativeBatches } from "./node-llama-cpp-internals.ts";
import { LlamaCppEngine } from "./llama-cpp-engine.ts";
import { Cancellation } from "../../lib/cancellation.ts";

test("llama.cpp's system info line is read into flags", () => {
  const flags = parseSystemInfo("CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | OPENMP = 1 | REPACK = 1 | ");
  assert.deepEqual([...flags], [["SSE3", "1"], ["AVX2", "1"], ["AVX512", "0"], ["OPENMP", "1"], ["REPACK", "1"]]);
});

test("the installed binary is described as llama.cpp reports it", async () => {
  const binary = await inspectBinary("cpu");
  assert.ok(binary.buildType === "prebuilt" || binary.buildType === "localBuild");
  assert.equal(binary.gpu, false);
  assert.match(binary.llamaCpp, /^v\d/);
  assert.ok(binary.cpuFeatures.length > 0, "x86-64 binaries report SSE/AVX flags");
  assert.ok(!binary.cpuFeatures.includes("OPENMP"), "OpenMP is its own field");
  assert.ok(binary.cpuMathCores >= 1);
});

test("the native-batch hook times every batch of the real context and applies the thread count asked for", async () => {
  const llama = await getLlama({ gpu: false, build: "never" });
  try {
    const model = await llama.loadModel({ modelPath: await ensureTestModel() });
    const context = await model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
    const durations: number[] = [];
    let asked = 0;
    instrumentNativeBatches(context, { threads: () => (asked++, 1), done: (ms) => durations.push(ms) });
    const sequence = context.getSequence();
    let tokens = 0;
    for await (const token of sequence.evaluate(model.tokenize("The river carried light stone"), { temperature: 0 })) {
      void token;
      if (++tokens === 4) break;
    }
    assert.equal(durations.length, 4, "one prompt batch and three decode batches");
    assert.equal(asked, durations.length);
    assert.ok(durations.every((ms) => ms > 0 && Number.isFinite(ms)));
    assert.equal(describeBinary(llama).gpu, false);
  } finally {
    await llama.dispose();
  }
});

test("without --threads the engine measures a thread plan at load, caches it, and the next load reads it", async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "phiserve-tuning-"));
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const modelPath = await ensureTestModel();
  const engineOptions = { modelPath, contextSize: 256, parallel: 2, batchSize: 64, gpu: "cpu" as const, extraStopTokens: [], calibration: { cacheDir } };
  try {
    for (const round of [0, 1]) {
      const engine = new LlamaCppEngine(engineOptions, logger);
      await engine.load();
      // It still generates after the calibration (its sequences were cleared).
      const events = [];
      for await (const event of engine.generate({ prompt: "<|user|>\nHi<|end|>\n<|assistant|>\n", maxTokens: 3, temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0 }, new Cancellation())) events.push(event);
      assert.equal(events.at(-1)?.type, "done");
      assert.equal(engine.stats().promptTokensReused, 0, "calibration leaves nothing in the sequences to reuse");
      await engine.close();
      const plans = lines.filter((l) => l.event === "engine.threads");
      assert.equal(plans.length, round + 1);
      assert.equal(plans[round]!.cached, round === 1, round === 0 ? "measured at the first load" : "read from the cache at the second");
      const decode = plans[round]!.decode as [number, number][];
      assert.deepEqual(decode.map(([size]) => size), [1, 2], "decode sizes up to the context's 2 sequences");
      assert.ok(decode.every(([, threads]) => threads >= 1));
    }
    const files = readdirSync(cacheDir);
    assert.equal(files.length, 1);
    assert.ok(JSON.parse(readFileSync(join(cacheDir, files[0]!), "utf8")).decode);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
