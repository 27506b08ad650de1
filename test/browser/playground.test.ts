/**
 * The playground and the usage dashboard in a real browser (Chromium from Debian's packages, driven by
 * playwright-core) against a real `phiserve serve` process with two deployments: the tiny phi3 text model
 * ("text") and the generated Phi-3-vision test model ("vision"). The tests run in order and share the server:
 * the dashboard test at the end must see the requests the earlier ones made. Screenshots go to
 * artifactsDir() (docs/PLAYGROUND.md "Tests").
 *
 * Random-weight models: assertions are about mechanics (streaming, cancellation, what the request carried,
 * figures shown, accessibility), never about wording. No timed assertions: waits are on page state.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import type { Browser, BrowserContext, Page, Request } from "playwright-core";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { ensurePhi3vTestModel } from "../../src/model-factory/phi3v-test-model.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";
import { artifactsDir, browserSkipReason, launchChromium, REPO_ROOT } from "./browser.ts";
import { buildWeb, runAxe, seriousViolations } from "./web-helpers.ts";

const KEY = "playground-key-0123456789abcdef";
const ADMIN_KEY = "dashboard-admin-key-0123456789";
const skip = browserSkipReason();

let dir: string;
let server: RunningServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Every URL any page requested, and every chat request the pages sent. */
const urls: string[] = [];
const chatRequests: Request[] = [];
const cspViolations: string[] = [];

function watch(p: Page): Page {
  p.on("request", (request) => {
    urls.push(request.url());
    if (request.method() === "POST" && new URL(request.url()).pathname === "/chat/completions") chatRequests.push(request);
  });
  p.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  return p;
}

async function openPlayground(p: Page): Promise<void> {
  await p.goto(`${server.url}/playground`);
  if (await p.locator("#api-key").count()) {
    await p.fill("#api-key", KEY);
    await p.press("#api-key", "Enter");
  }
  await p.waitForSelector("#deployment-0 option[value=vision]", { state: "attached" });
}

const assistant = (p: Page) => p.locator("li.msg.assistant");
const lastStats = (p: Page) => assistant(p).last().locator("[data-testid=answer-stats]");

/** Waits until the last answer has its finish reason, and returns its figures line. */
async function finished(p: Page): Promise<string> {
  await lastStats(p).filter({ hasText: "finish:" }).waitFor();
  return (await lastStats(p).textContent()) ?? "";
}

async function busySequences(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { headers: { "api-key": KEY } })).text();
  const match = /^phiserve_busy_sequences(?:\{[^}]*\})? (\d+)/m.exec(text);
  assert.ok(match, "phiserve_busy_sequences is in /metrics");
  return Number(match[1]);
}

async function png(r: number, g: number, b: number): Promise<Buffer> {
  return sharp({ create: { width: 48, height: 40, channels: 3, background: { r, g, b } } }).png().toBuffer();
}

async function setMaxTokens(p: Page, value: string): Promise<void> {
  await p.fill("#p-maxTokens", value);
}

