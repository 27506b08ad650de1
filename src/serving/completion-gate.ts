/**
 * Completion filtering for one choice, in Azure's default (buffered) mode: generated text is held
 * until a window of it is complete, the window is classified (with the tail of what was already
 * released as context), and only then released. So a client never receives text the filter then
 * blocks (docs/SAFETY.md "Streaming").
 */
import type { TokenLogprob } from "../engine/engine.ts";
import type { ContentFilter } from "../safety/content-filter.ts";
import { mergeResults, type WireFilterResults } from "../safety/content-policy.ts";

export interface ReleasedText {
  text: string;
  logprobs: TokenLogprob[] | undefined;
}

export class CompletionGate {
  private pending = "";
  private pendingLogprobs: TokenLogprob[] | undefined;
  private context = "";
  private vetted = false;
  /** The choice's annotation so far (the highest findings over its windows). */
  results: WireFilterResults | undefined;
  /** Set once a window was blocked: nothing more is released. */
  filtered = false;

  constructor(
    private readonly filter: ContentFilter,
    private readonly windowChars: number,
  ) {}

  push(text: string, logprobs: readonly TokenLogprob[] | undefined): void {
    this.pending += text;
    if (logprobs) (this.pendingLogprobs ??= []).push(...logprobs);
  }

  /** A whole window is waiting. */
  get full(): boolean {
    return this.pending.length >= this.windowChars;
  }

  /**
   * Classifies what is held (also when it is less than a window: the end of the choice) and
   * returns it to release, or undefined when the filter blocked it.
   */
  async release(signal: AbortSignal): Promise<ReleasedText | undefined> {
    if (this.filtered) return undefined;
    if (this.pending === "" && this.vetted) return { text: "", logprobs: undefined };
    const verdict = await this.filter.check(this.context + this.pending, "completion", signal);
    this.vetted = true;
    this.results = mergeResults(this.results, verdict.results);
    if (verdict.filtered) {
      this.filtered = true;
      return undefined;
    }
    const out = { text: this.pending, logprobs: this.pendingLogprobs };
    // The next window is judged with the end of this one, so a phrase split across windows is still seen.
    this.context = (this.context + this.pending).slice(-this.windowChars);
    this.pending = "";
    this.pendingLogprobs = undefined;
    return out;
  }
}
