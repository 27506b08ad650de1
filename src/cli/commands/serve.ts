import type { Logger } from "pino";
import { createApp } from "../../app.ts";
import { DEFAULT_IMAGE_LIMITS, type DeploymentSettings, type GpuChoice, type ServeConfig } from "../../config/serve-config.ts";
import { loadConfigFile, parseByteSize, type ConfigFile, type ContentSafetyConfig, type UpstreamConfig } from "../../config/config-file.ts";
import type { UpstreamSettings } from "../../config/serve-config.ts";
import { DEFAULT_MODEL_ID, findCatalogModel } from "../../catalog/phi-models.ts";
import type { ClassifierSettings, ContentSafetySettings } from "../../config/serve-config.ts";
import { AZURE_DEFAULT_POLICY, type SafetyMode } from "../../safety/content-policy.ts";
import { resolveDatabaseUrl } from "../../store/create-store.ts";
import { isLoopbackHost } from "../../lib/loopback.ts";
import { createLogger } from "../../observability/logger.ts";
import { cacheDirFrom, CliError, resolveModel } from "../resolve-model.ts";
import { join } from "node:path";
import { exitWithCliError } from "./exit.ts";
import { DEFAULT_PRICE } from "../../admin/pricing.ts";

interface ServeFlags {
  config?: string;
  db?: string;
  redis?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  jwksUri?: string;
  jwtAdminRole?: string;
  adminKey: string[];
  pricePrompt?: number;
  priceCompletion?: number;
  otlpEndpoint?: string;
  rpm?: number;
  tpm?: number;
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
  decodeBatch: number;
  maxStepMs?: number;
  padDecodeRows: boolean;
  promptCache?: number;
  flashAttention?: "on" | "off";
  calibrate: boolean;
  gpu: GpuChoice;
  bodyLimit: number;
  bodyTimeout?: number;
  maxConnectionsPerClient?: number;
  tlsCert?: string;
  tlsKey?: string;
  jsonPolicy: "constrained" | "azure";
  maxN: number;
  toolEmulation: boolean;
  parseSpecialInContent: boolean;
  numCrops?: number;
  maxImageBytes?: number;
  maxImagePixels?: number;
  allowImageUrls: boolean;
  allowPrivateImageUrls: boolean;
  imageUrlTimeout?: number;
  contentSafety?: SafetyMode;
  contentAnnotations: boolean;
  upstream: string[];
  upstreamKeyEnv?: string;
  upstreamModel?: string;
  logLevel: string;
}

export async function runServe(flags: ServeFlags): Promise<void> {
  const logger = createLogger({ level: flags.logLevel });
  try {
    const file = flags.config ? await readConfigFile(flags.config) : undefined;
    const apiKeys = [...flags.apiKey, ...(process.env.PHISERVE_API_KEYS ?? "").split(",")].map((k) => k.trim()).filter(Boolean);
    const config: ServeConfig = Object.freeze({
      host: flags.host,
      port: flags.port,
      apiKeys,
      databaseUrl: resolveDatabaseUrl(flags.db),
      redisUrl: flags.redis ?? process.env.PHISERVE_REDIS_URL,
      jwt: flags.jwtIssuer ? { issuer: flags.jwtIssuer, audience: requireAudience(flags), jwksUri: flags.jwksUri, adminRole: flags.jwtAdminRole } : undefined,
      adminKeys: [...flags.adminKey, ...(process.env.PHISERVE_ADMIN_KEYS ?? "").split(",")].map((k) => k.trim()).filter(Boolean),
      defaultPrice: defaultPrice(flags),
      tracing: tracingSettings(flags.otlpEndpoint, process.env),
      gpu: flags.gpu,
      requestTimeoutMs: flags.requestTimeout * 1000,
      drainTimeoutMs: flags.drainTimeout * 1000,
      bodyLimitBytes: flags.bodyLimit,
      bodyTimeoutMs: (flags.bodyTimeout ?? file?.bodyTimeoutSeconds ?? 30) * 1000,
      maxConnectionsPerClient: flags.maxConnectionsPerClient ?? file?.maxConnectionsPerClient ?? 64,
      tls: tlsFiles(flags, file),
      images: imageLimits(flags),
      logLevel: flags.logLevel,
      ...(file ? await fromConfigFile(flags, file) : await fromFlags(flags)),
    });
    const app = await createApp(config, logger);
    try {
      checkExposure(flags.host, app.isAuthenticationEnabled(), flags.auth, logger);
    } catch (error) {
      await app.close();
      throw error;
    }
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
    const main = app.deployments.default;
    process.stdout.write(`phiserve ready: ${url} (model ${main.model.azureName}, deployment ${main.name}${app.deployments.list().length > 1 ? `, ${app.deployments.list().length} deployments` : ""})\n`);
  } catch (error) {
    exitWithCliError(error instanceof Error && !(error instanceof CliError) && isUserError(error) ? new CliError(error.message) : error);
  }
}