before(async () => {
  if (skip) return;
  buildWeb();
  dir = await mkdtemp(join(tmpdir(), "phiserve-browser-"));
  const config = join(dir, "phiserve.yaml");
  const [text, vision] = await Promise.all([ensureTestModel(), ensurePhi3vTestModel()]);
  await writeFile(
    config,
    ["defaultDeployment: text", "deployments:", "  - name: text", `    model: ${text}`, "    modelName: phi-3.5-mini-instruct", "    parallel: 2", "  - name: vision", `    model: ${vision}`, "    modelName: phi-3-vision-128k-instruct", ""].join("\n"),
  );
  // annotate, not filter: random-weight text now and then contains a word of the built-in lexicon (seen in CI: an
  // answer ended "finish: content_filter" after 104 tokens), and these tests are about the page's mechanics.
  // The annotations are still computed and shown.
  server = await startServer(["--config", config, "--api-key", KEY, "--admin-key", ADMIN_KEY, "--content-safety", "annotate", "--content-annotations"], { timeoutMs: 120_000 });
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  page = watch(await context.newPage());
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("the pages are public, cached correctly, and under a strict Content-Security-Policy", { skip }, async () => {
  const response = await fetch(`${server.url}/playground`);
  assert.equal(response.status, 200);
  const csp = response.headers.get("content-security-policy") ?? "";
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  assert.equal(response.headers.get("cache-control"), "no-cache");
  const html = await response.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "no inline script");
  const asset = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(asset, "the page loads a hashed script");
  const script = await fetch(`${server.url}${asset}`);
  assert.equal(script.status, 200);
  assert.match(script.headers.get("cache-control") ?? "", /immutable/);
  assert.match(script.headers.get("cache-control") ?? "", /max-age=31536000/);
  // The API itself still needs the key.
  assert.equal((await fetch(`${server.url}/v1/models`)).status, 401);
  assert.equal((await fetch(`${server.url}/dashboard`)).status, 200);
});

test("send a message and watch the answer stream in", { skip }, async () => {
  await openPlayground(page);
  await setMaxTokens(page, "200");
  // Greedy, so the answer is the same every run: sampled, a random-weight model now and then draws an end token
  // before 200 (seen in CI). Greedy on this prompt and model runs to the limit.
  await page.fill("#p-temperature", "0");
  await page.fill("#message", "Tell me about **Markdown**");
  await page.press("#message", "Enter");
  // Streaming: text on the page while the Stop button is still there.
  await page.waitForFunction(() => {
    const doc = (globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document;
    return (doc.querySelector("li.msg.assistant .markdown")?.textContent ?? "").length > 0 && doc.querySelector("button.stop") !== null;
  });
  const stats = await finished(page);
  assert.match(stats, /\d+ prompt tokens/);
  assert.match(stats, /200 completion tokens/);
  assert.match(stats, /first token \d+ ms/);
  assert.match(stats, /[\d.]+ tokens\/s/);
  assert.match(stats, /finish: length/);
  // --content-annotations: the prompt's and the completion's annotations are shown.
  const filters = await assistant(page).last().locator("[data-testid=content-filter]").allTextContents();
  assert.ok(filters.some((t) => t.includes("prompt") && /hate: safe/.test(t)), filters.join(" | "));
  assert.ok(filters.some((t) => t.includes("completion")), filters.join(" | "));
  const body = chatRequests.at(-1)!.postDataJSON() as Record<string, unknown>;
  assert.equal(body.stream, true);
  assert.equal(body.model, "text");
  assert.equal(body.temperature, 0);
  assert.equal(chatRequests.at(-1)!.headers()["api-key"], KEY);
  await page.fill("#p-temperature", "");
});

test("Stop cancels the stream and the server frees the sequence (busy-sequence gauge back to 0)", { skip }, async () => {
  await setMaxTokens(page, "3000");
  await page.fill("#message", "A long answer please");
  await page.press("#message", "Enter");
  await page.waitForFunction(() => {
    const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<{ textContent: string | null }> } }).document;
    const answers = doc.querySelectorAll("li.msg.assistant .markdown");
    return (answers[answers.length - 1]?.textContent ?? "").length > 20;
  });
  assert.equal(await busySequences(), 1, "one sequence generating while the answer streams");
  await page.click("button.stop");
  const stats = await finished(page);
  assert.match(stats, /finish: stopped/);
  // The server sees the closed connection, cancels and frees the sequence, and logs the request as ended by the client.
  const cancelled = /"event":"request.completed"[^\n]*"completed":false[^\n]*"endReason":"client"/;
  let busy = await busySequences();
  for (let i = 0; i < 200 && (busy !== 0 || !cancelled.test(server.logs())); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    busy = await busySequences();
  }
  assert.equal(busy, 0);
  assert.match(server.logs(), cancelled);
  const shown = ((await assistant(page).last().locator(".markdown").textContent()) ?? "").length;
  assert.ok(shown > 0, "the text received before Stop stays");
});

