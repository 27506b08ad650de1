/**
 * Where the limit is (figures, not tests): a roofline for one model on this machine.
 * - Memory: a STREAM-style copy probe (one worker thread per core, each copying a 256 MiB buffer with
 *   TypedArray.set, i.e. memcpy) gives the machine's bandwidth; a decode step reads every weight once
 *   whatever the batch, so weights ÷ bandwidth is the fastest a decode step can be.
 * - Compute: a prompt chunk is compute-bound; its rate × 2 × parameters is the FLOP/s the binary
 *   reaches, and a batch of B decode tokens needs B × 2 × parameters.
 * Then it times real decode steps of 1, 2, 4 sequences through node-llama-cpp and prints each
 * against both floors.
 *
 *   npm run bench:roofline -- [--shape phi3-mini|tiny | --model FILE] [--threads 2]
 */
import { parseArgs } from "node:util";
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { getLlama, type LlamaContextSequence } from "node-llama-cpp";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "phi3-mini" },
    threads: { type: "string", default: String(availableParallelism()) },
  },
});

/** Copy bandwidth (GB/s, bytes read + bytes written, as STREAM counts them) with `workers` threads at once. */
async function copyBandwidth(workers: number): Promise<number> {
  const code = `
    const { parentPort } = require("node:worker_threads");
    const n = 32 * 1024 * 1024; // 256 MiB of float64
    const a = new Float64Array(n).fill(1), b = new Float64Array(n);
    parentPort.once("message", () => {
      b.set(a); // warm: pages mapped
      const started = performance.now();
      for (let i = 0; i < 6; i++) (i % 2 ? a : b).set(i % 2 ? b : a);
      parentPort.postMessage({ bytes: 6 * 2 * n * 8, ms: performance.now() - started });
    });
    parentPort.postMessage("ready");`;
  const threads = Array.from({ length: workers }, () => new Worker(code, { eval: true }));
  await Promise.all(threads.map((w) => new Promise((r) => w.once("message", r))));
  const started = performance.now();
  const results = await Promise.all(threads.map((w) => new Promise<{ bytes: number; ms: number }>((r) => (w.once("message", r), w.postMessage("go")))));
  const wall = performance.now() - started;
  await Promise.all(threads.map((w) => w.terminate()));
  return results.reduce((a, r) => a + r.bytes, 0) / (wall / 1000) / 1e9;
}

async function main(): Promise<void> {
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  const threads = Number(args.threads);
  const bandwidth = Math.max(await copyBandwidth(1), await copyBandwidth(availableParallelism()));
  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath });
  const weightBytes = statSync(modelPath).size;
  const parameters = model.fileInsights.totalParameters ?? 0;
  const context = await model.createContext({ contextSize: 1024, sequences: 4, threads, batchSize: 512 });
  const sequences = Array.from({ length: 4 }, () => context.getSequence());
  const text = model.tokenize("The river carried light stone past the silver market, and the winter story went on. ".repeat(20));
  // Compute: a 256-token prompt chunk.
  const chunk = text.slice(0, 256);
  await sequences[0]!.evaluateWithoutGeneratingNewTokens(chunk.slice(0, 16)); // warm
  await sequences[0]!.clearHistory();
  let started = performance.now();
  await sequences[0]!.evaluateWithoutGeneratingNewTokens(chunk);
  const promptRate = chunk.length / ((performance.now() - started) / 1000);
  const flops = promptRate * 2 * parameters;
  await sequences[0]!.clearHistory();
  for (const s of sequences) await s.evaluateWithoutGeneratingNewTokens(text.slice(0, 8));
  const step = async (active: LlamaContextSequence[]) => {
    const t = performance.now();
    await Promise.all(active.map((s, i) => s.evaluateWithoutGeneratingNewTokens([text[10 + i]!])));
    return performance.now() - t;
  };
  const rows: string[] = [];
  const memoryFloorMs = (weightBytes / (bandwidth * 1e9)) * 1000;
  for (const batch of [1, 2, 4]) {
    await step(sequences.slice(0, batch));
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await step(sequences.slice(0, batch)));
    const ms = times.sort((a, b) => a - b)[2]!;
    const computeFloorMs = ((batch * 2 * parameters) / flops) * 1000;
    rows.push(
      `batch ${batch}: ${ms.toFixed(1)} ms per step (${((batch * 1000) / ms).toFixed(1)} tok/s); memory floor ${memoryFloorMs.toFixed(1)} ms ` +
        `(${((weightBytes / (ms / 1000)) / 1e9).toFixed(1)} GB/s of weights = ${((100 * memoryFloorMs) / ms).toFixed(0)} % of the probe), ` +
        `compute floor ${computeFloorMs.toFixed(1)} ms (${((100 * computeFloorMs) / ms).toFixed(0)} %)`,
    );
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  process.stdout.write(
    [
      `model ${modelPath}: ${(weightBytes / 1e9).toFixed(2)} GB of weights, ${(parameters / 1e9).toFixed(2)} B parameters; ${llama.buildType} binary, threads ${threads}`,
      `memory: copy probe ${bandwidth.toFixed(1)} GB/s (read + write, ${availableParallelism()} threads)`,
      `compute: prompt ${promptRate.toFixed(1)} tok/s → ${(flops / 1e9).toFixed(0)} GFLOP/s (2 × parameters per token)`,
      ...rows,
    ].join("\n") + "\n",
  );
}

await main();
