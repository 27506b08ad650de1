/**
 * How engines are made: the composition root injects one factory per engine kind (as Ollama's
 * scheduler takes `newServerFn`), so nothing above the engine boundary constructs an engine or
 * reads a model file's format. A deployment asks the factory what the model file says about
 * itself, decides its template and stop tokens from that, then has the factory build the engine;
 * the engine's sizing (sequences, memory) is decided behind this interface.
 */
import type { Logger } from "pino";
import type { GpuChoice } from "../config/serve-config.ts";
import type { Engine } from "./engine.ts";

/** What a model file says about itself, read without loading weights. Every field may be absent. */
export interface ModelFileFacts {
  /** `general.name` (GGUF) or the folder's model name. */
  name?: string | undefined;
  /** The chat template the file carries (e.g. GGUF `tokenizer.chat_template`). */
  chatTemplate?: string | undefined;
  /** The model's trained context window, in tokens. */
  contextLength?: number | undefined;
  /** The engine reads images with this model (a Phi-3/3.5-vision export). */
  supportsVision?: boolean | undefined;
  /** The export's own `num_crops` (its processor config), when it has one. */
  numCrops?: number | undefined;
}

/** Everything an engine is built from: the model, its serving limits, and what the deployment decided. */
export interface EnginePlan {
  modelPath: string;
  /** The model's own context window (file or catalog), when known: caps the default context size. */
  modelContextLength: number | undefined;
  /** Context window per sequence; undefined = min(model context, 4096). */
  contextSize: number | undefined;
  /** Sequences generating at once; undefined = the engine sizes it from the model and the machine. */
  parallel: number | undefined;
  /** CPU threads; undefined = chosen by the engine. */
  threads: number | undefined;
  /** Tokens per evaluation batch. */
  batchSize: number;
  /** Most decode tokens per evaluation batch; 0 or undefined = no cap. */
  decodeBatch: number | undefined;
  gpu: GpuChoice;
  /** Token texts that end a generation besides the model's own end-of-generation tokens. */
  extraStopTokens: readonly string[];
  /** Longest a decoding step may take with prompt tokens in it (ms); undefined = prompts fill the batch (docs/ENGINE-NOTES.md "Prompts and decoding streams share steps"). */
  maxStepMs?: number | undefined;
  /** Fill CPU decode batches of 2, 3 or 7 rows to a block of 4 (docs/ENGINE-NOTES.md "Decode rows in blocks of four"); undefined = on CPUs, false = never. */
  padDecodeRows?: boolean | undefined;
  /** Bytes of lost sequence states kept for prompts that start with them (docs/ENGINE-NOTES.md "The prompt cache"); 0 or undefined = none. */
  promptCacheBytes?: number | undefined;
  /** llama.cpp's flash attention; undefined = llama.cpp's choice (docs/ENGINE-NOTES.md "Flash attention on the CPU"). */
  flashAttention?: boolean | undefined;
  /** Measure thread counts per batch shape at load, cached in `cacheDir`; undefined = the engine's fixed default (docs/ENGINE-NOTES.md "Threads chosen by measurement"). */
  calibration?: { cacheDir: string | undefined } | undefined;
  logger: Logger;
}

export interface EngineFactory {
  /** Reads the model file's own description (no weights loaded). */
  describe(modelPath: string): Promise<ModelFileFacts>;
  /** Builds an engine for `plan`, not loaded yet (`engine.load()` does that). */
  create(plan: EnginePlan): Promise<Engine>;
}

/** Default cap of the context window per sequence, in tokens (a real model's 128k would not fit `parallel` times). */
export const DEFAULT_CONTEXT_CAP = 4096;

/** The context size a plan asks for: the explicit one, else min(model context, {@link DEFAULT_CONTEXT_CAP}). */
export function planContextSize(plan: Pick<EnginePlan, "contextSize" | "modelContextLength">): number {
  return plan.contextSize ?? Math.min(plan.modelContextLength ?? DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP);
}

/**
 * One factory over several engine kinds, chosen by what the model path is: a folder (an ONNX export,
 * e.g. Phi-3/3.5-vision) or a file (GGUF).
 */
export function engineFactoryByFormat(kinds: { file: EngineFactory; folder: EngineFactory }, isFolder: (path: string) => Promise<boolean>): EngineFactory {
  const pick = async (path: string) => ((await isFolder(path)) ? kinds.folder : kinds.file);
  return {
    describe: async (modelPath) => (await pick(modelPath)).describe(modelPath),
    create: async (plan) => (await pick(plan.modelPath)).create(plan),
  };
}
