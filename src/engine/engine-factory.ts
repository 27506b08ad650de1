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
