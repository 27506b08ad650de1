/**
 * Stall benchmark (figures, not tests): do decoding streams keep going while new prompts are
 * evaluated? Four requests arrive staggered (`--stagger` ms apart) at a phiserve server with four
 * sequences; for each `--max-step-ms` budget (a fresh server each, "none" = prompts fill the batch)
 * it prints the longest gap between two tokens of a stream that was already decoding, time to first
 * token p50/p99, and aggregate tokens/s, each the median over `--rounds`.
 *
 *   npm run bench:stall -- [--shape phi3-mini|tiny | --model FILE] [--budgets none,250,500,1000]
 *                          [--stagger 1500] [--max-tokens 32] [--rounds 2] [--threads 2] [--detail]
 *
 * `--detail` also prints, per round, each stream's start and token times (ms from the round's start), and
 * runs the server at log level trace to print each native batch: its end time, decode and prompt tokens, ms.
 */
import { parseArgs } from "node:util";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { startServer } from "../test/helpers/start-server.ts";
import { sseChunks } from "./sse-chunks.ts";

/** The benchmarks run the sources (tsx): the thread pool the installed CLI picks (bin/phiserve.cjs) comes from here. */
const INSTALLED_CLI_ENV = { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "1" };

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "phi3-mini" },
    budgets: { type: "string", default: "none,250,500,1000" },
    stagger: { type: "string", default: "1500" },
    "max-tokens": { type: "string", default: "32" },
    rounds: { type: "string", default: "2" },
    threads: { type: "string", default: "2" },
    "server-args": { type: "string", default: "" },
    detail: { type: "boolean", default: false },
  },
});

const WORDS = "time river stone light garden window silver market music paper forest engine winter story bridge ocean table yellow".split(" ");
const prompt = (stream: number, round: number) => Array.from({ length: 96 }, (_, i) => WORDS[(stream * 7 + round * 13 + i * (stream + 3)) % WORDS.length]).join(" ");

interface Stream {
  started: number;
  times: number[];
  tokens: number;
}

async function stream(url: string, text: string): Promise<Stream> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: text }], max_tokens: Number(args["max-tokens"]), temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const times: number[] = [];
  let tokens = 0;
  for await (const chunk of sseChunks(res.body)) {
    // Text only: the first chunk (the role, content "") comes before the prompt is evaluated.
    if (chunk.choices?.[0]?.delta?.content) times.push(performance.now());
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { started, times, tokens };
}

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;
const median = (values: number[]) => percentile(values, 50);

async function round(url: string, index: number, logs: () => string) {
  const begin = performance.now();
  const beginEpoch = Date.now();
  const streams = await Promise.all(
    [0, 1, 2, 3].map(async (i) => {
      await new Promise((r) => setTimeout(r, i * Number(args.stagger)));
      return stream(url, prompt(i, index));
    }),
  );
  const wall = performance.now() - begin;
  let longestGap = 0;
  for (const s of streams) for (let i = 1; i < s.times.length; i++) longestGap = Math.max(longestGap, s.times[i]! - s.times[i - 1]!);
  const ttfts = streams.map((s) => (s.times[0] ?? performance.now()) - s.started);
  if (args.detail) {
    for (const [i, s] of streams.entries()) process.stderr.write(`stream ${i}: start ${(s.started - begin).toFixed(0)}, tokens ${s.times.map((t) => (t - begin).toFixed(0)).join(" ")}\n`);
    const batches = logs()
      .split("\n")
      .filter((line) => line.includes('"engine.batch"'))
      .map((line) => JSON.parse(line) as { time: number; decode: number; prompt: number; decodeRows: number; ms: number })
      .filter((b) => b.time >= beginEpoch);
    // "=" marks a batch whose prompt chunk shared the decode tokens' micro-batch (one more row there).
    process.stderr.write(`batches (end ms, decode+prompt tokens, ms): ${batches.map((b) => `${b.time - beginEpoch}:${b.decode}${b.decodeRows > b.decode ? "=" : "+"}${b.prompt}:${b.ms}`).join(" ")}\n`);
  }
  return { longestGapMs: longestGap, ttftP50: percentile(ttfts, 50), ttftP99: percentile(ttfts, 99), tokensPerSecond: streams.reduce((a, s) => a + s.tokens, 0) / (wall / 1000) };
}

async function main(): Promise<void> {
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  const rows = [];
  for (const budget of args.budgets.split(",")) {
    const server = await startServer(
      ["--model", modelPath, "--model-name", "phi-3.5-mini-instruct", "--parallel", "4", "--threads", args.threads, "--context", "1024", "--content-safety", "off",
        ...(budget === "none" ? [] : ["--max-step-ms", budget]), ...(args.detail ? ["--log-level", "trace"] : []), ...args["server-args"].split(" ").filter(Boolean)],
      { timeoutMs: 600_000, env: INSTALLED_CLI_ENV },
    );
    try {
      await stream(server.url, "warm up"); // first-request costs out of the figures
      const results = [];
      for (let r = 0; r < Number(args.rounds); r++) results.push(await round(server.url, r, () => server.logs()));
      const row = {
        budget,
        longestGapMs: median(results.map((r) => r.longestGapMs)),
        ttftP50Ms: median(results.map((r) => r.ttftP50)),
        ttftP99Ms: median(results.map((r) => r.ttftP99)),
        tokensPerSecond: median(results.map((r) => r.tokensPerSecond)),
        rounds: results,
      };
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
    } finally {
      await server.close();
    }
  }
  const base = rows.find((r) => r.budget === "none");
  process.stdout.write("budget ms   longest gap ms   TTFT p50/p99 ms     tok/s   vs none: TTFT p50, tok/s\n");
  for (const r of rows) {
    const vs = base && r !== base ? `${((r.ttftP50Ms / base.ttftP50Ms - 1) * 100).toFixed(0)} %, ${((r.tokensPerSecond / base.tokensPerSecond - 1) * 100).toFixed(0)} %` : "";
    process.stdout.write(`${r.budget.padStart(9)} ${r.longestGapMs.toFixed(0).padStart(16)} ${`${r.ttftP50Ms.toFixed(0)}/${r.ttftP99Ms.toFixed(0)}`.padStart(17)} ${r.tokensPerSecond.toFixed(2).padStart(9)}   ${vs}\n`);
  }
}

await main();
