/**
 * Finds stop strings in streamed text, holding back any tail that could still become a stop
 * string, so a stop split across tokens (or chunks) is never emitted.
 */
export class StopSequenceMatcher {
  private pending = "";
  private readonly stops: readonly string[];

  /**
   * @param holdTrailingWhitespace also hold back trailing whitespace, dropped by `flush` (JSON
   *   output: the grammar lets the model pad after the closing brace).
   */
  constructor(
    stops: readonly string[],
    private readonly holdTrailingWhitespace = false,
  ) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Adds generated text; returns what is safe to emit and whether a stop string was hit. */
  push(text: string): { emit: string; stopped: boolean } {
    this.pending += text;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.pending.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      const emit = this.pending.slice(0, cut);
      this.pending = "";
      return { emit, stopped: true };
    }
    const whitespace = this.holdTrailingWhitespace ? this.pending.length - this.pending.trimEnd().length : 0;
    const hold = Math.max(this.longestStopPrefixSuffix(), whitespace);
    const emit = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { emit, stopped: false };
  }

  /** Text held back when generation ends without a stop (less trailing whitespace when held for that). */
  flush(): string {
    const rest = this.holdTrailingWhitespace ? this.pending.trimEnd() : this.pending;
    this.pending = "";
    return rest;
  }

  private longestStopPrefixSuffix(): number {
    let best = 0;
    for (const stop of this.stops) {
      const max = Math.min(stop.length - 1, this.pending.length);
      for (let n = max; n > best; n--) {
        if (this.pending.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
