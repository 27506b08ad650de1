/**
 * One deployment: a model, the engine that runs it (made by the injected engine factory), its
 * generation step and its admission scheduler. The engine is loaded on first use (or at start for
 * the default deployment) and may be unloaded when idle; everything else lives as long as the process.
 */
import type { Logger } from "pino";
import { DEFAULT_IMAGE_LIMITS, type DeploymentSettings, type GpuChoice, type ImageLimits } from "../config/serve-config.ts";
import type { Engine } from "../engine/engine.ts";
import type { EngineFactory } from "../engine/engine-factory.ts";
import { ChatGeneration } from "../serving/chat-generation.ts";
import type { ServedModel } from "../serving/served-model.ts";
import { AdmissionScheduler } from "../scheduler/admission-scheduler.ts";
import { planServedModel, type ServedModelPlan } from "./plan-served-model.ts";
import { templateRewritesMessageText } from "../catalog/chat-templates.ts";
import { AppError } from "../errors/app-error.ts";
import type { Principal } from "../auth/principal.ts";
import type { Limit } from "../quota/quota.ts";
import { AZURE_SERVERLESS_QUOTA } from "../catalog/phi-models.ts";
import { ContentFilter } from "../safety/content-filter.ts";
import { AZURE_DEFAULT_POLICY } from "../safety/content-policy.ts";

export interface DeploymentDeps {
  engines: EngineFactory;
  gpu: GpuChoice;
  /** Limits on images in requests (vision deployments); default DEFAULT_IMAGE_LIMITS. */
  images?: ImageLimits | undefined;
  /** The deployment's content filter (built by the composition root from its settings); default: none (off). */
  contentFilter?: ContentFilter | undefined;
  logger: Logger;
}

export class Deployment {
  readonly name: string;
  readonly model: ServedModel;
  readonly chat: ChatGeneration;
  readonly scheduler: AdmissionScheduler;
  readonly quota: { requestsPerMinute: number; tokensPerMinute: number };
  /** The deployment's own rate limit (Azure serverless: per deployment). */
  readonly limit: Limit;
  /** Estimated resident memory when loaded: weights + KV caches. */
  readonly memoryBytes: number;
  readonly contentFilter: ContentFilter;
  lastUsedAt = 0;
  private loading: Promise<void> | undefined;

  private constructor(
    readonly plan: ServedModelPlan,
    readonly engine: Engine,
    settings: DeploymentSettings,
    images: ImageLimits,
    contentFilter: ContentFilter,
  ) {
    this.contentFilter = contentFilter;
    const capacity = engine.capacity();
    this.model = plan.model;
    this.name = plan.model.deploymentName;
    this.chat = new ChatGeneration({
      engine,
      model: plan.model,
      parseSpecialInContent: settings.parseSpecialInContent,
      images: plan.numCrops === undefined ? undefined : {
        numCrops: plan.numCrops,
        maxBytes: images.maxBytes,
        maxPixels: images.maxPixels,
        urls: images.allowUrls ? { timeoutMs: images.urlTimeoutMs, allowPrivateAddresses: images.allowPrivateUrls } : undefined,
      },
    });
    this.scheduler = new AdmissionScheduler({ slots: capacity.sequences, maxQueue: settings.maxQueue ?? Math.max(16, 8 * capacity.sequences) });
    const catalogQuota = plan.catalog?.quota ?? AZURE_SERVERLESS_QUOTA;
    this.quota = {
      requestsPerMinute: settings.quota?.requestsPerMinute ?? catalogQuota.requestsPerMinute,
      tokensPerMinute: settings.quota?.tokensPerMinute ?? catalogQuota.tokensPerMinute,
    };
    this.limit = { scope: `deployment:${this.name}`, ...this.quota };
    this.memoryBytes = capacity.memoryBytes;
  }

