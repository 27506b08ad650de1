import pino from "pino";
import { createApp } from "../../app.ts";
import { isLoopbackHost, type ServeConfig } from "../../config/serve-config.ts";
import type { GpuChoice } from "../../engine/llama-cpp/llama-cpp-engine.ts";
import { CliError, resolveModel } from "../resolve-model.ts";
import { exitWithCliError } from "./exit.ts";

interface ServeFlags {
  model?: string;
  modelName?: string;
  host: string;
  port: number;
  apiKey: string[];
  auth: boolean;
  deployment?: string;
  parallel?: number;
  maxQueue?: number;
  requestTimeout: number;
  drainTimeout: number;
  context?: number;
  threads?: number;
  batchSize: number;
  gpu: GpuChoice;
  bodyLimit: number;
  jsonPolicy: "constrained" | "azure";
  maxN: number;
  toolEmulation: boolean;
  logLevel: string;
}

export async function runServe(flags: ServeFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, redact: ["req.headers.authorization", 'req.headers["api-key"]'] }, pino.destination(2));
  try {
    const apiKeys = [...flags.apiKey, ...(process.env.PHISERVE_API_KEYS ?? "").split(",")].map((k) => k.trim()).filter(Boolean);
    checkExposure(flags.host, apiKeys.length > 0, flags.auth, logger);
    const resolved = await resolveModel(flags.model, process.env);
    const config: ServeConfig = Object.freeze({
      host: flags.host,
      port: flags.port,
      apiKeys,
      modelPath: resolved.modelPath,
      catalogModelId: flags.modelName ?? resolved.catalogModelId,
      deploymentName: flags.deployment,
      parallel: flags.parallel,
      maxQueue: flags.maxQueue,
      requestTimeoutMs: flags.requestTimeout * 1000,
      drainTimeoutMs: flags.drainTimeout * 1000,
      contextSize: flags.context,
      threads: flags.threads,
      batchSize: flags.batchSize,
      gpu: flags.gpu,
      bodyLimitBytes: flags.bodyLimit,
      jsonPolicy: flags.jsonPolicy,
      maxChoices: flags.maxN,
      toolEmulation: flags.toolEmulation,
      logLevel: flags.logLevel,
    });
    const app = await createApp(config, logger);
    let closing = false;
    const shutdown = (signal: string) => {
      if (closing) return;
      closing = true;
      logger.info({ event: "server.stopping", signal }, "stopping");
      // Stop admitting, let in-flight requests finish (up to --drain-timeout), then exit 0.
      app
        .drain(config.drainTimeoutMs)
        .then(() => app.close())
        .then(() => process.exit(0), (e: unknown) => exitWithCliError(e));
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
    const url = await app.start();
    process.stdout.write(`phiserve ready: ${url} (model ${app.plan.model.azureName}, deployment ${app.plan.model.deploymentName})\n`);
  } catch (error) {
    exitWithCliError(error instanceof Error && !(error instanceof CliError) && isUserError(error) ? new CliError(error.message) : error);
  }
}

function isUserError(error: Error): boolean {
  return /not found|Unknown catalog|no chat template|EADDRINUSE/.test(error.message);
}

function checkExposure(host: string, hasKeys: boolean, authRequired: boolean, logger: pino.Logger): void {
  if (hasKeys) return;
  if (!isLoopbackHost(host)) {
    if (authRequired) {
      throw new CliError(`Refusing to serve ${host} without an API key: pass --api-key KEY (or PHISERVE_API_KEYS), or --no-auth to serve it open.`);
    }
    logger.warn({ event: "auth.disabled", host }, "serving a non-loopback address with no authentication (--no-auth)");
    return;
  }
  logger.warn({ event: "auth.disabled", host }, "no API key configured: the server is open to every local process");
}
