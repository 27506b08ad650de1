/**
 * Load benchmark (figures, not tests): streams chat completions at several concurrencies and
 * prints JSON and a table: aggregate and per-stream generated tokens/s, time to first token
 * p50/p99, queue wait, server RSS. Modes, each measured in the same run when asked:
 *   server (default)  phiserve started here on the model
 *   --target URL      any OpenAI-compatible server (llama-server, vLLM, Ollama…), same load
 *   --raw             the same work directly on node-llama-cpp in-process: the ceiling
 *   --llama-server BIN|auto  llama.cpp's llama-server on the same model, threads and slots: the peer
 *                     (auto: what bench/build-llama-server.sh builds from the bundled source)
 *
 *   npm run bench -- [--model FILE | --shape tiny|phi3-mini] [--concurrency 1,4,8,16] [--max-tokens 64]
 *                    [--requests 2] [--threads N] [--raw] [--target URL] [--target-model NAME] [--json]
 *                    [--server-args="--decode-batch 2"] [--greedy] [--llama-server BIN|auto] [--rounds N]
 * `--greedy`: temperature 0 (the peer comparison of docs/ENGINE-NOTES.md); default temperature 0.8, top_p 0.95.
 * `--rounds N` repeats the whole set of modes N times, alternating, and prints every round's ratios
 * (the machine drifts; ratios from the same round are what compare) and their mean over the rounds.
 * The server runs with `--content-safety off` (the engine path, as the raw mode); add
 * `--server-args="--content-safety filter"` to measure the content filter's windows too.
 * "Σ stream" is the sum of the streams' decode rates (each from its first token to its last, so a
 * stream that waits for other requests' prompts counts that wait). "all-decode" is the aggregate
 * rate while every stream of the first wave is decoding (from the last of their first tokens to
 * the first of their last ones): the figure llama-batched-bench's S_TG compares with.
 */
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { getLlama, type LlamaContextSequence, type Token } from "node-llama-cpp";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { renderChatTemplate, T5_PHI35_MINI } from "../src/catalog/chat-templates.ts";
import { startServer } from "../test/helpers/start-server.ts";
import { startLlamaServer } from "./llama-server-process.ts";
import { sseChunks } from "./sse-chunks.ts";

/** The benchmarks run the sources (tsx): the thread pool the installed CLI picks (bin/phiserve.cjs) comes from here. */
const INSTALLED_CLI_ENV = { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "1" };

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "tiny" },
    concurrency: { type: "string", default: "1,4,8,16" },
    "max-tokens": { type: "string", default: "64" },
    requests: { type: "string", default: "2" },
    threads: { type: "string" },
    raw: { type: "boolean", default: false },
    "no-server": { type: "boolean", default: false },
    target: { type: "string" },
    "target-model": { type: "string", default: "phi" },
    "server-args": { type: "string", default: "" },
    json: { type: "boolean", default: false },
    greedy: { type: "boolean", default: false },
    "llama-server": { type: "string" },
    rounds: { type: "string", default: "1" },
  },
});

const levels = args.concurrency.split(",").map(Number);
const maxTokens = Number(args["max-tokens"]);
const requestsPerStream = Number(args.requests);
const WORDS = "time river stone light garden window silver market music paper forest engine winter story bridge ocean table yellow".split(" ");

/** A deterministic word-salad prompt, different per stream and request (no shared prefixes beyond the template). */
function prompt(stream: number, request: number): string {
  const words: string[] = [];
  for (let i = 0; i < 96; i++) words.push(WORDS[(stream * 7 + request * 13 + i * (stream + 3)) % WORDS.length]!);
  return words.join(" ");
}

interface Sample {
  ttftMs: number;
  tokens: number;
  decodeMs: number;
  /** Which request of its stream (0 = the first wave). */
  wave: number;
  /** Arrival times (performance.now()) of the generated pieces. */
  times: number[];
}

