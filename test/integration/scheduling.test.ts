/**
 * Admission, fairness, cancellation, deadlines, prefix reuse and drain on a real server (seeded
 * Phi-3 test model, which never ends on its own, so max_tokens sets how long a request runs).
 * Nothing here asserts wall-clock time: ordering and the engine's counters tell the story.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { readMetric, startServer, type RunningServer } from "../helpers/start-server.ts";

const LONG = 3000; // tokens: seconds of work for the tiny model

async function start(args: string[]): Promise<RunningServer> {
  return startServer(["--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct", ...args]);
}

function chat(server: RunningServer, body: Record<string, unknown>, init: { key?: string; signal?: AbortSignal } = {}) {
  return fetch(`${server.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(init.key ? { "api-key": init.key } : {}) },
    body: JSON.stringify({ messages: [{ role: "user", content: "go" }], temperature: 0, ...body }),
    ...(init.signal ? { signal: init.signal } : {}),
  });
}

async function metric(server: RunningServer, name: string, key?: string): Promise<number> {
  const value = await readMetric(server, name, key ? { "api-key": key } : {});
  assert.ok(!Number.isNaN(value), `${name} missing`);
  return value;
}

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition never became true");
}

test("a full queue answers 503 with retry-after and retry-after-ms, never a 500", async () => {
  const server = await start(["--parallel", "1", "--max-queue", "1"]);
  try {
    const running = chat(server, { max_tokens: LONG });
    await waitFor(async () => (await metric(server, "phiserve_busy_sequences")) === 1);
    const queued = chat(server, { max_tokens: 2 });
    await waitFor(async () => (await metric(server, "phiserve_queue_depth")) === 1);
    const refused = await chat(server, { max_tokens: 2 });
    assert.equal(refused.status, 503);
    assert.match(refused.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
    assert.match(refused.headers.get("retry-after-ms") ?? "", /^\d+$/);
    assert.equal((await refused.json()).error.code, "overloaded");
    assert.equal((await running).status, 200);
    assert.equal((await queued).status, 200);
  } finally {
    await server.close();
  }
});

test("a client that disconnects frees its sequence: generation stops and the next request is served", async () => {
  const server = await start(["--parallel", "1"]);
  try {
    for (const stream of [true, false]) {
      const before = await metric(server, "phiserve_generated_tokens");
      const firstTokensBefore = await metric(server, "phiserve_time_to_first_token_seconds_count");
      const abort = new AbortController();
      const pending = chat(server, { max_tokens: LONG, stream }, { signal: abort.signal });
      // Not merely admitted: the first token is out (time to first token observed), so the cut bills some. For a stream,
      // its first chunk is not enough: that is the role chunk, sent before any token (a loaded machine cut there once).
      await waitFor(async () => (await metric(server, "phiserve_time_to_first_token_seconds_count")) > firstTokensBefore);
      abort.abort();
      await pending.catch(() => undefined);
      const next = await (await chat(server, { max_tokens: 3 })).json();
      assert.equal(next.usage.completion_tokens, 3);
      await waitFor(async () => (await metric(server, "phiserve_busy_sequences")) === 0);
      const generated = (await metric(server, "phiserve_generated_tokens")) - before;
      assert.ok(generated < LONG, `the abandoned request went on: ${generated} tokens`);
    }
    // What the abandoned requests generated is still accounted for.
    const cut = server.logs().split("\n").filter((l) => l.includes('"event":"request.completed"')).map((l) => JSON.parse(l)).filter((u) => u.completed === false);
    assert.equal(cut.length, 2, JSON.stringify(cut));
    for (const usage of cut) assert.ok(usage.completionTokens > 0 && usage.completionTokens < LONG, JSON.stringify(cut));
  } finally {
    await server.close();
  }
});

test("fairness: with one sequence, a second key's single request is served before the first key's backlog", async () => {
  const server = await start(["--parallel", "1", "--api-key", "tenant-a-key-0000", "--api-key", "tenant-b-key-0000"]);
  try {
    const order: string[] = [];
    const track = (name: string, p: Promise<Response>) => p.then(async (r) => { assert.equal(r.status, 200); await r.json(); order.push(name); });
    const all = [track("a0", chat(server, { max_tokens: 400 }, { key: "tenant-a-key-0000" }))];
    await waitFor(async () => (await metric(server, "phiserve_busy_sequences", "tenant-a-key-0000")) === 1);
    for (let i = 1; i <= 3; i++) all.push(track(`a${i}`, chat(server, { max_tokens: 50 }, { key: "tenant-a-key-0000" })));
    await waitFor(async () => (await metric(server, "phiserve_queue_depth", "tenant-a-key-0000")) === 3);
    all.push(track("b", chat(server, { max_tokens: 50 }, { key: "tenant-b-key-0000" })));
    await Promise.all(all);
    assert.deepEqual(order.slice(0, 3), ["a0", "a1", "b"], order.join(","));
  } finally {
    await server.close();
  }
});

test("prefix reuse: a second request sharing the system prompt evaluates only the new suffix", async () => {
  const server = await start(["--parallel", "1"]);
  try {
    const system = "You are a careful assistant. ".repeat(40);
    const ask = async (question: string) => (await (await chat(server, { messages: [{ role: "system", content: system }, { role: "user", content: question }], max_tokens: 4 })).json()).usage.prompt_tokens as number;
    const firstPrompt = await ask("What is the capital of France?");
    const [evaluated, reused] = [await metric(server, "phiserve_prompt_tokens_evaluated"), await metric(server, "phiserve_prompt_tokens_reused")];
    assert.equal(evaluated, firstPrompt);
    assert.equal(reused, 0);
    const secondPrompt = await ask("And of Spain?");
    const newlyEvaluated = (await metric(server, "phiserve_prompt_tokens_evaluated")) - evaluated;
    const newlyReused = (await metric(server, "phiserve_prompt_tokens_reused")) - reused;
    assert.equal(newlyEvaluated + newlyReused, secondPrompt);
    assert.ok(newlyReused > 200, `reused only ${newlyReused} tokens`);
    assert.ok(newlyEvaluated < 20, `evaluated ${newlyEvaluated} tokens`);
  } finally {
    await server.close();
  }
});

test("request timeout: 504 JSON before the first byte, an error frame then a cut body (no [DONE]) mid-stream", async () => {
  const server = await start(["--parallel", "1", "--request-timeout", "1"]);
  try {
    const plain = await chat(server, { max_tokens: 3500 });
    assert.equal(plain.status, 504);
    assert.equal((await plain.json()).error.code, "timeout");
    const streamed = await chat(server, { max_tokens: 3500, stream: true });
    assert.equal(streamed.status, 200);
    // The body ends without HTTP's last chunk, so the read fails (docs/AZURE-API.md "Streaming").
    let text = "";
    const decoder = new TextDecoder();
    await assert.rejects(async () => {
      for await (const bytes of streamed.body!) text += decoder.decode(bytes, { stream: true });
    });
    const lines = text.split("\n").filter(Boolean);
    assert.ok(!lines.includes("data: [DONE]"));
    assert.equal(JSON.parse(lines.at(-1)!.slice(6)).error.code, "timeout");
  } finally {
    await server.close();
  }
});

test("SIGTERM drains: the in-flight stream completes, new requests get 503, the process exits 0", async () => {
  const server = await start(["--parallel", "1", "--drain-timeout", "60"]);
  const res = await chat(server, { max_tokens: 1500, stream: true });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value);
  server.process.kill("SIGTERM");
  await waitFor(async () => {
    const health = await fetch(`${server.url}/health`).catch(() => undefined);
    return health?.status === 503 && (await health.json()).status === "draining";
  });
  const refused = await chat(server, { max_tokens: 2 });
  assert.equal(refused.status, 503);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
  }
  const chunks = text.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
  assert.ok(text.endsWith("data: [DONE]\n\n"));
  assert.equal(chunks.at(-1).choices[0].finish_reason, "length");
  assert.equal(chunks.at(-1).usage.completion_tokens, 1500);
  const [code] = await server.exited();
  assert.equal(code, 0);
});