test("parameters typed in the panel are what the request carries", { skip }, async () => {
  await page.click("text=New");
  await page.fill("#system", "You answer in JSON.");
  await page.fill("#p-temperature", "0.3");
  await page.fill("#p-topP", "0.9");
  await setMaxTokens(page, "24");
  await page.fill("#p-seed", "7");
  await page.fill("#p-presencePenalty", "0.5");
  await page.fill("#p-frequencyPenalty", "0.25");
  await page.fill("#p-stop", "STOP1\nSTOP2");
  await page.selectOption("#p-format", "json_schema");
  await page.fill("#p-schema-name", "reply");
  await page.fill("#p-schema", JSON.stringify({ type: "object", properties: { n: { type: "integer" } }, required: ["n"] }));
  await page.fill("#message", "Pick a number");
  const sent = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/chat/completions"));
  await page.press("#message", "Enter");
  const request = await sent;
  const body = request.postDataJSON() as Record<string, unknown>;
  assert.deepEqual(body.messages, [
    { role: "system", content: "You answer in JSON." },
    { role: "user", content: "Pick a number" },
  ]);
  assert.equal(body.temperature, 0.3);
  assert.equal(body.top_p, 0.9);
  assert.equal(body.max_tokens, 24);
  assert.equal(body.seed, 7);
  assert.equal(body.presence_penalty, 0.5);
  assert.equal(body.frequency_penalty, 0.25);
  assert.deepEqual(body.stop, ["STOP1", "STOP2"]);
  assert.deepEqual(body.response_format, { type: "json_schema", json_schema: { name: "reply", schema: { type: "object", properties: { n: { type: "integer" } }, required: ["n"] }, strict: true } });
  assert.equal(request.headers()["extra-parameters"], undefined, "no pass-through without an extra parameter");
  assert.match(await finished(page), /finish: (stop|length)/);

  // A schema that does not parse is caught in the panel, and nothing is sent.
  const before = chatRequests.length;
  await page.fill("#p-schema", "{ not json");
  await page.fill("#message", "again");
  await page.press("#message", "Enter");
  await page.locator("#err-schema").waitFor();
  assert.equal(chatRequests.length, before);
  await page.selectOption("#p-format", "text");
});

test("logprobs: tokens coloured by probability, top alternatives on hover", { skip }, async () => {
  await page.check("#p-logprobs");
  await page.fill("#p-top-logprobs", "3");
  await setMaxTokens(page, "12");
  await page.fill("#message", "Short answer");
  const sent = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/chat/completions"));
  await page.press("#message", "Enter");
  const request = await sent;
  assert.equal(request.headers()["extra-parameters"], "pass-through");
  const body = request.postDataJSON() as Record<string, unknown>;
  assert.equal(body.logprobs, true);
  assert.equal(body.top_logprobs, 3);
  await finished(page);
  await assistant(page).last().getByRole("button", { name: "Show token probabilities" }).click();
  const tokens = assistant(page).last().locator(".tokens .tok");
  assert.equal(await tokens.count(), 12);
  assert.match((await tokens.first().getAttribute("class")) ?? "", /\blp[0-4]\b/);
  await tokens.first().hover();
  const tip = page.getByRole("tooltip");
  await tip.waitFor();
  assert.equal(await tip.locator("tr").count(), 3, "three alternatives");
  await page.screenshot({ path: join(artifactsDir(), "playground-logprobs.png") });
  await page.uncheck("#p-logprobs");
});

test("regenerate and edit-and-resend", { skip }, async () => {
  await setMaxTokens(page, "8");
  const count = await page.locator("li.msg").count();
  await assistant(page).last().getByRole("button", { name: "Regenerate" }).click();
  await finished(page);
  assert.equal(await page.locator("li.msg").count(), count, "the last answer is replaced, not added");
  await page.locator("li.msg.user").first().getByRole("button", { name: "Edit and resend" }).click();
  assert.equal(await page.inputValue("#message"), "Pick a number");
  await page.fill("#message", "Pick a letter");
  const sent = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/chat/completions"));
  await page.press("#message", "Enter");
  const body = (await sent).postDataJSON() as { messages: { role: string; content: unknown }[] };
  assert.deepEqual(body.messages.map((m) => m.content), ["You answer in JSON.", "Pick a letter"]);
  await finished(page);
  assert.equal(await page.locator("li.msg").count(), 2);
});

