/**
 * What the native batches carried since load, as the batch strategy reports each one: the
 * engine's `decodeBatches`/`decodeBatchTokens` counters and its detailed batching stats both come
 * from this one histogram.
 */
import type { BatchRecorder, DecodeGateStats } from "./decode-gate.ts";

/** How the decode steps were batched since start (for tests, benchmarks and diagnostics). */
export interface DecodeBatchingStats extends DecodeGateStats {
  /** Native batches by the number of decode tokens they carried (batches of prompt tokens only are under 0). */
  decodeBatchSizes: Record<number, number>;
  /** Native batches that carried prompt tokens. */
  promptBatches: number;
  /**
   * Batches that could not be put in sequence order (node-llama-cpp's queue did not match its
   * items: only after a library upgrade). Should stay 0.
   */
  unorderedBatches: number;
}

export class BatchHistogram {
  private readonly decodeBatchSizes: Record<number, number> = {};
  private promptBatches = 0;
  private unorderedBatches = 0;

  /** For `decodeFirstStrategy`: counts one native batch. */
  readonly record: BatchRecorder = (decode, prompt, ordered) => {
    this.decodeBatchSizes[decode] = (this.decodeBatchSizes[decode] ?? 0) + 1;
    if (prompt > 0) this.promptBatches += 1;
    if (!ordered) this.unorderedBatches += 1;
  };

  /** Batches that carried decode tokens, and how many decode tokens they carried in all. */
  decodeTotals(): { decodeBatches: number; decodeBatchTokens: number } {
    let decodeBatches = 0;
    let decodeBatchTokens = 0;
    for (const [size, count] of Object.entries(this.decodeBatchSizes)) {
      if (Number(size) === 0) continue; // batches of prompt tokens only
      decodeBatches += count;
      decodeBatchTokens += Number(size) * count;
    }
    return { decodeBatches, decodeBatchTokens };
  }

  /** The histogram with the decode gate's counters. */
  stats(gate: DecodeGateStats): DecodeBatchingStats {
    return { ...gate, decodeBatchSizes: { ...this.decodeBatchSizes }, promptBatches: this.promptBatches, unorderedBatches: this.unorderedBatches };
  }
}