type DeploymentPart = Pick<ServeConfig, "deployments" | "defaultDeployment" | "singleModel" | "memoryBudgetBytes" | "idleUnloadMs">;

/** Per-deployment settings from flags: the whole story for a single-model server, defaults for a config file. */
function settingsFromFlags(flags: ServeFlags): Omit<DeploymentSettings, "name" | "modelPath" | "catalogModelId"> {
  return {
    parallel: flags.parallel,
    maxQueue: flags.maxQueue,
    contextSize: flags.context,
    threads: flags.threads,
    batchSize: flags.batchSize,
    decodeBatch: flags.decodeBatch,
    maxStepMs: flags.maxStepMs,
    // Commander's negatable flag is true unless --no-pad-decode-rows: true means "where it helps" (the CPU).
    padDecodeRows: flags.padDecodeRows ? undefined : false,
    promptCacheBytes: flags.promptCache,
    flashAttention: flags.flashAttention === undefined ? undefined : flags.flashAttention === "on",
    calibration: flags.calibrate ? { cacheDir: join(cacheDirFrom(process.env), "engine") } : undefined,
    jsonPolicy: flags.jsonPolicy,
    systemRole: "azure",
    maxChoices: flags.maxN,
    toolEmulation: flags.toolEmulation,
    parseSpecialInContent: flags.parseSpecialInContent,
    numCrops: flags.numCrops,
    contentSafety: toContentSafety(undefined, flags),
    quota: flags.rpm || flags.tpm ? { requestsPerMinute: flags.rpm, tokensPerMinute: flags.tpm } : undefined,
  };
}

/**
 * A deployment's content safety: its config-file block over Azure's default policy, with the built-in lexicon
 * when it names no classifier; `--content-safety` / `--content-annotations` win over the file (docs/SAFETY.md "Policy").
 */
export function toContentSafety(config: ContentSafetyConfig | undefined, flags: Pick<ServeFlags, "contentSafety" | "contentAnnotations">): ContentSafetySettings {
  const d = AZURE_DEFAULT_POLICY;
  const classifiers: ClassifierSettings[] = (config?.classifiers ?? [{ kind: "lexicon" }]).map((c): ClassifierSettings => {
    switch (c.kind) {
      case "lexicon":
        return { kind: "lexicon", builtIn: c.builtIn ?? true, rules: c.rules ?? [] };
      case "onnx":
        return { kind: "onnx", folder: c.folder, labels: c.labels, cutPoints: c.cutPoints };
      case "guard":
        return { kind: "guard", deployment: c.deployment, format: c.format ?? "llama-guard", variant: c.variant ?? "8b" };
      case "azure":
        return { kind: "azure", endpoint: c.endpoint, keyEnv: c.keyEnv ?? "CONTENT_SAFETY_KEY", promptShields: c.promptShields ?? true, blocklistNames: c.blocklistNames ?? [] };
    }
  });
  return {
    policy: {
      mode: flags.contentSafety ?? config?.mode ?? d.mode,
      annotations: flags.contentAnnotations || (config?.annotations ?? d.annotations),
      prompt: { ...d.prompt, ...config?.prompt },
      completion: { ...d.completion, ...config?.completion },
      jailbreak: config?.jailbreak ?? d.jailbreak,
      profanity: config?.profanity ?? d.profanity,
      timeoutMs: config?.timeoutMs ?? d.timeoutMs,
      streamWindowChars: config?.streamWindowChars ?? d.streamWindowChars,
    },
    blocklists: (config?.blocklists ?? []).map((b) => ({ id: b.id, items: b.items.map((i) => ({ pattern: i.pattern, isRegex: i.isRegex ?? false })) })),
    classifiers,
  };
}

