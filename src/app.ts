/**
 * The composition root: the only place that builds every layer. `createApp` wires deployments
 * (an engine from the engine factory, a generation step and a scheduler each), authentication,
 * quota, metering, the chat use case and the HTTP server from a frozen config; `close()` tears
 * down in reverse order.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { totalmem } from "node:os";
import type { ServeConfig } from "./config/serve-config.ts";
import type { EngineFactory } from "./engine/engine-factory.ts";
import { createLlamaCppEngineFactory } from "./engine/llama-cpp/llama-cpp-engine-factory.ts";
import { createOnnxEngineFactory } from "./engine/onnx/onnx-engine-factory.ts";
import { createRemoteEngineFactory } from "./engine/remote/remote-engine-factory.ts";
import { engineFactoryByFormat } from "./engine/engine-factory.ts";
import { stat } from "node:fs/promises";
import { ChatCompletionsService } from "./serving/chat-completions.service.ts";
import { Cancellation } from "./lib/cancellation.ts";
import { createAuthenticator } from "./auth/authenticator.ts";
import { JwtAuthenticator } from "./auth/jwt-authenticator.ts";
import { createStore } from "./store/create-store.ts";
import { createQuota } from "./quota/create-quota.ts";
import { UsageMeter } from "./serving/usage-meter.ts";
import { createHttpServer } from "./http/server.ts";
import { Metrics } from "./observability/metrics.ts";
import { Deployment } from "./deployments/deployment.ts";
import { DeploymentRegistry } from "./deployments/deployment-registry.ts";
import { deploymentCompletion } from "./deployments/guard-completion.ts";
import { createContentFilter } from "./safety/create-content-filter.ts";
import type { ContentFilter } from "./safety/content-filter.ts";
import { AdminService } from "./admin/admin-service.ts";
import { DEFAULT_PRICE, type UsagePrices } from "./admin/pricing.ts";
import { isLoopbackHost } from "./lib/loopback.ts";
import { createTracing } from "./observability/tracing.ts";

export interface App {
  http: FastifyInstance;
  deployments: DeploymentRegistry;
  /** Binds the port (health answers 503 from here), then loads the default deployment; resolves with the base URL once ready. */
  start(): Promise<string>;
  /** Stops admitting (503, health "draining"), lets in-flight requests finish for up to `timeoutMs`, then aborts the rest. */
  drain(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
  /** True when requests must authenticate (static keys, stored keys or a token issuer). */
  isAuthenticationEnabled(): boolean;
}

export interface AppOverrides {
  /** Environment variables the app may read (content-safety keys); default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Makes every deployment's engine; default: llama.cpp for GGUF files, ONNX Runtime for model folders (tests of the layers above pass a fake one). */
  engines?: EngineFactory;
}

