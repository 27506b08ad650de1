/**
 * What a decode step costs by its number of rows (figures, not tests): node-llama-cpp on one context with
 * `--sequences` sequences, each holding a short prompt; then, for k = 1 … sequences, k sequences each evaluate one
 * token in the same native batch, `--reps` times; prints the median ms per batch and per row. On CPUs, ggml's
 * repacked kernels multiply rows in blocks of 4 and the rest one by one (docs/ENGINE-NOTES.md "Decode rows and
 * prompt chunks"), which this shows as a step of 2 or 3 rows costing more than one of 4.
 *
 * `--pad all` fills every batch up to a multiple of 4 rows with tokens of idle sequences (`padDecodeRows`), `--pad
 * engine` as the engine does (decode-row-padding.ts), `--pad none` (the default) not at all.
 *
 *   npm run bench:decode-rows -- [--shape phi3-mini | --model FILE] [--sequences 8] [--reps 5] [--threads 2]
 *                                [--pad none|all|engine]
 */
import { parseArgs } from "node:util";
import { getLlama, type LlamaContextSequence, type Token } from "node-llama-cpp";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { padDecodeRows } from "../src/engine/llama-cpp/node-llama-cpp-internals.ts";
import { decodeRowPadding } from "../src/engine/llama-cpp/decode-row-padding.ts";
import { median } from "./median.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "phi3-mini" },
    sequences: { type: "string", default: "8" },
    reps: { type: "string", default: "5" },
    threads: { type: "string", default: "2" },
    pad: { type: "string", default: "none" },
  },
});

async function main(): Promise<void> {
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  const count = Number(args.sequences);
  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ sequences: count, contextSize: 512 * count, threads: Number(args.threads), batchSize: 512 });
  let padded = 0;
  const policy = args.pad === "all" ? (rows: number) => (4 - (rows % 4)) % 4 : args.pad === "engine" ? decodeRowPadding : () => 0;
  padDecodeRows(context, { padding: policy, padded: (_, added) => (padded += added), failed: (row) => console.error("padding row not removed", row) });
  const sequences: LlamaContextSequence[] = Array.from({ length: count }, () => context.getSequence());
  const prompt = model.tokenize("time river stone light garden window silver market music paper forest engine winter story");
  await Promise.all(sequences.map((sequence) => sequence.evaluateWithoutGeneratingNewTokens(prompt)));
  const token = prompt[1] as Token;
  console.log(`model ${modelPath}, ${args.threads} threads, binary ${llama.buildType}, padding ${args.pad}`);
  console.log("rows  ms/batch  ms/row");
  const reps = Number(args.reps);
  for (let rows = 1; rows <= count; rows++) {
    const times: number[] = [];
    // One warm-up batch, then the timed ones; the rows' evaluations are queued in one turn, so they share a native batch.
    for (let rep = 0; rep <= reps; rep++) {
      const start = performance.now();
      await Promise.all(sequences.slice(0, rows).map((sequence) => sequence.evaluateWithoutGeneratingNewTokens([token])));
      if (rep > 0) times.push(performance.now() - start);
    }
    const ms = median(times);
    console.log(`${String(rows).padStart(4)}  ${ms.toFixed(1).padStart(8)}  ${(ms / rows).toFixed(1).padStart(6)}`);
  }
  console.log(`padding rows added: ${padded}`);
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

await main();
