/**
 * One deployment: a model file, the engine that runs it, its chat service and its admission
 * scheduler. The engine is loaded on first use (or at start for the default deployment) and may
 * be unloaded when idle; everything else lives as long as the process.
 */
import { statSync } from "node:fs";
import { totalmem } from "node:os";
import type { Logger } from "pino";
import { DEFAULT_CONTEXT_CAP, type DeploymentSettings } from "../config/serve-config.ts";
import type { Engine } from "../engine/engine.ts";
import { LlamaCppEngine, type GpuChoice } from "../engine/llama-cpp/llama-cpp-engine.ts";
import { defaultParallel, readGgufSummary } from "../engine/llama-cpp/gguf-metadata.ts";
import { ChatCompletionsService, type ServedModel } from "../serving/chat-completions.service.ts";
import { AdmissionScheduler } from "../scheduler/admission-scheduler.ts";
import { planServedModel, type ServedModelPlan } from "../served-model.ts";
import { AppError } from "../errors/app-error.ts";
import type { Principal } from "../auth/authenticator.ts";
import type { Limit } from "../quota/quota.ts";

/** Azure serverless Phi quota (azure-model-inference-api.md §7), used when neither config nor catalog says. */
const AZURE_QUOTA = { requestsPerMinute: 1000, tokensPerMinute: 200_000 };

export class Deployment {
  readonly name: string;
  readonly model: ServedModel;
  readonly chat: ChatCompletionsService;
  readonly scheduler: AdmissionScheduler;
  readonly quota: { requestsPerMinute: number; tokensPerMinute: number };
  /** Estimated resident memory when loaded: weights + KV caches. */
  readonly memoryBytes: number;
  lastUsedAt = 0;
  private loading: Promise<void> | undefined;

  private constructor(
    readonly plan: ServedModelPlan,
    readonly engine: Engine,
    parallel: number,
    settings: DeploymentSettings,
    memoryBytes: number,
  ) {
    this.model = plan.model;
    this.name = plan.model.deploymentName;
    this.chat = new ChatCompletionsService({ engine, model: plan.model });
    this.scheduler = new AdmissionScheduler({ slots: parallel, maxQueue: settings.maxQueue ?? Math.max(16, 8 * parallel) });
    this.quota = {
      requestsPerMinute: settings.quota?.requestsPerMinute ?? plan.catalog?.quota.requestsPerMinute ?? AZURE_QUOTA.requestsPerMinute,
      tokensPerMinute: settings.quota?.tokensPerMinute ?? plan.catalog?.quota.tokensPerMinute ?? AZURE_QUOTA.tokensPerMinute,
    };
    this.memoryBytes = memoryBytes;
  }

  static async create(settings: DeploymentSettings, deps: { gpu: GpuChoice; logger: Logger; engine?: Engine }): Promise<Deployment> {
    const summary = deps.engine ? {} : await readGgufSummary(settings.modelPath);
    const plan = planServedModel(settings.modelPath, summary, settings.catalogModelId, settings.name, {
      jsonPolicy: settings.jsonPolicy,
      maxChoices: settings.maxChoices,
      toolEmulation: settings.toolEmulation,
      systemRole: settings.systemRole,
    });
    const contextSize = settings.contextSize ?? Math.min(plan.modelContextLength ?? DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP);
    const parallel = settings.parallel ?? defaultParallel(summary.kvBytesPerToken, contextSize, totalmem());
    const engine =
      deps.engine ??
      new LlamaCppEngine(
        { modelPath: settings.modelPath, contextSize, parallel, threads: settings.threads, batchSize: settings.batchSize, decodeBatch: settings.decodeBatch, gpu: deps.gpu, extraStopTokens: plan.extraStopTokens },
        deps.logger.child({ component: "engine", deployment: settings.name ?? plan.model.deploymentName }),
      );
    const weights = deps.engine ? 0 : statSync(settings.modelPath).size;
    const kv = (summary.kvBytesPerToken ?? 0) * contextSize * parallel;
    return new Deployment(plan, engine, parallel, settings, weights + kv);
  }

  /** The deployment's own rate limit (Azure serverless: per deployment). */
  get limit(): Limit {
    return { scope: `deployment:${this.name}`, requestsPerMinute: this.quota.requestsPerMinute, tokensPerMinute: this.quota.tokensPerMinute };
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