export async function createApp(config: ServeConfig, logger: Logger, overrides: AppOverrides = {}): Promise<App> {
  const engines = overrides.engines ?? engineFactoryByFormat(
    { file: createLlamaCppEngineFactory(), folder: createOnnxEngineFactory() },
    async (path) => (await stat(path).catch(() => undefined))?.isDirectory() ?? false,
  );
  // Metrics first (their sources are read at scrape time): the content filters count into them.
  let registry: DeploymentRegistry | undefined;
  const metrics = new Metrics({ engine: () => registry!.engineStats(), scheduler: () => registry!.schedulerStats() });
  const filters: ContentFilter[] = [];
  const built = [];
  try {
    for (const settings of config.deployments) {
      const contentFilter = settings.contentSafety
        ? await createContentFilter(settings.contentSafety, {
            // A guard deployment is found when it is first used (deployments are built in order).
            guardCompletion: (name) => (request, signal) => deploymentCompletion(registry!, name)(request, signal),
            env: overrides.env ?? process.env,
            hooks: {
              onClassifierError: (classifier, role, error) => {
                metrics.contentFilterErrors.inc({ classifier, role });
                logger.warn({ event: "content_filter.classifier_failed", classifier, role, err: error }, "content-safety classifier failed: text not filtered");
              },
              onFiltered: (role) => metrics.contentFiltered.inc({ role }),
            },
          })
        : undefined;
      if (contentFilter) filters.push(contentFilter);
      // A deployment backed by upstreams gets remote engines (docs/REMOTE.md); the others, the local factory.
      const deploymentEngines = settings.upstream ? createRemoteEngineFactory(settings.upstream) : engines;
      built.push(await Deployment.create(settings, { engines: deploymentEngines, gpu: config.gpu, images: config.images, contentFilter, logger }));
    }
    checkGuardDeployments(config);
  } catch (error) {
    await Promise.all(filters.map((f) => f.close()));
    throw error;
  }
  const deployments = new DeploymentRegistry(built, {
    defaultName: config.defaultDeployment,
    singleModel: config.singleModel,
    memoryBudgetBytes: config.memoryBudgetBytes ?? 0.75 * totalmem(),
    idleUnloadMs: config.idleUnloadMs,
  }, logger);
  registry = deployments;
  // A Cancellation, not an AbortController: every request listens to it, and EventTarget listeners cost µs each.
  const shutdown = new Cancellation();
  let draining = false;
  const store = config.databaseUrl ? await createStore(config.databaseUrl) : undefined;
  await store?.migrate();
  const quota = await createQuota({ redisUrl: config.redisUrl });
  const jwt = config.jwt ? new JwtAuthenticator({ issuer: config.jwt.issuer, audience: config.jwt.audience, jwksUri: config.jwt.jwksUri || undefined, adminRole: config.jwt.adminRole }) : undefined;
  const authenticator = await createAuthenticator({ staticKeys: config.apiKeys, adminKeys: config.adminKeys, store, jwt });
  const usage = new UsageMeter(store, logger);
  // The OpenTelemetry SDK is loaded only when an endpoint is configured (docs/ADMIN-API.md "Traces").
  const tracing = config.tracing ? await createTracing(config.tracing, logger) : undefined;
  const chat = new ChatCompletionsService({ deployments, quota, usage, metrics, shutdownSignal: shutdown, tracer: tracing?.tracer });
  const admin = new AdminService({ store, deployments, prices: usagePrices(config, deployments) });
  const http = createHttpServer(
    {
      logger,
      authenticator,
      chat,
      deployments,
      state: () => (draining ? "draining" : deployments.default.isLoaded() ? "ready" : "loading"),
      metrics,
      quota,
      // A server that runs open opens its admin API on loopback only (docs/ADMIN-API.md "Who may call it").
      admin: { service: admin, openWhenUnauthenticated: isLoopbackHost(config.host) },
    },
    {
      bodyLimitBytes: config.bodyLimitBytes,
      requestTimeoutMs: config.requestTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      maxConnectionsPerClient: config.maxConnectionsPerClient,
      tls: config.tls,
    },
  );
  return {
    http,
    deployments,
    async start() {
      await http.listen({ host: config.host, port: config.port });
      await deployments.ensureLoaded(deployments.default);
      deployments.startIdleReaper();
      logger.info({ event: "server.ready", deployments: deployments.list().map((d) => d.name), default: deployments.default.name }, "ready");
      const address = http.server.address();
      const port = typeof address === "object" && address ? address.port : config.port;
      const host = config.host.includes(":") ? `[${config.host}]` : config.host;
      return `${config.tls ? "https" : "http"}://${host}:${port}`;
    },
    isAuthenticationEnabled: () => authenticator.isEnabled(),
    async drain(timeoutMs) {
      draining = true;
      deployments.drain();
      const timer = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), timeoutMs).unref());
      if ((await Promise.race([deployments.whenIdle(), timer])) === "timeout") {
        logger.warn({ event: "server.drain_timeout", busySlots: deployments.schedulerStats().busySlots }, "drain timeout: aborting in-flight requests");
        shutdown.abort(new Error("drain timeout"));
        await deployments.whenIdle();
      }
    },
    async close() {
      shutdown.abort(new Error("server closing"));
      await http.close();
      await deployments.close();
      await Promise.all(filters.map((f) => f.close()));
      await usage.flush();
      await tracing?.close();
      authenticator.close();
      await quota.close();
      await store?.close();
    },
  };
}

/** Each deployment's price (its `price`, else the server's default), keyed by the name it is served under. */
function usagePrices(config: ServeConfig, deployments: DeploymentRegistry): UsagePrices {
  const prices: Record<string, { promptPer1k: number; completionPer1k: number }> = {};
  // Deployments are built in the config's order.
  deployments.list().forEach((d, i) => {
    const own = config.deployments[i]?.price;
    if (own) prices[d.name] = own;
  });
  return { default: config.defaultPrice ?? DEFAULT_PRICE, deployments: prices };
}

/** Every guard classifier names another deployment of this server. */
function checkGuardDeployments(config: ServeConfig): void {
  const names = new Set(config.deployments.map((d) => d.name));
  for (const d of config.deployments) {
    for (const c of d.contentSafety?.classifiers ?? []) {
      if (c.kind === "guard" && !names.has(c.deployment)) {
        throw new Error(`Deployment '${d.name ?? d.modelPath}': its guard classifier names the deployment '${c.deployment}', which this server does not have.`);
      }
      if (c.kind === "guard" && c.deployment === d.name) throw new Error(`Deployment '${d.name}' cannot be its own guard.`);
    }
  }
}
