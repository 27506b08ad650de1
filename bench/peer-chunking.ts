/**
 * What chunked prefill costs the peer (figures, not tests): llama-server, built from the source node-llama-cpp
 * bundles, with its batch cut at `--chunks` tokens and its KV cache unified across slots or one stream per slot
 * (`--kv`). One stream decodes (A); once it has 3 tokens, a ~330-token prompt arrives (B, prompt cache off). Prints
 * B's time to first token and A's longest gap and tokens while B's prompt is evaluated, the median over `--rounds`.
 * This is the question behind phiserve's `--max-step-ms` (bench/RESULTS.md "Fifth pass: padded decode rows,
 * logprobs, the peer's chunks"): what a decode token riding in a prompt chunk costs, and what cutting a prompt into
 * chunks costs, on this machine.
 *
 *   npm run bench:peer-chunking -- --llama-server BIN [--shape phi3-mini | --model FILE] [--chunks 40,512]
 *                                  [--kv split,unified] [--threads 2] [--rounds 2]
 */
import { parseArgs } from "node:util";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { startLlamaServer } from "./llama-server-process.ts";
import { sseChunks } from "./sse-chunks.ts";
import { median } from "./median.ts";

const { values: args } = parseArgs({
  options: {
    "llama-server": { type: "string" },
    model: { type: "string" },
    shape: { type: "string", default: "phi3-mini" },
    chunks: { type: "string", default: "40,512" },
    kv: { type: "string", default: "split,unified" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "2" },
  },
});

const WORDS = "time river stone light garden window silver market music paper forest engine winter story bridge ocean table yellow".split(" ");
const longPrompt = (round: number) => Array.from({ length: 300 }, (_, k) => WORDS[(k * 7 + round * 5) % WORDS.length]).join(" ");

/** Streams a chat completion; calls `onToken` with the time of each chunk that carries text. */
async function stream(url: string, body: object, onToken: (at: number) => void): Promise<void> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, stream: true }) });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  for await (const chunk of sseChunks(res.body)) if (chunk.choices?.[0]?.delta?.content) onToken(performance.now());
}

interface Probe {
  ttftMs: number;
  longestGapMs: number;
  tokensMeanwhile: number;
}

async function probe(url: string, round: number): Promise<Probe> {
  const times: number[] = [];
  let third!: () => void;
  const decoding = new Promise<void>((resolve) => (third = resolve));
  const a = stream(url, { messages: [{ role: "user", content: `hello ${round}` }], max_tokens: 80, temperature: 0, ignore_eos: true, cache_prompt: false }, (at) => {
    times.push(at);
    if (times.length === 3) third();
  });
  await decoding;
  const sent = performance.now();
  let first = 0;
  await stream(url, { messages: [{ role: "user", content: longPrompt(round) }], max_tokens: 1, temperature: 0, cache_prompt: false }, (at) => (first ||= at));
  await a;
  const gaps = times.slice(1).map((t, i) => [times[i]!, t] as const).filter(([from, to]) => to > sent && from < first);
  return { ttftMs: first - sent, longestGapMs: Math.max(0, ...gaps.map(([from, to]) => to - from)), tokensMeanwhile: gaps.length };
}

async function withServer<T>(bin: string, modelPath: string, chunk: number, kv: string, body: (url: string) => Promise<T>): Promise<T> {
  const threads = args.threads!;
  const server = await startLlamaServer(bin, ["-m", modelPath, "-t", threads, "-tb", threads, "-np", "2", "-c", "2048", "-b", String(chunk), "-ub", String(chunk), kv === "unified" ? "--kv-unified" : "--no-kv-unified"]);
  try {
    return await body(server.url);
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const bin = args["llama-server"];
  if (!bin) throw new Error("--llama-server BIN is required (bench/build-llama-server.sh builds it)");
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  console.log(`model ${modelPath}, llama-server ${bin}, ${args.threads} threads, 2 slots`);
  console.log("chunk  kv        B TTFT ms   A longest gap ms   A tokens meanwhile");
  for (const chunk of args.chunks!.split(",").map(Number)) {
    for (const kv of args.kv!.split(",")) {
      const probes = await withServer(bin, modelPath, chunk, kv, async (url) => {
        const out: Probe[] = [];
        for (let round = 0; round < Number(args.rounds); round++) out.push(await probe(url, round));
        return out;
      });
      const row = [String(chunk).padStart(5), kv.padEnd(8), String(Math.round(median(probes.map((p) => p.ttftMs)))).padStart(10), String(Math.round(median(probes.map((p) => p.longestGapMs)))).padStart(18), String(median(probes.map((p) => p.tokensMeanwhile))).padStart(20)];
      console.log(row.join("  "));
    }
  }
}

await main();