interface LevelResult {
  mode: string;
  concurrency: number;
  aggregateTokensPerSecond: number;
  perStream: { mean: number; min: number; max: number; spread: number };
  /** Sum of the streams' decode rates. */
  decodeTokensPerSecond: number;
  /** Aggregate rate while all streams of the first wave decode (NaN when they never all do). */
  allDecodeTokensPerSecond: number;
  ttftMs: { p50: number; p99: number };
  queueWaitMs: number | null;
  rssMb: number | null;
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

function summarize(mode: string, concurrency: number, samples: Sample[], wallMs: number, queueWaitMs: number | null, rssMb: number | null): LevelResult {
  const rates = samples.map((s) => (s.tokens - 1) / (s.decodeMs / 1000)).filter(Number.isFinite);
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const [min, max] = [Math.min(...rates), Math.max(...rates)];
  return {
    mode,
    concurrency,
    aggregateTokensPerSecond: samples.reduce((a, s) => a + s.tokens, 0) / (wallMs / 1000),
    perStream: { mean, min, max, spread: (max - min) / mean },
    decodeTokensPerSecond: mean * concurrency,
    allDecodeTokensPerSecond: allDecoding(samples.filter((s) => s.wave === 0)),
    ttftMs: { p50: percentile(samples.map((s) => s.ttftMs), 50), p99: percentile(samples.map((s) => s.ttftMs), 99) },
    queueWaitMs,
    rssMb,
  };
}

function allDecoding(wave: Sample[]): number {
  if (wave.some((s) => s.times.length < 2)) return NaN;
  const from = Math.max(...wave.map((s) => s.times[0]!));
  const to = Math.min(...wave.map((s) => s.times.at(-1)!));
  if (to <= from) return NaN;
  const pieces = wave.reduce((sum, s) => sum + s.times.filter((t) => t > from && t <= to).length, 0);
  return pieces / ((to - from) / 1000);
}

async function streamOnce(baseUrl: string, model: string, text: string, wave: number): Promise<Sample> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: text }], max_tokens: maxTokens, ...(args.greedy ? { temperature: 0 } : { temperature: 0.8, top_p: 0.95 }), stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first = 0;
  let tokens = 0;
  const times: number[] = [];
  for await (const chunk of sseChunks(res.body)) {
    if (chunk.choices?.[0]?.delta?.content) {
      times.push(performance.now());
      if (!first) first = times[0]!;
    }
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  const end = performance.now();
  return { ttftMs: (first || end) - started, tokens, decodeMs: end - (first || end), wave, times };
}

async function runHttp(mode: string, baseUrl: string, model: string, pid: number | undefined): Promise<LevelResult[]> {
  const results: LevelResult[] = [];
  for (const c of levels) {
    await Promise.all(Array.from({ length: c }, (_, s) => streamOnce(baseUrl, model, prompt(s + 100, 0), 0))); // warm-up
    const queueBefore = pid ? await queueWait(baseUrl) : undefined;
    const started = performance.now();
    const samples = (await Promise.all(Array.from({ length: c }, async (_, stream) => {
      const out: Sample[] = [];
      for (let r = 0; r < requestsPerStream; r++) out.push(await streamOnce(baseUrl, model, prompt(stream, r), r));
      return out;
    }))).flat();
    const wall = performance.now() - started;
    const queueAfter = pid ? await queueWait(baseUrl) : undefined;
    const waitMs = queueBefore && queueAfter ? ((queueAfter.sum - queueBefore.sum) / Math.max(1, queueAfter.count - queueBefore.count)) * 1000 : null;
    results.push(summarize(mode, c, samples, wall, waitMs, pid ? rssMb(pid) : null));
  }
  return results;
}