/** Image limits: the flags over the defaults (docs/VISION.md "Image limits"). */
function imageLimits(flags: ServeFlags): ServeConfig["images"] {
  const limits = {
    maxBytes: flags.maxImageBytes ?? DEFAULT_IMAGE_LIMITS.maxBytes,
    maxPixels: flags.maxImagePixels ?? DEFAULT_IMAGE_LIMITS.maxPixels,
    allowUrls: flags.allowImageUrls || flags.allowPrivateImageUrls,
    urlTimeoutMs: (flags.imageUrlTimeout ?? DEFAULT_IMAGE_LIMITS.urlTimeoutMs / 1000) * 1000,
    allowPrivateUrls: flags.allowPrivateImageUrls,
  };
  // A data URL is base64 (4 bytes per 3) inside the JSON body: an image cap the body limit cannot carry would never be the error users see.
  if (Math.ceil(limits.maxBytes / 3) * 4 > flags.bodyLimit) {
    throw new CliError(`--max-image-bytes ${limits.maxBytes} does not fit --body-limit ${flags.bodyLimit} as base64 (${Math.ceil(limits.maxBytes / 3) * 4} bytes); raise --body-limit too.`);
  }
  return limits;
}

/** `--price-prompt` / `--price-completion` (USD per 1,000 tokens) over the default price (docs/ADMIN-API.md "Cost"). */
function defaultPrice(flags: Pick<ServeFlags, "pricePrompt" | "priceCompletion">): ServeConfig["defaultPrice"] {
  const check = (flag: string, value: number | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isFinite(value) || value < 0) throw new CliError(`${flag} must be a non-negative number (USD per 1,000 tokens)`);
    return value;
  };
  return {
    promptPer1k: check("--price-prompt", flags.pricePrompt, DEFAULT_PRICE.promptPer1k),
    completionPer1k: check("--price-completion", flags.priceCompletion, DEFAULT_PRICE.completionPer1k),
  };
}

/**
 * Tracing (docs/ADMIN-API.md "Traces"): `--otlp-endpoint`, else the standard OpenTelemetry variables
 * (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, a full URL; `OTEL_EXPORTER_OTLP_ENDPOINT`, a base to which `/v1/traces` is
 * added; `OTEL_EXPORTER_OTLP_HEADERS`; `OTEL_SERVICE_NAME`; `OTEL_SDK_DISABLED=true` turns it off). None: no tracing.
 */
