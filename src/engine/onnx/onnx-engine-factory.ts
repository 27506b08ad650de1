/**
 * Builds ONNX engines for Phi-3/3.5-vision model folders (onnx-model-folder.ts): reads the
 * folder's configs (no graph loaded) for what the deployment needs to know, and sizes the engine.
 */
import { availableParallelism } from "node:os";
import type { EngineFactory, EnginePlan, ModelFileFacts } from "../engine-factory.ts";
import { planContextSize } from "../engine-factory.ts";
import type { Engine } from "../engine.ts";
import { OnnxEngine } from "./onnx-engine.ts";
import { readOnnxModelFolder, type OnnxModelFolder } from "./onnx-model-folder.ts";

/** Sequences generating at once when the plan does not say. */
export const DEFAULT_ONNX_PARALLEL = 2;

export function createOnnxEngineFactory(): EngineFactory {
  // A deployment asks describe() then create() for the same folder: it is read once.
  const folders = new Map<string, OnnxModelFolder>();
  const folderOf = (path: string) => {
    let folder = folders.get(path);
    if (!folder) folders.set(path, (folder = readOnnxModelFolder(path)));
    return folder;
  };
  return {
    async describe(modelPath: string): Promise<ModelFileFacts> {
      const folder = folderOf(modelPath);
      return { name: folder.name, chatTemplate: folder.chatTemplate, contextLength: folder.contextLength, supportsVision: true, numCrops: folder.numCrops };
    },
    async create(plan: EnginePlan): Promise<Engine> {
      const model = folderOf(plan.modelPath);
      const contextSize = planContextSize({ contextSize: plan.contextSize, modelContextLength: plan.modelContextLength ?? model.contextLength });
      const parallel = plan.parallel ?? DEFAULT_ONNX_PARALLEL;
      return new OnnxEngine(
        {
          model,
          contextSize,
          parallel,
          threads: plan.threads ?? availableParallelism(),
          batchSize: plan.batchSize,
          extraStopTokens: plan.extraStopTokens,
          memoryBytes: model.weightBytes + kvBytesPerToken(model) * contextSize * parallel,
        },
        plan.logger,
      );
    },
  };
}

/** KV-cache bytes per position (float32 keys and values of every layer); 0 when the config does not say. */
export function kvBytesPerToken(model: OnnxModelFolder): number {
  const { numLayers, numKeyValueHeads, headSize } = model;
  if (numLayers === undefined || numKeyValueHeads === undefined || headSize === undefined) return 0;
  return numLayers * 2 * numKeyValueHeads * headSize * 4;
}
