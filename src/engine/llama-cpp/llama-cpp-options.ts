/**
 * How a llama.cpp engine is configured (`LlamaCppEngineOptions`) and the defaults it picks itself.
 * Re-exported by llama-cpp-engine.ts, where importers find them.
 */
import { availableParallelism } from "node:os";

export type GpuChoice = "auto" | "cpu" | "cuda" | "vulkan" | "metal";

export interface LlamaCppEngineOptions {
  modelPath: string;
  /** Context window per sequence, in tokens. */
  contextSize: number;
  /** Sequences generating at once. */
  parallel: number;
  /** CPU threads for evaluation; default chosen by model size (see `defaultThreads`). */
  threads?: number | undefined;
  /**
   * Tokens per evaluation batch (all sequences together). A long prompt is evaluated in chunks of
   * at most this size, and every batch also carries the next token of each decoding sequence, so a
   * long prompt does not stall the streams.
   */
  batchSize: number;
  /**
   * Most decode tokens (one per generating sequence) in one evaluation batch; 0 = every decoding
   * sequence together. Decoding sequences are stepped in groups (see decode-gate.ts); a group larger
   * than this is evaluated as several batches back to back.
   */
  decodeBatch?: number | undefined;
  gpu: GpuChoice;
  /** Token texts that end a generation besides the model's own end-of-generation tokens (e.g. "<|assistant|>"). */
  extraStopTokens: readonly string[];
  /** Estimated resident memory once loaded (weights + KV caches), reported by `capacity()`; default 0. */
  memoryBytes?: number | undefined;
  /**
   * Longest a native batch that carries decode tokens should take (ms): prompt tokens join such a batch only
   * as far as the budget allows (step-budget.ts). Undefined: prompts fill the batch.
   */
  maxStepMs?: number | undefined;
  /**
   * Fill native batches of 2, 3 or 7 decode rows up to a block of 4 with rows of idle sequences, removed after
   * the batch (decode-row-padding.ts). Undefined: when the model runs on the CPU; false: never.
   */
  padDecodeRows?: boolean | undefined;
  /**
   * Measure the best thread count per batch shape at load (thread-plan.ts), caching the plan in `cacheDir`
   * (none: measured at every load). Ignored when `threads` is set. Undefined: no calibration.
   */
  calibration?: { cacheDir: string | undefined } | undefined;
  /**
   * The prompt cache (prompt-cache.ts): bytes of saved sequence states kept in files under the system's temporary
   * folder, for prompts that start with a state a sequence no longer holds. 0 or undefined: none.
   */
  promptCacheBytes?: number | undefined;
  /**
   * llama.cpp's flash attention; undefined: llama.cpp's "auto" (on wherever the backend has it). Off, a CPU decodes
   * long contexts and small prompt chunks up to 2.3× and 7–8× faster, but a token's logits then depend on how its
   * prompt was batched (docs/ENGINE-NOTES.md "Flash attention on the CPU").
   */
  flashAttention?: boolean | undefined;
}

/**
 * Measured on 2-core machines (docs/ENGINE-NOTES.md, "Threads decide everything for small models"):
 * tiny models run ~150x faster on one thread than on two (the ggml thread pool spins against
 * Node's thread); models of real size need every core.
 */
export function defaultThreads(modelBytes: number): number {
  return modelBytes < 256 * 1024 * 1024 ? 1 : Math.max(1, availableParallelism());
}
