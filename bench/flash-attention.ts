/**
 * Flash attention on or off (figures, not tests): node-llama-cpp's default is llama.cpp's "auto", which turns it on
 * wherever the backend has it, the CPU included. For each setting, one context with `--sequences` sequences:
 * a prompt's rate in one batch, then at each context length of `--contexts`, the median time of a decode step of every
 * sequence together (one token each, one native batch) and of a 25-token prompt chunk after that many tokens.
 *
 *   npm run bench:flash-attention -- [--shape phi3-mini | --model FILE] [--threads 2] [--sequences 1]
 *                                    [--contexts 128,512,1536] [--reps 3]
 */
import { parseArgs } from "node:util";
import { getLlama, type LlamaContextSequence } from "node-llama-cpp";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { median } from "./median.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "phi3-mini" },
    threads: { type: "string", default: "2" },
    sequences: { type: "string", default: "1" },
    contexts: { type: "string", default: "128,512,1536" },
    reps: { type: "string", default: "3" },
  },
});

async function time(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

async function main(): Promise<void> {
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath });
  const contexts = args.contexts!.split(",").map(Number);
  const longest = Math.max(...contexts);
  const count = Number(args.sequences);
  const reps = Number(args.reps);
  const text = "time river stone light garden window silver market music paper forest engine winter story ";
  const tokens = model.tokenize(text.repeat(Math.ceil((longest + 64) / 10)));
  console.log(`model ${modelPath}, ${args.threads} threads, binary ${llama.buildType}, ${count} sequence(s)`);
  console.log("flash attention  context  prompt ms/token (one batch)  decode step ms  25-token chunk ms");
  for (const flashAttention of [false, true]) {
    const context = await model.createContext({ contextSize: longest + 64, sequences: count, threads: Number(args.threads), batchSize: 512, flashAttention });
    const sequences: LlamaContextSequence[] = Array.from({ length: count }, () => context.getSequence());
    for (const length of contexts) {
      const prompt: number[] = [];
      for (const sequence of sequences) {
        await sequence.clearHistory();
        prompt.push((await time(() => sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, length)))) / length);
      }
      const decode: number[] = [];
      const chunk: number[] = [];
      for (let rep = 0; rep < reps; rep++) {
        // Every sequence's token in the same turn: one native batch.
        decode.push(await time(() => Promise.all(sequences.map((sequence) => sequence.evaluateWithoutGeneratingNewTokens([tokens[length + rep]!])))));
        const first = sequences[0]!;
        const at = first.nextTokenIndex;
        chunk.push(await time(() => first.evaluateWithoutGeneratingNewTokens(tokens.slice(at, at + 25))));
        await first.eraseContextTokenRanges([{ start: at, end: first.nextTokenIndex }]);
      }
      console.log(`${String(flashAttention).padEnd(16)} ${String(length).padStart(7)}  ${median(prompt).toFixed(1).padStart(27)}  ${median(decode).toFixed(0).padStart(14)}  ${median(chunk).toFixed(0).padStart(17)}`);
    }
    await context.dispose();
  }
  await model.dispose();
}

await main();
