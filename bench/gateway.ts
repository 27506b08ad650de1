/**
 * The gateway's own cost (figures, not a test): the same streamed load sent straight to an
 * upstream and through phiserve with a remote engine in front of it (docs/REMOTE.md), in
 * alternating rounds so drift in the machine's load hits both alike. Prints aggregate tokens/s
 * of each path, their ratio, and time to first token (first content byte) p50/p99 of each with the
 * difference. Target (issue 14): ≥ 0.95× tokens/s, ≤ 5 ms added TTFT at p50.
 *
 * The upstream is a phiserve process on the tiny test model (`--target URL` measures another
 * OpenAI-compatible upstream instead: vLLM, llama-server…; its base URL without /v1). The tiny
 * model generates far faster than a real one, so the per-token cost of the gateway (one SSE frame
 * parsed and one written per token) weighs more here than in front of a real model.
 *
 *   npm run bench:gateway -- [--concurrency 4] [--requests 24] [--max-tokens 64] [--rounds 3] [--target URL]
 */
import { parseArgs } from "node:util";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { ensureTestModel } from "../src/model-factory/test-models.ts";

const { values: args } = parseArgs({
  options: {
    concurrency: { type: "string", default: "4" },
    requests: { type: "string", default: "24" },
    "max-tokens": { type: "string", default: "64" },
    rounds: { type: "string", default: "3" },
    target: { type: "string" },
    model: { type: "string", default: "phi-3.5-mini-instruct" },
  },
});
const CONCURRENCY = Number(args.concurrency);
const REQUESTS = Number(args.requests);
const MAX_TOKENS = Number(args["max-tokens"]);
const ROUNDS = Number(args.rounds);
const CLI = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

interface Server {
  url: string;
  child: ChildProcess;
}

async function serve(flags: string[]): Promise<Server> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "serve", "--port", "0", "--no-auth", "--content-safety", "off", "--log-level", "warn", ...flags], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /phiserve ready: (\S+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { url, child };
}

async function stop(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  await exited;
}

interface Sample {
  ttftMs: number;
  tokens: number;
}

/** One streamed request: time to the first content frame, and the completion tokens of the usage frame. */
async function one(url: string, seed: number): Promise<Sample> {
  const started = performance.now();
  const res = await fetch(`${url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: `Write a story about the number ${seed}.` }], max_tokens: MAX_TOKENS, temperature: 0.7, seed, stream: true }),
  });
  if (res.status !== 200) throw new Error(`${url}: status ${res.status} ${await res.text()}`);
  let ttftMs = -1;
  let buffer = "";
  let tokens = 0;
  const decoder = new TextDecoder();
  for await (const part of res.body!) {
    buffer += decoder.decode(part, { stream: true });
    if (ttftMs < 0 && buffer.includes('"content":"') && /"content":"[^"]/.test(buffer)) ttftMs = performance.now() - started;
    const usage = /"completion_tokens":(\d+)/.exec(buffer);
    if (usage) tokens = Number(usage[1]);
    if (buffer.length > 4096) buffer = buffer.slice(-1024);
  }
  return { ttftMs, tokens };
}

/** REQUESTS requests, CONCURRENCY at a time: tokens/s over the wall time, and every sample. */
async function load(url: string, seedBase: number): Promise<{ tokensPerSecond: number; samples: Sample[] }> {
  let next = 0;
  const samples: Sample[] = [];
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < REQUESTS) {
      const i = next++;
      samples.push(await one(url, seedBase + i));
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  return { tokensPerSecond: samples.reduce((s, x) => s + x.tokens, 0) / seconds, samples };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const servers: Server[] = [];
try {
  let upstreamUrl = args.target;
  if (!upstreamUrl) {
    const model = await ensureTestModel();
    const upstream = await serve(["--model", model, "--model-name", args.model, "--parallel", String(CONCURRENCY), "--context", "1024"]);
    servers.push(upstream);
    upstreamUrl = upstream.url;
  }
  const gateway = await serve(["--upstream", `${upstreamUrl}/v1`, "--model", args.model, "--context", "1024", "--parallel", String(4 * CONCURRENCY)]);
  servers.push(gateway);
  // Warm both paths (model pages, JIT, connection pools).
  await load(upstreamUrl, 10_000);
  await load(gateway.url, 10_000);
  const direct: { tps: number[]; ttft: number[] } = { tps: [], ttft: [] };
  const through: { tps: number[]; ttft: number[] } = { tps: [], ttft: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // The same seeds on both paths: the same texts, the same token counts.
    const a = await load(upstreamUrl, round * REQUESTS);
    const b = await load(gateway.url, round * REQUESTS);
    direct.tps.push(a.tokensPerSecond);
    through.tps.push(b.tokensPerSecond);
    direct.ttft.push(...a.samples.map((s) => s.ttftMs));
    through.ttft.push(...b.samples.map((s) => s.ttftMs));
    console.log(`round ${round + 1}: direct ${a.tokensPerSecond.toFixed(0)} tok/s, through phiserve ${b.tokensPerSecond.toFixed(0)} tok/s (${(b.tokensPerSecond / a.tokensPerSecond).toFixed(3)}×)`);
  }
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  const ratio = sum(through.tps) / sum(direct.tps);
  const p = (xs: number[], q: number) => percentile(xs, q).toFixed(1);
  console.log(`\nconcurrency ${CONCURRENCY}, ${REQUESTS} requests × ${ROUNDS} rounds, max_tokens ${MAX_TOKENS}, upstream ${args.target ?? "phiserve on the tiny test model"}`);
  console.log(`tokens/s: direct ${(sum(direct.tps) / ROUNDS).toFixed(0)}, through phiserve ${(sum(through.tps) / ROUNDS).toFixed(0)}: ratio ${ratio.toFixed(3)} (target ≥ 0.95)`);
  console.log(`TTFT p50: direct ${p(direct.ttft, 50)} ms, through ${p(through.ttft, 50)} ms: added ${(percentile(through.ttft, 50) - percentile(direct.ttft, 50)).toFixed(1)} ms (target ≤ 5)`);
  console.log(`TTFT p99: direct ${p(direct.ttft, 99)} ms, through ${p(through.ttft, 99)} ms: added ${(percentile(through.ttft, 99) - percentile(direct.ttft, 99)).toFixed(1)} ms`);
} finally {
  for (const server of servers.reverse()) await stop(server);
}