test("attach images on a vision deployment: file picker, paste, drag and drop; one image per turn", { skip }, async () => {
  await page.click("text=New");
  await setMaxTokens(page, "6");
  assert.equal(await page.getByRole("button", { name: "Attach image" }).isDisabled(), true, "a text deployment takes no image");
  await page.selectOption("#deployment-0", "vision");
  assert.equal(await page.getByRole("button", { name: "Attach image" }).isDisabled(), false);
  const [red, blue] = await Promise.all([png(220, 30, 30), png(30, 30, 220)]);
  await page.setInputFiles("input[type=file]", { name: "red.png", mimeType: "image/png", buffer: red });
  await page.locator(".attachment img").waitFor();
  // Pasting a second picture replaces the first, and the page says why.
  await page.evaluate(`(() => {
    const bytes = Uint8Array.from(atob(${JSON.stringify(blue.toString("base64"))}), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], "blue.png", { type: "image/png" }));
    document.getElementById("message").dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  })()`);
  await page.getByRole("status").filter({ hasText: "One image per message" }).waitFor();
  await page.waitForFunction(`document.querySelector(".attachment img")?.src.startsWith("data:image/png;base64,${blue.toString("base64").slice(0, 24)}")`);
  await page.fill("#message", "What is in this picture?");
  const sent = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/chat/completions"));
  await page.press("#message", "Enter");
  const body = (await sent).postDataJSON() as { model: string; messages: { role: string; content: { type: string; image_url?: { url: string } }[] }[] };
  assert.equal(body.model, "vision");
  const parts = body.messages.at(-1)!.content;
  assert.equal(parts.filter((p) => p.type === "image_url").length, 1);
  assert.equal(parts.find((p) => p.type === "image_url")!.image_url!.url, `data:image/png;base64,${blue.toString("base64")}`);
  const stats = await finished(page);
  assert.match(stats, /\d+ prompt tokens/);
  assert.equal(await page.locator("li.msg.user img.thumb").count(), 1);

  // Drag and drop onto the message box, for the next turn.
  await page.evaluate(`(() => {
    const bytes = Uint8Array.from(atob(${JSON.stringify(red.toString("base64"))}), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], "red.png", { type: "image/png" }));
    document.querySelector("form.composer").dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
  })()`);
  await page.locator(".attachment img").waitFor();
  await page.fill("#message", "And this one?");
  await page.press("#message", "Enter");
  assert.match(await finished(page), /\d+ prompt tokens/);
  assert.equal(await page.locator("li.msg.assistant .error").count(), 0, "no error: one image per turn is what the server takes");
  await page.screenshot({ path: join(artifactsDir(), "playground-vision.png") });
});

test("side by side: one conversation sent to two deployments", { skip }, async () => {
  await page.click("text=New");
  await page.selectOption("#deployment-0", "text");
  await page.check("text=Compare side by side");
  await page.selectOption("#deployment-1", "vision");
  await setMaxTokens(page, "10");
  const before = chatRequests.length;
  await page.fill("#message", "Hello both");
  await page.press("#message", "Enter");
  await page.locator("section.pane").nth(0).locator("[data-testid=answer-stats]", { hasText: "finish:" }).waitFor();
  await page.locator("section.pane").nth(1).locator("[data-testid=answer-stats]", { hasText: "finish:" }).waitFor();
  const models = chatRequests.slice(before).map((r) => (r.postDataJSON() as { model: string }).model).sort();
  assert.deepEqual(models, ["text", "vision"]);
  await page.screenshot({ path: join(artifactsDir(), "playground-compare.png") });
  await page.uncheck("text=Compare side by side");
});

