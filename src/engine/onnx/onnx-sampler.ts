/**
 * Token choice over the decoder's logits, in TypeScript, with the llama.cpp engine's semantics
 * (docs/ENGINE-NOTES.md "ONNX engine sampling"):
 * 1. the raw logits get `logit_bias` (−100 or less bans the token; suppressed tokens are banned)
 *    and the OpenAI penalties over the tokens generated so far:
 *    `logit −= count × frequency_penalty + (count > 0) × presence_penalty`;
 * 2. logprobs are read from that distribution (before temperature and truncation);
 * 3. temperature 0 takes the highest (the first of equals); above it the logits are divided by the
 *    temperature, truncated to the nucleus (top-p: the most likely tokens whose mass reaches
 *    `topP`) and one is drawn with the generation's seeded random numbers, so a seed reproduces
 *    the same tokens.
 * Buffers are allocated once per generation and reused every step.
 */
import { SeededRandom } from "../../model-factory/prng.ts";

/** Top-p buckets: 8 per nat of log-probability, the last one holding everything below −64 nats. */
const BUCKETS_PER_NAT = 8;
const BUCKETS = 512;

export interface SamplerOptions {
  vocabSize: number;
  temperature: number;
  topP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** Token id → bias; −Infinity bans. */
  bias: ReadonlyMap<number, number>;
  /** Alternatives to report per token; undefined: no logprobs. */
  topLogprobs: number | undefined;
  seed: number;
}

export interface Choice {
  /** −1 when every token is banned (the generation ends). */
  token: number;
  /** Log-probability of `token` (when logprobs were asked for). */
  logprob: number;
  /** The `topLogprobs` most likely tokens and their log-probabilities, highest first. */
  top: [number, number][];
}

export class LogitSampler {
  private readonly adjusted: Float32Array;
  private readonly counts = new Map<number, number>();
  private readonly random: SeededRandom;
  private probs: Float64Array | undefined;
  private sorted: Float64Array | undefined;
  private buckets: Float64Array | undefined;
  private bucketOf: Uint16Array | undefined;

  constructor(private readonly options: SamplerOptions) {
    this.adjusted = new Float32Array(options.vocabSize);
    this.random = new SeededRandom(options.seed);
  }

  /** Chooses the next token from one position's logits (`vocabSize` values). */
  choose(logits: Float32Array): Choice {
    const { options } = this;
    const work = this.adjusted;
    work.set(logits.subarray(0, options.vocabSize));
    for (const [id, bias] of options.bias) if (id >= 0 && id < work.length) work[id] = bias === -Infinity ? -Infinity : work[id]! + bias;
    for (const [id, count] of this.counts) work[id] = work[id]! - count * options.frequencyPenalty - options.presencePenalty;
    let best = -1;
    let max = -Infinity;
    for (let i = 0; i < work.length; i++) {
      if (work[i]! > max) {
        max = work[i]!;
        best = i;
      }
    }
    if (best < 0) return { token: -1, logprob: -Infinity, top: [] };
    const token = options.temperature <= 0 ? best : this.draw(max);
    if (options.topLogprobs === undefined) return { token, logprob: 0, top: [] };
    let sum = 0;
    for (let i = 0; i < work.length; i++) sum += Math.exp(work[i]! - max);
    const logSum = Math.log(sum);
    const top = topEntries(work, options.topLogprobs).map(([id, logit]): [number, number] => [id, logit - max - logSum]);
    return { token, logprob: work[token]! - max - logSum, top };
  }

  /** Counts a generated token for the penalties. */
  accept(token: number): void {
    if (this.options.presencePenalty === 0 && this.options.frequencyPenalty === 0) return;
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
  }

  /** Temperature, then top-p, then a seeded draw. */
  private draw(max: number): number {
    const { temperature, topP } = this.options;
    const work = this.adjusted;
    const probs = (this.probs ??= new Float64Array(work.length));
    let total = 0;
    for (let i = 0; i < work.length; i++) total += probs[i] = Math.exp((work[i]! - max) / temperature);
    if (topP >= 1) {
      let r = this.random.nextFloat() * total;
      let last = 0;
      for (let i = 0; i < probs.length; i++) {
        if (probs[i]! === 0) continue;
        last = i;
        r -= probs[i]!;
        if (r < 0) return i;
      }
      return last;
    }
    // The nucleus is the most likely tokens whose mass reaches topP. Rather than sorting the
    // vocabulary each step (~10 ms for 32k ids), tokens go into buckets by log-probability
    // (BUCKETS_PER_NAT per nat below the best): whole buckets are taken from the top while their
    // mass stays under topP, and only the bucket where it crosses is sorted.
    const buckets = (this.buckets ??= new Float64Array(BUCKETS));
    const bucketOf = (this.bucketOf ??= new Uint16Array(work.length));
    buckets.fill(0);
    for (let i = 0; i < probs.length; i++) {
      const b = Math.min(BUCKETS - 1, Math.floor(((max - work[i]!) / temperature) * BUCKETS_PER_NAT));
      bucketOf[i] = b;
      buckets[b] = buckets[b]! + probs[i]!;
    }
    const goal = topP * total;
    let mass = 0;
    let crossing = 0;
    while (crossing < BUCKETS - 1 && mass + buckets[crossing]! < goal) mass += buckets[crossing++]!;
    const sorted = (this.sorted ??= new Float64Array(work.length));
    let n = 0;
    for (let i = 0; i < probs.length; i++) if (bucketOf[i] === crossing) sorted[n++] = probs[i]!;
    const ascending = sorted.subarray(0, n).sort();
    let threshold = ascending[n - 1] ?? 0;
    for (let k = n - 1; k >= 0; k--) {
      threshold = ascending[k]!;
      mass += threshold;
      if (mass >= goal) break;
    }
    // Draw among the tokens at or above the threshold, in id order (ties with the last one kept are kept too).
    let kept = 0;
    for (let i = 0; i < probs.length; i++) if (probs[i]! >= threshold) kept += probs[i]!;
    let r = this.random.nextFloat() * kept;
    let last = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i]! < threshold) continue;
      last = i;
      r -= probs[i]!;
      if (r < 0) return i;
    }
    return last;
  }
}

/** The `count` highest finite values and their indices, highest first. */
export function topEntries(values: Float32Array, count: number): [number, number][] {
  const best: [number, number][] = [];
  if (count <= 0) return best;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    if (value === -Infinity || (best.length === count && value <= best[count - 1]![1])) continue;
    let at = best.length === count ? count - 1 : best.length;
    while (at > 0 && best[at - 1]![1] < value) {
      best[at] = best[at - 1]!;
      at--;
    }
    best[at] = [i, value];
  }
  return best;
}
