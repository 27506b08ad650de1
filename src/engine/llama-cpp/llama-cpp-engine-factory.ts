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
  return {
    async describe(modelPath: string): Promise<ModelFileFacts> {
      const summary = await readGgufSummary(modelPath);
      return { name: summary.name, chatTemplate: summary.chatTemplate, contextLength: summary.contextLength };
    },
    async create(plan: EnginePlan): Promise<Engine> {
      const summary = await readGgufSummary(plan.modelPath);
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
        },
        plan.logger,
      );
    },
  };
}