test("View code: the Azure JS snippet, copied from the page, runs with Node against the server", { skip }, async () => {
  await page.click("text=New");
  await page.selectOption("#deployment-0", "text");
  await setMaxTokens(page, "5");
  await page.fill("#p-seed", "11");
  await page.fill("#message", "Say hi from a snippet");
  await page.getByRole("button", { name: "View code" }).click();
  await page.getByRole("dialog").waitFor();
  for (const tab of ["Python", "openai (JS)", "curl"]) {
    await page.getByRole("tab", { name: tab }).click();
    assert.ok(!((await page.locator("[data-testid=snippet]").textContent()) ?? "").includes(KEY), `no key in the ${tab} snippet`);
  }
  await page.getByRole("tab", { name: "Azure JS" }).click();
  await page.getByRole("button", { name: "Copy" }).click();
  await page.getByRole("status").filter({ hasText: "snippet copied" }).waitFor();
  const code = String(await page.evaluate("navigator.clipboard.readText()"));
  assert.match(code, /@azure-rest\/ai-inference/);
  assert.ok(!code.includes(KEY), "the key is never written into a snippet");
  await page.keyboard.press("Escape");
  // Inside the repository, so that the snippet's imports resolve to the project's node_modules.
  const scratch = join(REPO_ROOT, ".cache", "browser-snippets");
  await mkdir(scratch, { recursive: true });
  const file = join(scratch, `azure-js-${process.pid}.mjs`);
  await writeFile(file, code);
  try {
    const child = spawn(process.execPath, [file], { env: { ...process.env, AZURE_INFERENCE_CREDENTIAL: KEY }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const [exitCode] = (await once(child, "exit")) as [number | null];
    assert.equal(exitCode, 0, out);
    assert.match(out, /completion_tokens: 5/);
    assert.match(out, /prompt_tokens: \d+/);
  } finally {
    await rm(file, { force: true });
  }
  const last = chatRequests.at(-1);
  assert.ok(!last || !(last.postDataJSON() as { messages: { content: string }[] }).messages.some((m) => m.content === "Say hi from a snippet"), "View code sends nothing itself");
});

test("conversations are kept in IndexedDB and export as JSON", { skip }, async () => {
  await page.fill("#message", "Remember me");
  await page.press("#message", "Enter");
  await finished(page);
  // Saved once the answer is done: the sidebar lists it.
  await page.getByRole("navigation", { name: "Conversations" }).getByRole("button", { name: "Remember me", exact: true }).waitFor();
  await page.reload();
  await page.waitForSelector("#deployment-0 option[value=vision]", { state: "attached" });
  assert.equal(await page.locator("#api-key").count(), 0, "the key is kept for the tab (sessionStorage)");
  const entry = page.getByRole("navigation", { name: "Conversations" }).getByRole("button", { name: "Remember me", exact: true });
  await entry.waitFor();
  await entry.click();
  await page.locator("li.msg.user", { hasText: "Remember me" }).waitFor();
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export", exact: true }).click();
  const exported = JSON.parse(await readFile((await (await download).path())!, "utf8")) as { conversations: { panes: { messages: { content: string }[] }[] }[] };
  assert.equal(exported.conversations.length, 1);
  assert.equal(exported.conversations[0]!.panes[0]!.messages[0]!.content, "Remember me");
});

test("keyboard only: key, message, Enter to send, Escape to stop, Regenerate", { skip }, async () => {
  const keyboardPage = watch(await (await browser.newContext()).newPage());
  await keyboardPage.goto(`${server.url}/playground`);
  const active = () => keyboardPage.evaluate("document.activeElement?.id || document.activeElement?.textContent || ''") as Promise<string>;
  // The first stop is the skip link, which moves focus to the message box.
  await keyboardPage.keyboard.press("Tab");
  assert.equal(await active(), "Skip to the message box");
  await keyboardPage.keyboard.press("Enter");
  assert.equal(await active(), "message");
  for (let i = 0; i < 60 && (await active()) !== "api-key"; i++) await keyboardPage.keyboard.press("Tab");
  assert.equal(await active(), "api-key");
  await keyboardPage.keyboard.type(KEY);
  await keyboardPage.keyboard.press("Enter");
  await keyboardPage.waitForSelector("#deployment-0 option", { state: "attached" });
  await keyboardPage.waitForFunction("document.activeElement?.id === 'message'");
  await keyboardPage.keyboard.type("Typed with the keyboard");
  await keyboardPage.keyboard.press("Enter");
  await keyboardPage.locator("button.stop").waitFor();
  await keyboardPage.keyboard.press("Escape");
  assert.match(await finished(keyboardPage), /finish: stopped/);
  for (let i = 0; i < 40 && (await active()) !== "Regenerate"; i++) await keyboardPage.keyboard.press("Shift+Tab");
  assert.equal(await active(), "Regenerate");
  await keyboardPage.keyboard.press("Enter");
  assert.match(await finished(keyboardPage), /finish: length/);
  assert.equal(await keyboardPage.locator("li.msg.assistant").count(), 1, "regenerated in place");
  await keyboardPage.context().close();
});

test("accessibility: no serious or critical axe violations on the playground and the code dialog", { skip }, async () => {
  const results = await runAxe(page);
  assert.deepEqual(seriousViolations(results), []);
  await page.getByRole("button", { name: "View code" }).click();
  await page.getByRole("dialog").waitFor();
  assert.deepEqual(seriousViolations(await runAxe(page)), []);
  await page.keyboard.press("Escape");
  await page.screenshot({ path: join(artifactsDir(), "playground.png") });
});

test("the dashboard shows the requests just made, as charts by deployment", { skip }, async () => {
  const dashboard = watch(await context.newPage());
  await dashboard.setViewportSize({ width: 1400, height: 1000 });
  await dashboard.goto(`${server.url}/dashboard`);
  await dashboard.fill("#api-key", ADMIN_KEY);
  await dashboard.press("#api-key", "Enter");
  await dashboard.locator("[data-testid=total-requests]").waitFor();
  const shown = Number(await dashboard.locator("[data-testid=total-requests]").textContent());
  const report = (await (await fetch(`${server.url}/admin/usage?since=24h&by=deployment`, { headers: { "api-key": ADMIN_KEY } })).json()) as { total: { requests: number } };
  const sentByPages = chatRequests.length + 1; // + the snippet's own request
  assert.ok(shown >= sentByPages, `the dashboard counts ${shown} requests; the tests made ${sentByPages}`);
  assert.equal(shown, report.total.requests);
  for (const deployment of ["text", "vision"]) {
    const points = dashboard.locator(`[data-testid=chart-requests] g[data-series="${deployment}"] circle`);
    assert.ok((await points.count()) >= 1, `a point for ${deployment} on the requests chart`);
  }
  const rows = await dashboard.locator("[data-testid=report] tbody th").allTextContents();
  assert.deepEqual(rows, ["text", "vision", "TOTAL"]);
  for (const id of ["tokens", "ttft", "tps", "throttled", "filtered", "cost"]) assert.equal(await dashboard.locator(`[data-testid=chart-${id}] svg[role=img]`).count(), 1, `${id} chart`);
  assert.deepEqual(seriousViolations(await runAxe(dashboard)), []);
  await dashboard.screenshot({ path: join(artifactsDir(), "dashboard.png"), fullPage: true });
  // By key: the admin sees the playground's key as a series of its own.
  await dashboard.check("input[value=key]");
  await dashboard.locator("[data-testid=report] tbody th", { hasText: "TOTAL" }).waitFor();
  await dashboard.close();
});

test("the key never appears in a URL or in the server's logs, and the pages broke no CSP rule", { skip }, () => {
  assert.ok(urls.length > 0);
  for (const url of urls) {
    assert.ok(!url.includes(KEY) && !url.includes(ADMIN_KEY), `a key in ${url}`);
  }
  assert.ok(!server.logs().includes(KEY), "the API key is not in the server's logs");
  assert.ok(!server.logs().includes(ADMIN_KEY), "the admin key is not in the server's logs");
  assert.deepEqual(cspViolations, []);
});
