/**
 * Builds llama.cpp engines for GGUF files: reads the header (no weights) for what the deployment
 * needs to know, and sizes the engine (context, sequences, memory) from it and the machine.
 */
import { statSync } from "node:fs";
import { totalmem } from "node:os";
import type { EngineFactory, EnginePlan, ModelFileFacts } from "../engine-factory.ts";
import { planContextSize } from "../engine-factory.ts";
import type { Engine } from "../engine.ts";
import { defaultParallel, readGgufSummary } from "./gguf-metadata.ts";
import { LlamaCppEngine } from "./llama-cpp-engine.ts";

export function createLlamaCppEngineFactory(): EngineFactory {
  // A deployment asks describe() then create() for the same file: its header is read once.
  const summaries = new Map<string, ReturnType<typeof readGgufSummary>>();
  const summaryOf = (modelPath: string) => {
    let summary = summaries.get(modelPath);
    if (!summary) summaries.set(modelPath, (summary = readGgufSummary(modelPath)));
    return summary;
  };
  return {
    async describe(modelPath: string): Promise<ModelFileFacts> {
      const summary = await summaryOf(modelPath);
      return { name: summary.name, chatTemplate: summary.chatTemplate, contextLength: summary.contextLength };
    },
    async create(plan: EnginePlan): Promise<Engine> {
      const summary = await summaryOf(plan.modelPath);
      const contextSize = planContextSize(plan);
      const parallel = plan.parallel ?? defaultParallel(summary.kvBytesPerToken, contextSize, totalmem());
      const memoryBytes = statSync(plan.modelPath).size + (summary.kvBytesPerToken ?? 0) * contextSize * parallel;
      return new LlamaCppEngine(
        {
          modelPath: plan.modelPath,
          contextSize,
          parallel,
          threads: plan.threads,
          batchSize: plan.batchSize,
          decodeBatch: plan.decodeBatch,
          gpu: plan.gpu,
          extraStopTokens: plan.extraStopTokens,
          memoryBytes,
          maxStepMs: plan.maxStepMs,
          padDecodeRows: plan.padDecodeRows,
          promptCacheBytes: plan.promptCacheBytes,
          flashAttention: plan.flashAttention,
          calibration: plan.calibration,
        },
        plan.logger,
      );
    },
  };
}
