/**
 * What logprobs cost (figures, not tests): one stream at a time, the same prompts with and without
 * `logprobs: true, top_logprobs: 5` (or `--top N`), at temperature 0 and 1, interleaved over `--rounds`; prints the
 * decode rate of each and the slowdown (time per token with logprobs ÷ without).
 *
 *   npm run bench:logprobs -- [--shape tiny|phi3-mini | --model FILE] [--max-tokens 64] [--requests 4] [--rounds 3] [--top 5]
 */
import { parseArgs } from "node:util";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { startServer } from "../test/helpers/start-server.ts";
import { sseChunks } from "./sse-chunks.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "tiny" },
    "max-tokens": { type: "string", default: "64" },
    requests: { type: "string", default: "4" },
    rounds: { type: "string", default: "3" },
    threads: { type: "string" },
    top: { type: "string", default: "5" },
  },
});

const WORDS = "time river stone light garden window silver market music paper forest engine winter story bridge ocean table yellow".split(" ");
const prompt = (i: number) => Array.from({ length: 48 }, (_, k) => WORDS[(i * 7 + k * 5) % WORDS.length]).join(" ");

/** Decode time per token (ms) of one streamed request: first text to last, over the tokens after the first. */
async function msPerToken(url: string, i: number, temperature: number, logprobs: boolean): Promise<number> {
  const body = { messages: [{ role: "user", content: prompt(i) }], max_tokens: Number(args["max-tokens"]), temperature, seed: i, stream: true, stream_options: { include_usage: true }, ...(logprobs ? { logprobs: true, top_logprobs: Number(args.top) } : {}) };
  const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first = 0, last = 0, tokens = 0;
  for await (const chunk of sseChunks(res.body)) {
    if (chunk.choices?.[0]?.delta?.content) (last = performance.now()), (first ||= last);
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return (last - first) / Math.max(1, tokens - 1);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  const server = await startServer(["--model", modelPath, "--model-name", "phi-3.5-mini-instruct", "--parallel", "1", "--context", "1024", "--content-safety", "off", ...(args.threads ? ["--threads", args.threads] : [])], { timeoutMs: 600_000, env: { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "1" } });
  try {
    await msPerToken(server.url, 99, 0, true); // warm-up
    const samples: Record<string, number[]> = {};
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const temperature of [0, 1]) {
        for (const logprobs of [false, true]) {
          for (let r = 0; r < Number(args.requests); r++) (samples[`${temperature}/${logprobs}`] ??= []).push(await msPerToken(server.url, r, temperature, logprobs));
        }
      }
    }
    process.stdout.write(`model ${modelPath}\ntemperature   ms/token plain   ms/token top_logprobs ${args.top}   slowdown\n`);
    for (const temperature of [0, 1]) {
      const plain = median(samples[`${temperature}/false`]!), withLogprobs = median(samples[`${temperature}/true`]!);
      process.stdout.write(`${String(temperature).padStart(11)} ${plain.toFixed(3).padStart(16)} ${withLogprobs.toFixed(3).padStart(25)} ${(withLogprobs / plain).toFixed(2).padStart(10)}×\n`);
    }
  } finally {
    await server.close();
  }
}

await main();
