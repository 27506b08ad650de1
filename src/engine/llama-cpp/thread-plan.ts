/**
 * Threads chosen by measurement (docs/ENGINE-NOTES.md "Threads chosen by measurement"). How many
 * threads a llama.cpp batch should use depends on the binary (the prebuilt one's thread pool
 * collapses at two threads on a 2-core machine; an OpenMP build does not), on the model's size and on
 * the batch: one decode token is memory-bound and pays the threads' synchronisation every layer, eight
 * decode tokens or a prompt chunk have more work to share. So when a model loads, a short calibration
 * times native batches of 1, 2, 4, 8 decode tokens and a prompt chunk at each candidate thread count
 * and keeps the fastest for each shape; llama.cpp takes a new thread count before any batch. The plan is
 * cached per model file, binary, machine and context shape (thread-plan-cache.ts).
 */

/** Which thread count each batch shape runs fastest with. */
export interface ThreadPlanData {
  /** [decode tokens in the batch, threads], by increasing size. */
  decode: [number, number][];
  /** Threads for batches that carry prompt tokens. */
  prompt: number;
  /** What was measured, for logs: ms per batch by shape and thread count. */
  timings: Record<string, Record<number, number>>;
}

export class ThreadPlan {
  constructor(readonly data: ThreadPlanData) {}

  /** Threads for a batch of `decodeTokens` decode tokens and `promptTokens` prompt tokens. */
  threadsFor(decodeTokens: number, promptTokens: number): number {
    // Prompt tokens dominate a batch's cost as soon as there are more of them than decode tokens.
    if (promptTokens > decodeTokens || this.data.decode.length === 0) return this.data.prompt;
    for (const [size, threads] of this.data.decode) if (decodeTokens <= size) return threads;
    return this.data.decode[this.data.decode.length - 1]![1];
  }
}

/** How the calibration drives the engine: one timed native batch of each kind at a forced thread count. */
export interface CalibrationRunner {
  /** Runs one batch of `tokens` decode tokens (one per sequence) with `threads`; resolves with its native time (ms). */
  decodeStep(tokens: number, threads: number): Promise<number>;
  /** Runs one prompt chunk with `threads`; resolves with its native time (ms). */
  promptChunk(threads: number): Promise<number>;
}

/** Thread counts worth trying on `cores` cores: 1, 2, half and all of them. */
export function threadCandidates(cores: number): number[] {
  return [...new Set([1, 2, Math.floor(cores / 2), cores].filter((n) => n >= 1 && n <= Math.max(1, cores)))].sort((a, b) => a - b);
}

/** Decode batch sizes to time: 1, 2, 4, 8, as far as the context has sequences. */
export function decodeSizes(sequences: number): number[] {
  return [1, 2, 4, 8].filter((n) => n <= Math.max(1, sequences));
}

/** A candidate whose one-token step is this many times slower than the best so far is not timed further. */
const HOPELESS = 3;
/** More threads must be this much faster to be chosen: calibration runs with the event loop idle, serving does not. */
const MARGIN = 1.3;

/**
 * Times every shape at every candidate (after one warm-up batch per candidate) and keeps the fastest;
 * `repeats` timings per shape, their median counts; ties within 30 % go to fewer threads. A candidate far slower than the best on one decode
 * token (the oversubscription trap, docs/ENGINE-NOTES.md "Threads decide everything for small models")
 * is dropped after that one timing, so a trap costs two batches, not a dozen.
 */
export async function calibrateThreads(runner: CalibrationRunner, candidates: readonly number[], sizes: readonly number[], repeats = 2): Promise<ThreadPlanData> {
  const timings: Record<string, Record<number, number>> = {};
  const record = (shape: string, threads: number, ms: number) => ((timings[shape] ??= {})[threads] = ms);
  let bestOne = Infinity;
  for (const threads of candidates) {
    await runner.decodeStep(1, threads); // warm-up: thread pools start, caches fill
    const one = await runner.decodeStep(1, threads);
    if (one > HOPELESS * bestOne) {
      for (const size of sizes) record(`decode${size}`, threads, Infinity);
      record("prompt", threads, Infinity);
      continue;
    }
    bestOne = Math.min(bestOne, one);
    for (const size of sizes) {
      const samples: number[] = [];
      for (let i = 0; i < repeats; i++) samples.push(await runner.decodeStep(size, threads));
      record(`decode${size}`, threads, median(samples));
    }
    record("prompt", threads, await runner.promptChunk(threads));
  }
  // The fewest threads within 30 % of the fastest: more threads only where they clearly pay, since spare cores
  // serve the event loop and other work, and a busier machine punishes oversubscription first.
  const fastest = (shape: string) => {
    const times = Object.entries(timings[shape]!).map(([threads, ms]) => [Number(threads), ms] as const);
    const best = Math.min(...times.map(([, ms]) => ms));
    return Math.min(...times.filter(([, ms]) => ms <= best * MARGIN).map(([threads]) => threads));
  };
  return { decode: sizes.map((size) => [size, fastest(`decode${size}`)]), prompt: fastest("prompt"), timings };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
