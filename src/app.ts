/**
 * The composition root: the only place that builds every layer. `createApp` wires the engine,
 * the service and the HTTP server from a frozen config; `close()` tears down in reverse order.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { ServeConfig } from "./config/serve-config.ts";
import { DEFAULT_CONTEXT_CAP } from "./config/serve-config.ts";
import type { Engine } from "./engine/engine.ts";
import { LlamaCppEngine } from "./engine/llama-cpp/llama-cpp-engine.ts";
import { defaultParallel, readGgufSummary } from "./engine/llama-cpp/gguf-metadata.ts";
import { createApiKeyAuthenticator } from "./auth/api-key-authenticator.ts";
import { ChatCompletionsService } from "./serving/chat-completions.service.ts";
import { createHttpServer } from "./http/server.ts";
import { planServedModel, type ServedModelPlan } from "./served-model.ts";
import { AdmissionScheduler } from "./scheduler/admission-scheduler.ts";
import { totalmem } from "node:os";
import { Metrics } from "./observability/metrics.ts";

export interface App {
  http: FastifyInstance;
  engine: Engine;
  plan: ServedModelPlan;
  scheduler: AdmissionScheduler;
  /** Binds the port (health answers 503 from here), then loads the model; resolves with the base URL once ready. */
  start(): Promise<string>;
  /** Stops admitting (503, health "draining"), lets in-flight requests finish for up to `timeoutMs`, then aborts the rest. */
  drain(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface AppOverrides {
  /** Replace the engine (unit tests of the layers above it). */
  engine?: Engine;
}

export async function createApp(config: ServeConfig, logger: Logger, overrides: AppOverrides = {}): Promise<App> {
  const summary = overrides.engine ? {} : await readGgufSummary(config.modelPath);
  const plan = planServedModel(config.modelPath, summary, config.catalogModelId, config.deploymentName, { jsonPolicy: config.jsonPolicy, maxChoices: config.maxChoices, toolEmulation: config.toolEmulation });
  const contextSize = config.contextSize ?? Math.min(plan.modelContextLength ?? DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP);
  const parallel = config.parallel ?? defaultParallel(summary.kvBytesPerToken, contextSize, totalmem());
  const scheduler = new AdmissionScheduler({ slots: parallel, maxQueue: config.maxQueue ?? Math.max(16, 8 * parallel) });
  const shutdown = new AbortController();
  let draining = false;
  const engine =
    overrides.engine ??
    new LlamaCppEngine(
      { modelPath: config.modelPath, contextSize, parallel, threads: config.threads, batchSize: config.batchSize, gpu: config.gpu, extraStopTokens: plan.extraStopTokens },
      logger.child({ component: "engine" }),
    );
  const chat = new ChatCompletionsService({ engine, model: plan.model });
  const metrics = new Metrics({ engine: () => engine.stats(), scheduler: () => scheduler.stats() });
  const authenticator = createApiKeyAuthenticator(config.apiKeys);
  const http = createHttpServer(
    { logger, authenticator, chat, model: plan.model, scheduler, state: () => (draining ? "draining" : engine.isReady() ? "ready" : "loading"), shutdownSignal: shutdown.signal, metrics },
    { bodyLimitBytes: config.bodyLimitBytes, requestTimeoutMs: config.requestTimeoutMs },
  );
  return {
    http,
    engine,
    plan,
    scheduler,
    async start() {
      await http.listen({ host: config.host, port: config.port });
      await engine.load();
      logger.info({ event: "server.ready", parallel, maxQueue: config.maxQueue ?? Math.max(16, 8 * parallel) }, "ready");
      const address = http.server.address();
      const port = typeof address === "object" && address ? address.port : config.port;
      const host = config.host.includes(":") ? `[${config.host}]` : config.host;
      return `http://${host}:${port}`;
    },
    async drain(timeoutMs) {
      draining = true;
      scheduler.drain();
      const timer = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), timeoutMs).unref());
      if ((await Promise.race([scheduler.whenIdle(), timer])) === "timeout") {
        logger.warn({ event: "server.drain_timeout", busySlots: scheduler.stats().busySlots }, "drain timeout: aborting in-flight requests");
        shutdown.abort();
        await scheduler.whenIdle();
      }
    },
    async close() {
      shutdown.abort();
      await http.close();
      await engine.close();
    },
  };
}