async function queueWait(baseUrl: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const read = (name: string) => Number(text.split("\n").find((l) => l.startsWith(`${name} `))?.split(" ")[1] ?? 0);
  return { sum: read("phiserve_queue_wait_seconds_sum"), count: read("phiserve_queue_wait_seconds_count") };
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** The same work on node-llama-cpp directly: one context, `c` sequences evaluated concurrently. */
async function runRaw(modelPath: string, threads: number): Promise<LevelResult[]> {
  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath });
  const maxC = Math.max(...levels);
  const context = await model.createContext({ contextSize: 1024, sequences: maxC, threads, batchSize: 512 });
  const sequences = Array.from({ length: maxC }, () => context.getSequence());
  const one = async (sequence: LlamaContextSequence, text: string, seed: number, wave = 0): Promise<Sample> => {
    // The clock starts before the sequence is cleared: the server also clears a reused sequence's stale tokens within its TTFT.
    const started = performance.now();
    await sequence.clearHistory();
    const tokens = model.tokenize(renderChatTemplate(T5_PHI35_MINI, [{ role: "user", content: text }], { bosToken: "<s>", eosToken: "<|endoftext|>" }), true);
    let first = 0;
    let count = 0;
    const times: number[] = [];
    const generated: Token[] = [];
    for await (const token of sequence.evaluate(tokens, args.greedy ? { temperature: 0 } : { temperature: 0.8, topP: 0.95, topK: 0, minP: 0, seed })) {
      times.push(performance.now());
      // As a client sees it (and as the server's TTFT is timed): the first token that completes visible text,
      // not a piece of an unfinished UTF-8 character.
      if (!first) {
        generated.push(token);
        const text = model.detokenize(generated);
        if (text !== "" && !text.endsWith("\uFFFD")) first = times[times.length - 1]!;
      }
      if (++count >= maxTokens) break;
    }
    if (!first) first = times[0] ?? performance.now();
    const end = performance.now();
    return { ttftMs: first - started, tokens: count, decodeMs: end - first, wave, times };
  };
  const results: LevelResult[] = [];
  for (const c of levels) {
    await Promise.all(sequences.slice(0, c).map((s, i) => one(s, prompt(i + 100, 0), i)));
    const started = performance.now();
    const samples = (await Promise.all(sequences.slice(0, c).map(async (s, stream) => {
      const out: Sample[] = [];
      for (let r = 0; r < requestsPerStream; r++) out.push(await one(s, prompt(stream, r), stream * 100 + r, r));
      return out;
    }))).flat();
    results.push(summarize("raw", c, samples, performance.now() - started, null, process.memoryUsage().rss / 1024 / 1024));
  }
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return results;
}

function table(results: LevelResult[]): string {
  const head = "mode     conc  agg tok/s  Σ stream  all-decode  stream tok/s (min–max, spread)   TTFT p50/p99 ms   queue ms   RSS MB";
  const rows = results.map((r) =>
    [
      r.mode.padEnd(8),
      String(r.concurrency).padStart(4),
      r.aggregateTokensPerSecond.toFixed(1).padStart(10),
      r.decodeTokensPerSecond.toFixed(1).padStart(9),
      r.allDecodeTokensPerSecond.toFixed(1).padStart(11),
      `${r.perStream.mean.toFixed(1)} (${r.perStream.min.toFixed(1)}–${r.perStream.max.toFixed(1)}, ${(r.perStream.spread * 100).toFixed(0)}%)`.padStart(31),
      `${r.ttftMs.p50.toFixed(1)}/${r.ttftMs.p99.toFixed(1)}`.padStart(17),
      (r.queueWaitMs === null ? "-" : r.queueWaitMs.toFixed(1)).padStart(10),
      (r.rssMb === null ? "-" : r.rssMb.toFixed(0)).padStart(8),
    ].join(" "),
  );
  return [head, ...rows].join("\n");
}