export function tracingSettings(flag: string | undefined, env: NodeJS.ProcessEnv): ServeConfig["tracing"] {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true" && !flag) return undefined;
  const base = flag || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesUrl = flag ? `${flag.replace(/\/+$/, "")}/v1/traces` : env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (base ? `${base.replace(/\/+$/, "")}/v1/traces` : undefined);
  if (!tracesUrl) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(tracesUrl);
  } catch {
    throw new CliError(`The OTLP endpoint '${tracesUrl}' is not a URL: use http(s)://HOST:PORT (e.g. http://127.0.0.1:4318)`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new CliError(`The OTLP endpoint must be http:// or https://, not ${parsed.protocol}`);
  const headers: Record<string, string> = {};
  for (const pair of (env.OTEL_EXPORTER_OTLP_TRACES_HEADERS || env.OTEL_EXPORTER_OTLP_HEADERS || "").split(",")) {
    const at = pair.indexOf("=");
    if (at > 0) headers[decodeURIComponent(pair.slice(0, at).trim())] = decodeURIComponent(pair.slice(at + 1).trim());
  }
  return { tracesUrl, serviceName: env.OTEL_SERVICE_NAME || "phiserve", headers };
}

function requireAudience(flags: ServeFlags): string {
  if (!flags.jwtAudience) throw new CliError("--jwt-issuer needs --jwt-audience (the `aud` tokens must carry).");
  return flags.jwtAudience;
}

async function fromFlags(flags: ServeFlags): Promise<DeploymentPart> {
  if (flags.upstream.length > 0) {
    const replicas = flags.upstream.map((url) => ({ url, ...(flags.upstreamKeyEnv ? { apiKeyEnv: flags.upstreamKeyEnv } : {}) }));
    const upstream = toUpstream({ replicas, ...(flags.upstreamModel ? { model: flags.upstreamModel } : {}) }, process.env);
    const deployment: DeploymentSettings = { ...settingsFromFlags(flags), name: flags.deployment, upstream, ...remoteModel(flags.modelName ?? flags.model ?? DEFAULT_MODEL_ID) };
    return { deployments: [deployment], defaultDeployment: undefined, singleModel: true, memoryBudgetBytes: undefined, idleUnloadMs: 0 };
  }
  const resolved = await resolveModel(flags.model, process.env);
  const deployment: DeploymentSettings = {
    ...settingsFromFlags(flags),
    name: flags.deployment,
    modelPath: resolved.modelPath,
    catalogModelId: flags.modelName ?? resolved.catalogModelId,
  };
  return { deployments: [deployment], defaultDeployment: undefined, singleModel: true, memoryBudgetBytes: undefined, idleUnloadMs: 0 };
}

async function readConfigFile(path: string): Promise<ConfigFile> {
  try {
    return await loadConfigFile(path);
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
}

/** `--tls-cert`/`--tls-key`, else the config file's `tls:`; both files or neither. */
function tlsFiles(flags: ServeFlags, file: ConfigFile | undefined): ServeConfig["tls"] {
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw new CliError("--tls-cert and --tls-key go together (the certificate and its private key, PEM files).");
  if (flags.tlsCert && flags.tlsKey) return { certPath: flags.tlsCert, keyPath: flags.tlsKey };
  return file?.tls ? { certPath: file.tls.cert, keyPath: file.tls.key } : undefined;
}

async function fromConfigFile(flags: ServeFlags, file: ConfigFile): Promise<DeploymentPart> {
  if (flags.model || flags.modelName || flags.deployment) throw new CliError("--config declares the deployments; do not combine it with --model, --model-name or --deployment.");
  const base = settingsFromFlags(flags);
  const deployments: DeploymentSettings[] = [];
  for (const d of file.deployments) {
    // A remote deployment names a catalog model and downloads nothing (docs/REMOTE.md).
    const model = d.upstream ? { ...remoteModel(d.modelName ?? d.model), upstream: toUpstream(d.upstream, process.env) } : undefined;
    const resolved = model ?? (await resolveModel(d.model, process.env));
    deployments.push({
      name: d.name,
      ...model,
      modelPath: resolved.modelPath,
      catalogModelId: d.modelName ?? resolved.catalogModelId,
      parallel: d.parallel ?? base.parallel,
      maxQueue: d.maxQueue ?? base.maxQueue,
      contextSize: d.context ?? base.contextSize,
      threads: d.threads ?? base.threads,
      batchSize: d.batchSize ?? base.batchSize,
      decodeBatch: d.decodeBatch ?? base.decodeBatch,
      maxStepMs: d.maxStepMs ?? base.maxStepMs,
      padDecodeRows: d.padDecodeRows ?? base.padDecodeRows,
      promptCacheBytes: d.promptCache !== undefined ? parseByteSize(d.promptCache) : base.promptCacheBytes,
      flashAttention: d.flashAttention ?? base.flashAttention,
      calibration: base.calibration,
      jsonPolicy: d.json ?? base.jsonPolicy,
      systemRole: d.systemRole ?? "azure",
      maxChoices: d.maxN ?? base.maxChoices,
      toolEmulation: d.toolEmulation ?? base.toolEmulation,
      parseSpecialInContent: d.parseSpecialInContent ?? base.parseSpecialInContent,
      numCrops: d.numCrops ?? base.numCrops,
      contentSafety: toContentSafety(d.contentSafety, flags),
      price: d.price,
      quota: d.quota,
    });
  }
  return {
    deployments,
    defaultDeployment: file.defaultDeployment,
    singleModel: false,
    memoryBudgetBytes: file.memoryBudget ? parseByteSize(file.memoryBudget) : undefined,
    idleUnloadMs: (file.idleUnloadSeconds ?? 900) * 1000,
  };
}

/** A remote deployment's model: a catalog name, which gives its tokenizer, template and context. */
function remoteModel(name: string): { modelPath: string; catalogModelId: string } {
  const entry = findCatalogModel(name);
  if (!entry) throw new CliError(`A deployment served by upstreams names a catalog model ('phiserve models'), not '${name}'.`);
  return { modelPath: entry.id, catalogModelId: entry.id };
}

/** The config's upstream block with its defaults, credentials read from the environment (never logged). */
export function toUpstream(config: UpstreamConfig, env: NodeJS.ProcessEnv): UpstreamSettings {
  const replicas = config.replicas.map((r) => {
    const replica = typeof r === "string" ? { url: r } : r;
    if (!/^https?:\/\//.test(replica.url)) throw new CliError(`Upstream '${replica.url}' is not an http(s) URL (an OpenAI base URL such as http://gpu1:8000/v1).`);
    if (!("apiKeyEnv" in replica) || !replica.apiKeyEnv) return { url: replica.url };
    const apiKey = env[replica.apiKeyEnv];
    if (!apiKey) throw new CliError(`The environment variable ${replica.apiKeyEnv}, named for the upstream ${replica.url}, is not set.`);
    return { url: replica.url, apiKey, header: ("header" in replica ? replica.header : undefined) ?? "bearer" };
  });
  return {
    replicas,
    model: config.model,
    healthCheckIntervalMs: (config.healthCheckSeconds ?? 5) * 1000,
    firstByteTimeoutMs: (config.timeoutSeconds ?? 60) * 1000,
    maxAttempts: config.maxAttempts,
    consecutiveFailures: config.ejection?.consecutiveFailures ?? 3,
    baseEjectionMs: (config.ejection?.baseSeconds ?? 10) * 1000,
    maxEjectionMs: (config.ejection?.maxSeconds ?? 300) * 1000,
  };
}

function isUserError(error: Error): boolean {
  return /not found|Unknown catalog|no chat template|EADDRINUSE|TLS certificate|usable certificate/.test(error.message);
}

function checkExposure(host: string, hasIdentity: boolean, authRequired: boolean, logger: Logger): void {
  if (hasIdentity) return;
  if (!isLoopbackHost(host)) {
    if (authRequired) {
      throw new CliError(`Refusing to serve ${host} without an API key: pass --api-key KEY (or PHISERVE_API_KEYS), create one with 'phiserve keys create', configure --jwt-issuer, or pass --no-auth to serve it open.`);
    }
    logger.warn({ event: "auth.disabled", host }, "serving a non-loopback address with no authentication (--no-auth)");
    return;
  }
  logger.warn({ event: "auth.disabled", host }, "no API key or token issuer configured: the server is open to every local process");
}
