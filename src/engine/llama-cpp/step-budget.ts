/**
 * Chunked prefill with a per-step time budget (docs/ENGINE-NOTES.md "Prompts and decoding streams
 * share steps"): while sequences are decoding, a batch carries their tokens first and then only as
 * many prompt tokens as fit the budget, so a long prompt (or several arriving together) cannot stall
 * the streams for seconds. The budget is in milliseconds; it becomes a token count through the costs
 * measured on this model and machine: how long a step of decode tokens takes, and how long each
 * prompt token adds. With nothing decoding, prompts get the whole batch (nobody is waiting).
 */

/** Prompt tokens allowed in a step before anything has been measured. */
const INITIAL_TOKENS = 32;
/** Every step carries at least this many prompt tokens, so prompts progress whatever the budget. */
const MIN_TOKENS = 8;
/** Weight of a new decode-step time in its moving averages. */
const WEIGHT = 0.2;
/** Each new prompt observation scales the older ones' weight by this. */
const DECAY = 0.85;

export class StepBudget {
  /** Moving average of a decode-only step's time, any size. */
  private decodeMs = 0;
  /** The same by the number of decode tokens in the step. */
  private readonly decodeMsByRows = new Map<number, number>();
  /** Decayed sums over prompt observations (x: prompt tokens, y: their ms) for a least-squares line y = a + b·x. */
  private readonly sums = { n: 0, x: 0, y: 0, xx: 0, xy: 0 };

  /** @param maxStepMs longest a step with decode tokens should take; undefined = no limit (prompts take what the batch has room for). */
  constructor(private readonly maxStepMs: number | undefined) {}

  /** Prompt tokens that may join a step carrying `decodeTokens` decode tokens; Infinity when unlimited. */
  promptTokens(decodeTokens: number): number {
    if (this.maxStepMs === undefined || decodeTokens === 0) return Infinity;
    if (this.sums.n === 0) return INITIAL_TOKENS;
    const { fixedMs, perTokenMs } = this.promptCost();
    return Math.max(MIN_TOKENS, Math.floor((this.maxStepMs - this.decodeStepMs(decodeTokens) - fixedMs) / perTokenMs));
  }

  /** A decode-only step of `rows` tokens, as measured (the average over all sizes until that size was seen). */
  decodeStepMs(rows: number): number {
    return this.decodeMsByRows.get(rows) ?? this.decodeMs;
  }

  /**
   * One native batch's measured time, with what it carried; `decodeRows`: the rows of its decode micro-batch (the
   * decode tokens, plus a prompt's first token when it shared that micro-batch).
   */
  observe(decodeTokens: number, promptTokens: number, ms: number, decodeRows = decodeTokens): void {
    if (promptTokens === 0) {
      if (decodeTokens > 0) {
        this.decodeMs = average(this.decodeMs, ms);
        this.decodeMsByRows.set(decodeTokens, average(this.decodeMsByRows.get(decodeTokens) ?? 0, ms));
      }
      return;
    }
    // llama.cpp evaluates a step's decode tokens and a prompt chunk of another sequence in separate micro-batches,
    // each a pass over the weights (with a KV stream per sequence, a micro-batch takes equal token counts per
    // sequence), so a mixed step costs about a decode step plus the chunk: the chunk's share is what is left.
    const y = Math.max(0, ms - (decodeTokens > 0 ? this.decodeStepMs(decodeRows) : 0));
    const s = this.sums;
    s.n = s.n * DECAY + 1;
    s.x = s.x * DECAY + promptTokens;
    s.y = s.y * DECAY + y;
    s.xx = s.xx * DECAY + promptTokens * promptTokens;
    s.xy = s.xy * DECAY + promptTokens * y;
  }

  /**
   * A prompt chunk's cost as a fixed part (a pass over the weights, whatever the chunk's size) and a part per token,
   * fitted over the recent chunks; while their sizes hardly differ, the average per token with no fixed part.
   */
  private promptCost(): { fixedMs: number; perTokenMs: number } {
    const s = this.sums;
    const ratio = { fixedMs: 0, perTokenMs: Math.max(1e-3, s.y / s.x) };
    const variance = s.xx / s.n - (s.x / s.n) ** 2;
    const meanX = s.x / s.n;
    if (variance < (0.25 * meanX) ** 2) return ratio;
    const perTokenMs = (s.xy / s.n - meanX * (s.y / s.n)) / variance;
    const fixedMs = s.y / s.n - perTokenMs * meanX;
    return perTokenMs > 0 && fixedMs >= 0 ? { fixedMs, perTokenMs } : ratio;
  }

  /**
   * The current estimates (for logs, tests and the prompt gathering window): `promptTokenMs` is the recent chunks'
   * average cost per token (their fixed part spread over their tokens); the fitted line is `promptFixedMs` plus
   * `promptMarginalMs` per token.
   */
  estimates(): { decodeMs: number; promptTokenMs: number; promptFixedMs: number; promptMarginalMs: number } {
    if (this.sums.n === 0) return { decodeMs: this.decodeMs, promptTokenMs: 0, promptFixedMs: 0, promptMarginalMs: 0 };
    const { fixedMs, perTokenMs } = this.promptCost();
    return { decodeMs: this.decodeMs, promptTokenMs: this.sums.y / this.sums.x, promptFixedMs: fixedMs, promptMarginalMs: perTokenMs };
  }
}

function average(current: number, sample: number): number {
  return current === 0 ? sample : current * (1 - WEIGHT) + sample * WEIGHT;
}
