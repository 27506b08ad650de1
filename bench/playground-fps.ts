/**
 * `npm run bench:playground`: does the playground keep up with a fast stream? A stub API (the real pages and
 * their CSP from src/http/static.ts, a chat route that streams a Markdown answer with code blocks at a fixed
 * rate, 200 tokens/s by default) is opened in Chromium; while the answer streams, the page's frames are read
 * from the browser: requestAnimationFrame timestamps (frames per second, per one-second window) and the
 * performance timeline's long-animation-frame entries (docs/PLAYGROUND.md "Budgets"). Needs `npm run build`
 * (or it builds web/ itself) and Chromium (scripts/chromium.sh).
 *
 *   npm run bench:playground -- [--rate 200] [--seconds 15]
 *
 * Prints one table; the budget is no one-second window under 30 fps.
 */
import Fastify from "fastify";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { cpus, loadavg } from "node:os";
import { locateWebBuild, registerWebPages } from "../src/http/static.ts";
import { launchChromium, findChromium } from "../test/browser/browser.ts";
import { buildWeb } from "../test/browser/web-helpers.ts";

const { values } = parseArgs({ options: { rate: { type: "string", default: "200" }, seconds: { type: "string", default: "15" } } });
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const TOKENS = Math.round(RATE * SECONDS);

/** A realistic answer: prose, a list, inline code and fenced code blocks (highlighted while they stream). */
const ANSWER = `## Streaming in the playground

The answer is rendered as **Markdown** while it streams: paragraphs, *emphasis*, \`inline code\`, lists and
fenced code blocks that are highlighted as they grow.

1. Parse the Markdown into HTML.
2. Sanitise the HTML.
3. Hand it to the page once per animation frame.

\`\`\`ts
export async function* tokens(rate: number): AsyncGenerator<string> {
  for (let i = 0; ; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000 / rate));
    yield \`token \${i} \`;
  }
}
\`\`\`

\`\`\`python
def tokens(rate):
    for i in range(1000):
        yield f"token {i} "
\`\`\`

`;
const PIECES = ANSWER.split(/(?<=\s)/);

function chunk(content: string, extra: Record<string, unknown> = {}): string {
  return `data: ${JSON.stringify({ id: "bench", object: "chat.completion.chunk", created: 0, model: "bench", choices: [{ index: 0, delta: { content }, finish_reason: null, logprobs: null }], ...extra })}\n\n`;
}

async function startStub(webRoot: string): Promise<string> {
  const app = Fastify();
  registerWebPages(app, webRoot);
  app.get("/v1/models", async () => ({ object: "list", data: [{ id: "bench", object: "model", created: 0, owned_by: "Microsoft" }] }));
  app.get("/info", async () => ({ model_name: "Phi-3.5-Mini-Instruct", model_type: "chat-completion", model_provider_name: "Microsoft" }));
  app.post("/chat/completions", (_request, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
    res.write(chunk(""));
    const started = performance.now();
    let sent = 0;
    // Paced by the clock, not by timer counts: every 5 ms, send the tokens that are due.
    const timer = setInterval(() => {
      const due = Math.min(TOKENS, Math.floor(((performance.now() - started) / 1000) * RATE));
      let frames = "";
      for (; sent < due; sent++) frames += chunk(PIECES[sent % PIECES.length]!);
      if (frames) res.write(frames);
      if (sent >= TOKENS) {
        clearInterval(timer);
        res.end(`${chunk("", { usage: { prompt_tokens: 10, completion_tokens: TOKENS, total_tokens: TOKENS + 10 } }).replace('"finish_reason":null', '"finish_reason":"length"')}data: [DONE]\n\n`);
      }
    }, 5);
    res.on("close", () => clearInterval(timer)); // the response, not the request: a request "closes" once its body is read
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/**
 * Runs in the page: records frame times and long animation frames until `until` (an expression) is true, or
 * for `idleMs` when it is null (the baseline: the same page with nothing streaming).
 */
const measure = (until: string | null, idleMs = 3000) => `new Promise((resolve) => {
  const frames = [];
  const long = [];
  const observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) long.push(e.duration); });
  try { observer.observe({ type: "long-animation-frame", buffered: false }); } catch {}
  const started = performance.now();
  const done = () => ${until ?? `performance.now() - started > ${idleMs}`};
  const tick = (t) => {
    frames.push(t);
    if (done()) { observer.disconnect(); resolve({ frames, long }); } else requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})`;

interface Frames {
  frames: number[];
  long: number[];
}

function describe(label: string, { frames, long }: Frames): boolean {
  const start = frames[0]!;
  const counts: number[] = [];
  for (const t of frames) {
    const w = Math.floor((t - start) / 1000);
    counts[w] = (counts[w] ?? 0) + 1;
  }
  const full = counts.slice(0, Math.floor((frames.at(-1)! - start) / 1000)).map((c) => c ?? 0); // whole seconds only
  const minFps = Math.min(...full);
  const medianFps = [...full].sort((a, b) => a - b)[Math.floor(full.length / 2)];
  const intervals = frames.slice(1).map((t, i) => t - frames[i]!).sort((a, b) => a - b);
  const q = (p: number) => intervals[Math.min(intervals.length - 1, Math.floor(p * intervals.length))]!;
  console.log(`  ${label}: ${frames.length} frames in ${((frames.at(-1)! - start) / 1000).toFixed(1)} s; one-second windows: min ${minFps} fps, median ${medianFps} fps`);
  console.log(`    frame interval p50 ${q(0.5).toFixed(1)} ms, p95 ${q(0.95).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, max ${intervals.at(-1)!.toFixed(1)} ms; long animation frames (> 50 ms): ${long.length}${long.length ? `, longest ${Math.max(...long).toFixed(0)} ms` : ""}`);
  return minFps >= 30;
}

async function main(): Promise<void> {
  if (!findChromium()) throw new Error("Chromium is not installed: bash scripts/chromium.sh");
  buildWeb();
  const webRoot = locateWebBuild();
  if (!webRoot) throw new Error("dist/web was not built");
  const url = await startStub(webRoot);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("crash", () => console.error("page crashed"));
    page.on("pageerror", (e) => console.error("page error:", e.message));
    await page.goto(`${url}/playground`);
    await page.waitForSelector("#deployment-0 option", { state: "attached" });
    await page.fill("#p-maxTokens", String(TOKENS));
    await page.fill("#message", "Stream a long answer");
    const idle = (await page.evaluate(measure(null))) as Frames;
    const measured = page.evaluate(measure(`/finish:/.test(document.querySelector("[data-testid=answer-stats]")?.textContent ?? "")`)) as Promise<Frames>;
    measured.catch(() => undefined); // surfaced by the await below
    await page.press("#message", "Enter");
    const streaming = await measured;
    const stats = (await page.locator("[data-testid=answer-stats]").textContent()) ?? "";
    const chars = ((await page.locator("li.msg.assistant .markdown").textContent()) ?? "").length;
    const load = loadavg().map((l) => l.toFixed(1)).join(" ");
    console.log(`playground under a ${RATE} tokens/s stream of ${TOKENS} tokens (${chars} characters rendered); Chromium ${browser.version()}, ${cpus().length} CPU cores, load average ${load}`);
    console.log(`  answer: ${stats}`);
    describe("idle page (baseline)", idle);
    const met = describe("while streaming", streaming);
    console.log(`  budget (no one-second window under 30 fps while streaming): ${met ? "met" : "NOT met"}`);
  } finally {
    await browser.close();
  }
  process.exit(0);
}

await main();
