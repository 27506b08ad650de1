/**
 * The deployments one process serves: request routing (`azureml-model-deployment` header, then
 * the body's `model`, then the default), loading on first use within a memory budget (idle
 * deployments are unloaded to make room, least recently used first) and unloading when idle.
 */
import type { Logger } from "pino";
import { AppError } from "../errors/app-error.ts";
import type { EngineStats } from "../engine/engine.ts";
import type { SchedulerStats } from "../scheduler/admission-scheduler.ts";
import type { Deployment } from "./deployment.ts";
import type { ChatApi } from "../serving/stream-usage.ts";

export interface RegistryOptions {
  defaultName: string | undefined;
  /** Body `model` is ignored (single-model endpoint) rather than routed. */
  singleModel: boolean;
  memoryBudgetBytes: number;
  idleUnloadMs: number;
}

export class DeploymentRegistry {
  readonly default: Deployment;
  private reaper: NodeJS.Timeout | undefined;

  constructor(
    private readonly deployments: readonly Deployment[],
    private readonly options: RegistryOptions,
    private readonly logger: Logger,
  ) {
    const byDefault = options.defaultName ? this.find(options.defaultName) : deployments[0];
    if (!byDefault) throw new Error(`default deployment '${options.defaultName}' is not configured`);
    this.default = byDefault;
  }

  list(): readonly Deployment[] {
    return this.deployments;
  }

  /** A deployment by name (case-insensitive), or by its catalog id / Azure model name. */
  find(name: string): Deployment | undefined {
    const wanted = name.trim().toLowerCase();
    return (
      this.deployments.find((d) => d.name.toLowerCase() === wanted) ??
      this.deployments.find((d) => d.model.azureName.toLowerCase() === wanted || d.plan.catalog?.id === wanted)
    );
  }

  /**
   * Routes a request; unknown names → 404 MODEL_NOT_FOUND. On a single-model server the Azure
   * routes ignore the body's `model` (as a serverless Azure endpoint does), while the OpenAI route
   * checks it against the served model's names and answers an unknown one as OpenAI does.
   */
  resolve(header: string | undefined, bodyModel: string | undefined, api: ChatApi = "azure"): Deployment {
    if (header !== undefined && header !== "") return this.findOrThrow(header, "azureml-model-deployment");
    if (bodyModel === undefined || bodyModel === "") return this.default;
    if (api === "openai") {
      const found = this.find(bodyModel);
      if (found) return found;
      throw new AppError("MODEL_NOT_FOUND", `The model \`${bodyModel}\` does not exist or you do not have access to it.`, { param: "model" });
    }
    return this.options.singleModel ? this.default : this.findOrThrow(bodyModel, "model");
  }

  private findOrThrow(name: string, param: string): Deployment {
    const found = this.find(name);
    if (!found) {
      throw new AppError("MODEL_NOT_FOUND", `The deployment '${name}' does not exist. Available: ${this.deployments.map((d) => d.name).join(", ")}.`, { param });
    }
    return found;
  }

  /** Loads a deployment, first unloading idle ones (least recently used) when the budget requires it. */
  async ensureLoaded(deployment: Deployment): Promise<void> {
    deployment.lastUsedAt = Date.now();
    if (deployment.isLoaded()) return;
    const loadedBytes = () => this.deployments.filter((d) => d.isLoaded()).reduce((sum, d) => sum + d.memoryBytes, 0);
    const idle = this.deployments.filter((d) => d !== deployment && d.isLoaded() && !d.isBusy()).sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    while (loadedBytes() + deployment.memoryBytes > this.options.memoryBudgetBytes && idle.length > 0) {
      const victim = idle.shift()!;
      this.logger.info({ event: "deployment.unloaded", deployment: victim.name, reason: "memory budget" }, "unloading to make room");
      await victim.unload();
    }
    if (loadedBytes() + deployment.memoryBytes > this.options.memoryBudgetBytes) {
      throw new AppError("ENGINE_UNAVAILABLE", `Not enough memory to load '${deployment.name}' while other deployments are busy; retry shortly.`, { retryAfterSeconds: 30 });
    }
    this.logger.info({ event: "deployment.loading", deployment: deployment.name, memoryBytes: deployment.memoryBytes }, "loading");
    await deployment.load();
  }

  /** Periodically unloads deployments idle longer than `idleUnloadMs` (the default one stays). */
  startIdleReaper(): void {
    if (this.options.idleUnloadMs <= 0) return;
    this.reaper = setInterval(() => void this.reapIdle(), Math.min(60_000, this.options.idleUnloadMs)).unref();
  }

  private async reapIdle(): Promise<void> {
    const cutoff = Date.now() - this.options.idleUnloadMs;
    for (const d of this.deployments) {
      if (d === this.default || !d.isLoaded() || d.isBusy() || d.lastUsedAt > cutoff) continue;
      this.logger.info({ event: "deployment.unloaded", deployment: d.name, reason: "idle" }, "unloading idle deployment");
      await d.unload();
    }
  }

  engineStats(): EngineStats {
    return sum(this.deployments.map((d) => d.engine.stats()));
  }

  schedulerStats(): SchedulerStats {
    return sum(this.deployments.map((d) => d.scheduler.stats()));
  }

  drain(): void {
    for (const d of this.deployments) d.scheduler.drain();
  }

  async whenIdle(): Promise<void> {
    await Promise.all(this.deployments.map((d) => d.scheduler.whenIdle()));
  }

  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    for (const d of this.deployments) await d.unload();
  }
}

function sum<T extends object>(items: readonly T[]): T {
  const total: Record<string, number> = {};
  for (const item of items) for (const [k, v] of Object.entries(item)) total[k] = (total[k] ?? 0) + (v as number);
  return total as T;
}
