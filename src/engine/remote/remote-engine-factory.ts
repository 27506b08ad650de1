/**
 * Builds remote engines for one deployment's upstreams (docs/REMOTE.md). The deployment's "model
 * path" is a catalog name: the catalog says which tokenizer counts its prompts and how long its
 * context is; there is no file to read.
 */
import type { EngineFactory, ModelFileFacts } from "../engine-factory.ts";
import { findCatalogModel } from "../../catalog/phi-models.ts";
import { RemoteEngine } from "./remote-engine.ts";
import { createPromptCounter } from "./remote-tokenizer.ts";
import type { UpstreamSettings } from "../../config/serve-config.ts";

/** Requests per replica a remote deployment admits at once when `parallel` is not set. */
export const DEFAULT_SEQUENCES_PER_REPLICA = 16;

export function createRemoteEngineFactory(settings: UpstreamSettings): EngineFactory {
  const catalogOf = (name: string) => {
    const entry = findCatalogModel(name);
    if (!entry) throw new Error(`A remote deployment's model must be a catalog name ('phiserve models'), not '${name}'.`);
    return entry;
  };
  return {
    async describe(modelPath): Promise<ModelFileFacts> {
      const entry = catalogOf(modelPath);
      return { name: entry.azureName, contextLength: entry.contextLength, supportsVision: false };
    },
    async create(plan) {
      const entry = catalogOf(plan.modelPath);
      return new RemoteEngine({
        ...settings,
        // Health checks answer fast or not at all; never longer than the interval between them.
        healthCheckTimeoutMs: Math.min(5000, settings.healthCheckIntervalMs || 5000),
        fallbackModel: entry.id,
        sequences: plan.parallel ?? DEFAULT_SEQUENCES_PER_REPLICA * settings.replicas.length,
        contextLength: plan.contextSize ?? plan.modelContextLength ?? entry.contextLength,
        maxAttempts: settings.maxAttempts ?? Math.min(3, settings.replicas.length),
        counter: createPromptCounter(entry.tokenizer),
        logger: plan.logger,
      });
    },
  };
}
