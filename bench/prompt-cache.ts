/**
 * What the prompt cache gives (figures, not tests): more conversations than sequences. `--conversations` chats, each
 * with its own long system prompt, take turns on a server with `--parallel` sequences (default 1), one request at a
 * time: every turn finds its sequence taken by another conversation. Each turn's prompt is the whole conversation so
 * far (system prompt, earlier questions and answers, the new question). Run once without a prompt cache and once with
 * `--prompt-cache`; prints time to first token per turn (median over the conversations) and each run's prompt tokens
 * evaluated and reused (from /metrics).
 *
 *   npm run bench:prompt-cache -- [--shape tiny|phi3-mini | --model FILE] [--conversations 3] [--turns 3]
 *                                 [--system-words 240] [--cache 2GiB] [--threads N]
 */
import { parseArgs } from "node:util";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { readMetric, startServer } from "../test/helpers/start-server.ts";
import { sseChunks } from "./sse-chunks.ts";
import { median } from "./median.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "tiny" },
    conversations: { type: "string", default: "3" },
    turns: { type: "string", default: "3" },
    "system-words": { type: "string", default: "240" },
    cache: { type: "string", default: "2GiB" },
    parallel: { type: "string", default: "1" },
    threads: { type: "string" },
  },
});

const WORDS = "time river stone light garden window silver market music paper forest engine winter story bridge ocean table yellow".split(" ");
const words = (seed: number, count: number) => Array.from({ length: count }, (_, i) => WORDS[(seed * 7 + i * (seed + 3)) % WORDS.length]).join(" ");

interface Message {
  role: "system" | "user" | "assistant";
  content: string;
}

/** One streamed turn: time to first token (ms) and the answer's text. */
async function turn(url: string, messages: Message[]): Promise<{ ttftMs: number; answer: string }> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages, max_tokens: 16, temperature: 0, stream: true }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttftMs = 0;
  let answer = "";
  for await (const chunk of sseChunks(res.body)) {
    const content = chunk.choices?.[0]?.delta?.content;
    if (content) (ttftMs ||= performance.now() - started), (answer += content);
  }
  return { ttftMs, answer };
}

async function measure(modelPath: string, cache: string | undefined): Promise<void> {
  const flags = ["--model", modelPath, "--model-name", "phi-3.5-mini-instruct", "--parallel", args.parallel!, "--context", "2048", "--content-safety", "off"];
  if (args.threads) flags.push("--threads", args.threads);
  if (cache) flags.push("--prompt-cache", cache);
  const server = await startServer(flags, { timeoutMs: 600_000, env: { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "1" } });
  try {
    const conversations: Message[][] = Array.from({ length: Number(args.conversations) }, (_, c) => [{ role: "system", content: words(c + 1, Number(args["system-words"])) }]);
    const ttft: number[][] = [];
    for (let t = 0; t < Number(args.turns); t++) {
      ttft.push([]);
      for (const [c, messages] of conversations.entries()) {
        messages.push({ role: "user", content: `question ${t} of conversation ${c}: ${words(c * 10 + t, 12)}` });
        const { ttftMs, answer } = await turn(server.url, messages);
        messages.push({ role: "assistant", content: answer });
        ttft[t]!.push(ttftMs);
      }
    }
    const [evaluated, reused] = [await readMetric(server, "phiserve_prompt_tokens_evaluated"), await readMetric(server, "phiserve_prompt_tokens_reused")];
    const perTurn = ttft.map((values, t) => `turn ${t + 1} ${median(values).toFixed(0)} ms`).join(", ");
    process.stdout.write(`${(cache ? `--prompt-cache ${cache}` : "no prompt cache").padEnd(24)} TTFT (median over conversations): ${perTurn}; prompt tokens evaluated ${evaluated}, reused ${reused}\n`);
  } finally {
    await server.close();
  }
}

const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
process.stdout.write(`model ${modelPath}, ${args.conversations} conversations taking turns on ${args.parallel} sequence(s), ${args.turns} turns\n`);
await measure(modelPath, undefined);
await measure(modelPath, args.cache);