function ratios(results: LevelResult[]): Record<string, number> {
  const at = (mode: string, c: number) => results.find((r) => r.mode === mode && r.concurrency === c);
  const out: Record<string, number> = {};
  for (const c of levels) {
    const s = at("server", c), peer = at("llama-server", c);
    if (!s || !peer) continue;
    out[`server/llama-server aggregate at ${c}`] = s.aggregateTokensPerSecond / peer.aggregateTokensPerSecond;
    out[`server/llama-server per-stream mean at ${c}`] = s.perStream.mean / peer.perStream.mean;
    out[`server/llama-server slowest stream at ${c}`] = s.perStream.min / peer.perStream.min;
  }
  const s8 = at("server", 8), r8 = at("raw", 8), s1 = at("server", 1), s4 = at("server", 4), r1 = at("raw", 1);
  if (s8 && r8) out["server/raw aggregate at 8"] = s8.aggregateTokensPerSecond / r8.aggregateTokensPerSecond;
  if (s8 && s1) out["server c8/c1 aggregate"] = s8.aggregateTokensPerSecond / s1.aggregateTokensPerSecond;
  if (s4) out["server per-stream spread at 4"] = s4.perStream.spread;
  if (s1 && r1) out["TTFT p50 overhead over raw at 1 (ms)"] = s1.ttftMs.p50 - r1.ttftMs.p50;
  return out;
}

/** llama-server on the same model, threads and slots (its own continuous batching, defaults otherwise). */
async function runLlamaServer(bin: string, modelPath: string, threads: number): Promise<LevelResult[]> {
  const slots = Math.max(...levels);
  const server = await startLlamaServer(bin, ["-m", modelPath, "-t", String(threads), "-tb", String(threads), "-np", String(slots), "-c", String(1024 * slots)]);
  try {
    return await runHttp("llama-server", server.url, "phi", server.pid);
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  const threads = args.threads ? Number(args.threads) : args.shape === "phi3-mini" ? 2 : 1;
  const results: LevelResult[] = [];
  const roundRatios: Record<string, number>[] = [];
  for (let round = 0; round < Number(args.rounds); round++) {
    const roundResults = await runRound(modelPath, threads);
    roundRatios.push(ratios(roundResults));
    if (Number(args.rounds) > 1) process.stderr.write(`round ${round + 1}: ${JSON.stringify(roundRatios.at(-1))}\n`);
    results.push(...roundResults);
  }
  // Each ratio within its round (the machine drifts between rounds), then their mean.
  const meanRatios = Object.fromEntries(Object.keys(roundRatios[0] ?? {}).map((key) => [key, roundRatios.reduce((sum, r) => sum + (r[key] ?? NaN), 0) / roundRatios.length]));
  const report = { model: modelPath, maxTokens, requestsPerStream, threads, greedy: args.greedy, serverArgs: args["server-args"], results, ratios: meanRatios, roundRatios };
  if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${table(results)}\n\n${JSON.stringify(report.ratios, null, 2)}\n\n${JSON.stringify(report)}\n`);
}

async function runRound(modelPath: string, threads: number): Promise<LevelResult[]> {
  const results: LevelResult[] = [];
  if (!args["no-server"]) {
    const server = await startServer(["--model", modelPath, "--model-name", "phi-3.5-mini-instruct", "--parallel", String(Math.max(...levels)), "--threads", String(threads), "--context", "1024", "--log-level", "info", "--content-safety", "off", ...args["server-args"].split(" ").filter(Boolean)], { timeoutMs: 600_000, env: INSTALLED_CLI_ENV });
    try {
      results.push(...(await runHttp("server", server.url, "phi-3.5-mini-instruct", server.process.pid)));
    } finally {
      await server.close();
      const batching = server.logs().split("\n").find((line) => line.includes('"event":"engine.batching"'));
      if (batching) process.stderr.write(`server ${batching}\n`);
    }
  }
  if (args["llama-server"] !== undefined) {
    const bin = args["llama-server"] !== "auto" ? args["llama-server"] : execFileSync("bash", ["bench/build-llama-server.sh"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
    results.push(...(await runLlamaServer(bin, modelPath, threads)));
  }
  if (args.target) results.push(...(await runHttp("target", args.target.replace(/\/$/, ""), args["target-model"], undefined)));
  if (args.raw) results.push(...(await runRaw(modelPath, threads)));
  return results;
}

await main();
