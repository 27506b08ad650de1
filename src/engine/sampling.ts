/**
 * Pure decoding math shared by engines: OpenAI-style logprobs from logits, and a seeded
 * temperature / top-p sampler used where the engine must sample in JavaScript (the logprobs
 * path, which needs the raw distribution before temperature and truncation).
 */
import { SeededRandom } from "../model-factory/prng.ts";

/** Log of the softmax normaliser of `logits`, relative to their maximum (stable). */
export function logSumExp(logits: readonly number[]): { max: number; logSum: number } {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  let sum = 0;
  for (const l of logits) sum += Math.exp(l - max);
  return { max, logSum: Math.log(sum) };
}

/** log-softmax of one logit given the distribution's max and log Σ exp(logit − max). */
export function toLogprob(logit: number, stats: { max: number; logSum: number }): number {
  return logit - stats.max - stats.logSum;
}

/**
 * Samples a token from raw logits: temperature scaling, then nucleus (top-p) truncation, then a
 * draw from `random`. Temperature 0 is greedy (ties: the first entry). `entries` may be in any order.
 */
export function sampleToken(entries: readonly (readonly [number, number])[], temperature: number, topP: number, random: SeededRandom): number {
  if (entries.length === 0) throw new Error("no candidate tokens");
  if (temperature <= 0) {
    let best = entries[0]!;
    for (const e of entries) if (e[1] > best[1]) best = e;
    return best[0];
  }
  const scaled = entries.filter((e) => e[1] !== -Infinity).map(([token, logit]) => [token, logit / temperature] as const);
  scaled.sort((a, b) => b[1] - a[1]);
  const { max, logSum } = logSumExp(scaled.map((e) => e[1]));
  const probs = scaled.map(([, l]) => Math.exp(l - max - logSum));
  let keep = probs.length;
  if (topP < 1) {
    let mass = 0;
    for (let i = 0; i < probs.length; i++) {
      mass += probs[i]!;
      if (mass >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  const kept = probs.slice(0, keep);
  const total = kept.reduce((a, b) => a + b, 0);
  let r = random.nextFloat() * total;
  for (let i = 0; i < kept.length; i++) {
    r -= kept[i]!;
    if (r < 0) return scaled[i]![0];
  }
  return scaled[keep - 1]![0];
}

export { SeededRandom };
