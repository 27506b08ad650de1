/**
 * The chat use case driven directly (no HTTP): a real deployment, scheduler, quota and usage
 * meter over the scripted fake engine. What the route relies on: every pre-stream check throws,
 * the lifecycle releases and meters exactly once, and cancellation reaches the engine.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { Deployment } from "../deployments/deployment.ts";
import { DeploymentRegistry } from "../deployments/deployment-registry.ts";
import { createFakeEngineFactory } from "../engine/fake/fake-engine-factory.ts";
import { MemoryQuota } from "../quota/memory-quota.ts";
import { Metrics } from "../observability/metrics.ts";
import { AppError } from "../errors/app-error.ts";
import { Cancellation } from "../lib/cancellation.ts";
import { ANONYMOUS, type Principal } from "../auth/principal.ts";
import type { DeploymentSettings } from "../config/serve-config.ts";
import type { UsageEntry } from "../store/store.ts";
import type { ChatCompletionChunk } from "../protocol/chat-completions.schema.ts";
import { fakeServeConfig } from "../../test/helpers/fake-config.ts";
import { UsageMeter } from "./usage-meter.ts";
import { ChatCompletionsService, type ChatRequestContext } from "./chat-completions.service.ts";

const silent = pino({ level: "silent" });

interface Setup {
  tokens?: string[];
  deployment?: Partial<DeploymentSettings>;
}

async function setup(options: Setup = {}) {
  const engines = createFakeEngineFactory({ tokens: options.tokens ?? ["Hel", "lo", "!"], contextLength: 4096 });
  const settings = { ...fakeServeConfig().deployments[0]!, ...options.deployment };
  const deployment = await Deployment.create(settings, { engines, gpu: "cpu", logger: silent });
  const deployments = new DeploymentRegistry([deployment], { defaultName: undefined, singleModel: true, memoryBudgetBytes: Infinity, idleUnloadMs: 0 }, silent);
  const records: UsageEntry[] = [];
  const usage = new UsageMeter({ recordUsage: async (entry) => void records.push(entry) }, silent);
  const metrics = new Metrics({ engine: () => deployments.engineStats(), scheduler: () => deployments.schedulerStats() });
  const quota = new MemoryQuota();
  const shutdown = new Cancellation();
  const service = new ChatCompletionsService({ deployments, quota, usage, metrics, shutdownSignal: shutdown });
  return { service, deployment, engine: () => engines.engines[0]!, records, metrics, shutdown, quota };
}

function context(overrides: Partial<ChatRequestContext> = {}): ChatRequestContext {
  return { principal: ANONYMOUS, signal: new Cancellation(), arrivedAt: performance.now(), deadlineAt: undefined, requestId: "req-1", log: silent, ...overrides };
}

const hi = (extra: Record<string, unknown> = {}) => ({ body: { messages: [{ role: "user" as const, content: "hi" }], ...extra }, passThrough: {}, deploymentName: undefined });

async function ttftCount(metrics: Metrics): Promise<number> {
  const values = (await metrics.timeToFirstToken.get()).values;
  return values.find((v) => v.metricName === "phiserve_time_to_first_token_seconds_count")?.value ?? 0;
}

async function drain(chunks: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const all: ChatCompletionChunk[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return all;
}

test("a complete result: the response, its exact usage, the rate-limit state, one usage record and one TTFT sample", async () => {
  const { service, records, metrics, engine } = await setup();
  const result = await service.create(hi(), context());
  assert.equal(result.stream, false);
  if (result.stream) return;
  const prompt = engine().requests[0]!.prompt;
  assert.equal(result.response.choices[0]!.message.content, "Hello!");
  assert.equal(result.response.choices[0]!.finish_reason, "stop");
  assert.deepEqual(result.response.usage, { prompt_tokens: prompt.length, completion_tokens: 3, total_tokens: prompt.length + 3 });
  assert.equal(result.response.model, "Phi-3.5-Mini-Instruct");
  assert.equal(result.rateLimit.limitRequests, 1000);
  assert.equal(result.rateLimit.remainingRequests, 999);
  assert.equal(records.length, 1);
  const ttftMs = records[0]!.ttftMs;
  assert.ok(typeof ttftMs === "number" && ttftMs >= 0 && ttftMs <= records[0]!.durationMs, "time to first output, within the duration");
  assert.deepEqual({ ...records[0], queuedMs: 0, durationMs: 0, createdAt: null, ttftMs: 0 }, {
    requestId: "req-1", principal: "anonymous", deployment: "phi-3.5-mini-instruct", model: "Phi-3.5-Mini-Instruct",
    promptTokens: prompt.length, completionTokens: 3, status: 200, stream: false, completed: true, queuedMs: 0, durationMs: 0, createdAt: null,
    ttftMs: 0, filtered: false,
  });
  assert.equal(await ttftCount(metrics), 1);
});

test("a stream: role first, text, then the finish reason with usage; metered once when the run ends", async () => {
  const { service, records, metrics } = await setup();
  const result = await service.create(hi({ stream: true }), context());
  assert.equal(result.stream, true);
  if (!result.stream) return;
  const chunks = await drain(result.chunks);
  assert.deepEqual(chunks[0]!.choices[0]!.delta, { role: "assistant", content: "" });
  assert.equal(chunks.slice(1, -1).map((c) => c.choices[0]!.delta.content).join(""), "Hello!");
  const last = chunks.at(-1)!;
  assert.equal(last.choices[0]!.finish_reason, "stop");
  assert.equal(last.usage?.completion_tokens, 3);
  await waitFor(() => records.length === 1);
  assert.equal(records[0]!.status, 200);
  assert.equal(records[0]!.stream, true);
  assert.equal(await ttftCount(metrics), 1);
});

test("a caller not allowed on the deployment gets FORBIDDEN before the model is loaded", async () => {
  const { service, deployment } = await setup();
  const restricted: Principal = { ...ANONYMOUS, id: "key:k1", deployments: ["other"] };
  await assert.rejects(service.create(hi(), context({ principal: restricted })), (e: unknown) => e instanceof AppError && e.code === "FORBIDDEN");
  assert.equal(deployment.isLoaded(), false);
});

test("over the deployment's rate limit: RATE_LIMITED with the limit headers, and nothing runs", async () => {
  const { service, engine, records } = await setup({ deployment: { quota: { requestsPerMinute: 1 } } });
  await service.create(hi(), context());
  await assert.rejects(service.create(hi(), context()), (e: unknown) => {
    assert.ok(e instanceof AppError && e.code === "RATE_LIMITED");
    assert.equal(e.headers?.["x-ratelimit-remaining-requests"], "0");
    assert.ok((e.retryAfterSeconds ?? 0) > 0);
    return true;
  });
  assert.equal(engine().requests.length, 1);
  // The refusal is metered too (the usage dashboard's throttled count), with no tokens.
  assert.equal(records.length, 2);
  assert.deepEqual([records[1]!.status, records[1]!.promptTokens, records[1]!.completionTokens, records[1]!.ttftMs], [429, 0, 0, null]);
});

test("a full queue: OVERLOADED, and the tokens reserved for the refused request are given back", async () => {
  const { service, deployment, quota, engine } = await setup({ tokens: Array(10_000).fill("x"), deployment: { parallel: 1, maxQueue: 0, quota: { tokensPerMinute: 100_000 } } });
  const first = await service.create(hi({ stream: true, max_tokens: 3000 }), context());
  await assert.rejects(service.create(hi({ max_tokens: 3000 }), context()), (e: unknown) => e instanceof AppError && e.code === "OVERLOADED");
  const state = await quota.peek([deployment.limit]);
  // Only the running request's prompt + max_tokens are still reserved.
  await waitFor(() => engine().requests.length === 1);
  assert.equal(state?.remainingTokens, 100_000 - (engine().requests[0]!.prompt.length + 3000));
  if (first.stream) for await (const _ of first.chunks) break;
});

test("the client going away mid-generation: CLIENT_CLOSED, the sequence freed, usage billed as cut short (499)", async () => {
  const { service, deployment, records, engine } = await setup({ tokens: Array(100_000).fill("x") });
  const client = new Cancellation();
  const pending = service.create(hi(), context({ signal: client }));
  await waitFor(() => engine().requests.length === 1);
  setImmediate(() => client.abort(new Error("gone")));
  await assert.rejects(pending, (e: unknown) => e instanceof AppError && e.code === "CLIENT_CLOSED");
  assert.equal(deployment.scheduler.stats().busySlots, 0);
  await waitFor(() => records.length === 1);
  assert.equal(records[0]!.status, 499);
  assert.equal(records[0]!.completed, false);
  assert.ok(records[0]!.completionTokens < 100_000);
});

test("the deadline passing mid-stream: the chunks end with GENERATION_TIMEOUT, even while the reader is stalled", async () => {
  const { service, deployment, records } = await setup({ tokens: Array(1_000_000).fill("x") });
  const result = await service.create(hi({ stream: true }), context({ deadlineAt: performance.now() + 50 }));
  assert.ok(result.stream);
  if (!result.stream) return;
  // Nobody reads: the request must still end and free its sequence when the deadline passes.
  await waitFor(() => records.length === 1);
  assert.equal(deployment.scheduler.stats().busySlots, 0);
  assert.equal(records[0]!.completed, false);
  await assert.rejects(drain(result.chunks), (e: unknown) => e instanceof AppError && e.code === "GENERATION_TIMEOUT");
});

test("a reader that leaves the stream early stops the generation", async () => {
  const { service, deployment, records } = await setup({ tokens: Array(100_000).fill("x") });
  const result = await service.create(hi({ stream: true }), context());
  if (!result.stream) return assert.fail("expected a stream");
  let seen = 0;
  for await (const _ of result.chunks) if (++seen === 10) break;
  await waitFor(() => records.length === 1);
  assert.equal(deployment.scheduler.stats().busySlots, 0);
  assert.ok(records[0]!.completionTokens < 1000, `${records[0]!.completionTokens} tokens`);
});

test("the drain timeout at shutdown ends a running stream with OVERLOADED (server shutting down)", async () => {
  const { service, shutdown } = await setup({ tokens: Array(1_000_000).fill("x") });
  const result = await service.create(hi({ stream: true }), context());
  if (!result.stream) return assert.fail("expected a stream");
  let seen = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of result.chunks) if (++seen === 5) shutdown.abort(new Error("drain timeout"));
    })(),
    (e: unknown) => e instanceof AppError && e.code === "OVERLOADED" && /shutting down/.test(e.message),
  );
});

test("unknown deployments and over-long prompts fail before anything is reserved", async () => {
  const { service, quota, deployment } = await setup({ deployment: { contextSize: 64 } });
  await assert.rejects(service.create({ ...hi(), deploymentName: "nope" }, context()), (e: unknown) => e instanceof AppError && e.code === "MODEL_NOT_FOUND");
  const long = { body: { messages: [{ role: "user" as const, content: "x".repeat(5000) }] }, passThrough: {}, deploymentName: undefined };
  await assert.rejects(service.create(long, context()), (e: unknown) => e instanceof AppError && e.code === "CONTEXT_LENGTH_EXCEEDED");
  const state = await quota.peek([deployment.limit]);
  assert.equal(state?.remainingRequests, 1000);
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
