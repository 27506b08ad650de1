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
const WEIGHT = 0.2;

export class StepBudget {
  private decodeMs = 0;
  private promptTokenMs = 0;

  /** @param maxStepMs longest a step with decode tokens should take; undefined = no limit (prompts take what the batch has room for). */
  constructor(private readonly maxStepMs: number | undefined) {}

  /** Prompt tokens that may join a step carrying `decodeTokens` decode tokens; Infinity when unlimited. */
  promptTokens(decodeTokens: number): number {
    if (this.maxStepMs === undefined || decodeTokens === 0) return Infinity;
    if (this.promptTokenMs === 0) return INITIAL_TOKENS;
    return Math.max(MIN_TOKENS, Math.floor((this.maxStepMs - this.decodeMs) / this.promptTokenMs));
  }

  /** One native batch's measured time, with what it carried. */
  observe(decodeTokens: number, promptTokens: number, ms: number): void {
    if (promptTokens === 0) {
      if (decodeTokens > 0) this.decodeMs = average(this.decodeMs, ms);
      return;
    }
    // A mixed step's decode tokens cost about a decode step; what is left is the prompt tokens'.
    const promptMs = Math.max(0, ms - (decodeTokens > 0 ? this.decodeMs : 0));
    this.promptTokenMs = average(this.promptTokenMs, promptMs / promptTokens);
  }

  /** The current estimates (for logs and tests). */
  estimates(): { decodeMs: number; promptTokenMs: number } {
    return { decodeMs: this.decodeMs, promptTokenMs: this.promptTokenMs };
  }
}

function average(current: number, sample: number): number {
  return current === 0 ? sample : current * (1 - WEIGHT) + sample * WEIGHT;
}
