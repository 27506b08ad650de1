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
import { readGgufSummary } from "./engine/llama-cpp/gguf-metadata.ts";
import { createApiKeyAuthenticator } from "./auth/api-key-authenticator.ts";
import { ChatCompletionsService } from "./serving/chat-completions.service.ts";
import { createHttpServer } from "./http/server.ts";
import { planServedModel, type ServedModelPlan } from "./served-model.ts";

export interface App {
  http: FastifyInstance;
  engine: Engine;
  plan: ServedModelPlan;
  /** Binds the port (health answers 503 from here), then loads the model; resolves with the base URL once ready. */
  start(): Promise<string>;
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
  const engine =
    overrides.engine ??
    new LlamaCppEngine(
      { modelPath: config.modelPath, contextSize, parallel: config.parallel, threads: config.threads, gpu: config.gpu, extraStopTokens: plan.extraStopTokens },
      logger.child({ component: "engine" }),
    );
  const chat = new ChatCompletionsService({ engine, model: plan.model });
  const authenticator = createApiKeyAuthenticator(config.apiKeys);
  const http = createHttpServer(
    { logger, authenticator, chat, model: plan.model, isReady: () => engine.isReady() },
    { bodyLimitBytes: config.bodyLimitBytes },
  );
  return {
    http,
    engine,
    plan,
    async start() {
      await http.listen({ host: config.host, port: config.port });
      await engine.load();
      const address = http.server.address();
      const port = typeof address === "object" && address ? address.port : config.port;
      const host = config.host.includes(":") ? `[${config.host}]` : config.host;
      return `http://${host}:${port}`;
    },
    async close() {
      await http.close();
      await engine.close();
    },
  };
}