  static async create(settings: DeploymentSettings, deps: DeploymentDeps): Promise<Deployment> {
    const facts = await deps.engines.describe(settings.modelPath);
    const plan = planServedModel(settings.modelPath, facts, settings.catalogModelId, settings.name, {
      jsonPolicy: settings.jsonPolicy,
      maxChoices: settings.maxChoices,
      toolEmulation: settings.toolEmulation,
      systemRole: settings.systemRole,
    }, settings.numCrops);
    // An upstream takes chat turns, so Phi-4-mini's native tool format (a constrained switch mid-generation) is not
    // forwarded: remote deployments offer tools by emulation only (docs/REMOTE.md "What is sent upstream").
    if (settings.upstream && plan.model.capabilities.toolMode === "native") {
      plan.model.capabilities.toolMode = settings.toolEmulation ? "emulated" : "none";
    }
    if (!settings.parseSpecialInContent && templateRewritesMessageText(plan.model.chatTemplate)) {
      throw new Error(
        `${settings.modelPath}: its chat template rewrites message text, so special tokens in messages cannot be kept ` +
          "from acting as template markers. Pass --model-name <catalog name> to use the catalog's template, or " +
          "--parse-special-in-content to serve it with special tokens parsed in message text (docs/CONFIG.md).",
      );
    }
    const engine = await deps.engines.create({
      modelPath: settings.modelPath,
      modelContextLength: plan.modelContextLength,
      contextSize: settings.contextSize,
      parallel: settings.parallel,
      threads: settings.threads,
      batchSize: settings.batchSize,
      decodeBatch: settings.decodeBatch,
      maxStepMs: settings.maxStepMs,
      padDecodeRows: settings.padDecodeRows,
      promptCacheBytes: settings.promptCacheBytes,
      flashAttention: settings.flashAttention,
      calibration: settings.calibration,
      gpu: deps.gpu,
      extraStopTokens: plan.extraStopTokens,
      logger: deps.logger.child({ component: "engine", deployment: plan.model.deploymentName }),
    });
    return new Deployment(plan, engine, settings, deps.images ?? DEFAULT_IMAGE_LIMITS, deps.contentFilter ?? NO_CONTENT_FILTER);
  }

  /**
   * The content filter for a caller: the deployment's, or (a trusted tenant's stored key) the same
   * classifiers annotating only, or none; an override only relaxes (docs/SAFETY.md "Per-key override").
   */
  contentFilterFor(principal: Principal): ContentFilter {
    const override = principal.contentSafety;
    if (!override || this.contentFilter.policy.mode === "off") return this.contentFilter;
    if (override === "off") return this.contentFilter.withMode("off");
    return this.contentFilter.withMode("annotate");
  }

  /** True when `principal` may use this deployment (keys and tokens can be restricted to some). */
  allows(principal: Principal): boolean {
    return principal.deployments === null || principal.deployments.includes(this.name);
  }

  /** Throws 403 unless `principal` may use this deployment. */
  authorize(principal: Principal): void {
    if (!this.allows(principal)) {
      throw new AppError("FORBIDDEN", `This key or token may not use the deployment '${this.name}'.`, { param: "model" });
    }
  }

  isLoaded(): boolean {
    return this.engine.isReady();
  }

  /** True while requests run or wait: never unloaded then. */
  isBusy(): boolean {
    const stats = this.scheduler.stats();
    return stats.busySlots > 0 || stats.queued > 0 || this.loading !== undefined;
  }

  /** Loads the engine once; concurrent callers share the load. */
  async load(): Promise<void> {
    if (this.engine.isReady()) return;
    this.loading ??= this.engine.load().finally(() => {
      this.loading = undefined;
    });
    await this.loading;
  }

  async unload(): Promise<void> {
    await this.engine.close();
  }
}

/** A deployment built without a content filter (tests of other layers): nothing is checked. */
const NO_CONTENT_FILTER = new ContentFilter({ ...AZURE_DEFAULT_POLICY, mode: "off" }, []);
