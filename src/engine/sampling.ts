/**
 * Pure decoding math shared by engines: OpenAI-style logprobs from logits, and a seeded
 * temperature / top-p sampler used where the engine must sample in JavaScript (the logprobs
 * path, which needs the raw distribution before temperature and truncation).
 */
import { SeededRandom } from "../model-factory/prng.ts";

/** Log of the softmax normaliser of `logits`, relative to their maximum (stable); `logits` is iterated twice. */
export function logSumExp(logits: Iterable<number>): { max: number; logSum: number } {
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
 * Draws a token from `entries` ([token, logit], any order) at `temperature` with top-p truncation;
 * temperature 0 is greedy. The nucleus is the most likely tokens whose probabilities add up to
 * `topP` (tokens tied with the last one it takes are kept too); the draw walks the kept tokens in
 * the order given. Typed arrays and one native sort (only when top-p truncates): it runs over the
 * whole vocabulary at every step of a logprobs request (docs/DECODING.md "What the logprobs are").
 */
export function sampleToken(entries: Iterable<readonly [number, number]>, temperature: number, topP: number, random: SeededRandom, sizeHint = 0): number {
  if (temperature <= 0) {
    let best: readonly [number, number] | undefined;
    for (const e of entries) if (!best || e[1] > best[1]) best = e;
    if (!best) throw new Error("no candidate tokens");
    return best[0];
  }
  let tokens = new Int32Array(Math.max(16, sizeHint));
  let scaled = new Float64Array(tokens.length);
  let count = 0;
  let max = -Infinity;
  for (const [token, logit] of entries) {
    if (logit === -Infinity) continue;
    if (count === tokens.length) {
      const grown = new Int32Array(count * 2);
      grown.set(tokens);
      tokens = grown;
      const grownScaled = new Float64Array(count * 2);
      grownScaled.set(scaled);
      scaled = grownScaled;
    }
    const value = logit / temperature;
    tokens[count] = token;
    scaled[count++] = value;
    if (value > max) max = value;
  }
  if (count === 0) throw new Error("no candidate tokens");
  const probs = new Float64Array(count);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += probs[i] = Math.exp(scaled[i]! - max);
  for (let i = 0; i < count; i++) probs[i] = probs[i]! / sum;
  let threshold = 0;
  if (topP < 1) {
    const sorted = probs.slice().sort(); // ascending, native
    let mass = 0;
    for (let i = count - 1; i >= 0; i--) {
      mass += sorted[i]!;
      if (mass >= topP) {
        threshold = sorted[i]!;
        break;
      }
    }
  }
  let total = 0;
  for (let i = 0; i < count; i++) if (probs[i]! >= threshold) total += probs[i]!;
  let r = random.nextFloat() * total;
  let last = -1;
  for (let i = 0; i < count; i++) {
    if (probs[i]! < threshold) continue;
    last = i;
    r -= probs[i]!;
    if (r < 0) return tokens[i]!;
  }
  return tokens[last]!;
}

export { SeededRandom };
