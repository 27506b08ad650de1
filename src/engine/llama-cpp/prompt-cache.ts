/**
 * The prompt cache: KV states of sequences that a new request was about to overwrite, kept in files
 * (docs/ENGINE-NOTES.md "The prompt cache"). A sequence holds one prompt's state at a time; with more
 * conversations than sequences, each turn used to evaluate its whole conversation again. Before a
 * sequence's tokens are erased for another prompt, its state is saved here; a later prompt that
 * starts with more of a saved state than any free sequence holds gets that state restored instead of
 * evaluated. The entries live within a byte budget, least recently used out first.
 *
 * The store (node-llama-cpp's `saveStateToFile`/`loadStateFromFile` in the engine) is injected, so
 * this class only decides what is kept and what is used.
 */
import type { Token } from "node-llama-cpp";

/** What the cache needs from the engine: writing a sequence's state to a file, reading one back, deleting one. */
export interface StateStore<S> {
  /** Writes `sequence`'s state to `file`; resolves with the file's size in bytes. */
  save(sequence: S, file: string): Promise<number>;
  /** Replaces `sequence`'s state with the one in `file`. */
  load(sequence: S, file: string): Promise<void>;
  remove(file: string): Promise<void>;
}

export interface PromptCacheEntry {
  readonly tokens: readonly Token[];
  readonly file: string;
  readonly bytes: number;
  lastUsed: number;
}

export interface PromptCacheStats {
  entries: number;
  bytes: number;
  saves: number;
  restores: number;
  /** Prompt tokens taken from restored states instead of evaluated. */
  restoredTokens: number;
  /** States not kept: larger than the budget on their own, or their save or a load failed. */
  dropped: number;
}

/** A state is saved, and a saved one used, only for at least this many tokens (fewer are cheaper to evaluate again). */
export const MIN_CACHED_TOKENS = 64;

export class PromptCache<S> {
  private readonly entries: PromptCacheEntry[] = [];
  private clock = 0;
  private fileCount = 0;
  private readonly counts = { saves: 0, restores: 0, restoredTokens: 0, dropped: 0 };

  constructor(
    private readonly store: StateStore<S>,
    /** Where the files go: one name per entry, `${prefix}${n}.bin`. */
    private readonly filePrefix: string,
    private readonly budgetBytes: number,
    private readonly minTokens: number = MIN_CACHED_TOKENS,
  ) {}

  /** The entry that starts with the longest part of `prompt` (at least `minTokens` more than `live`), and that length. */
  best(prompt: readonly Token[], live: number): { entry: PromptCacheEntry; length: number } | undefined {
    let found: { entry: PromptCacheEntry; length: number } | undefined;
    for (const entry of this.entries) {
      const length = commonPrefixLength(entry.tokens, prompt);
      if (length >= live + this.minTokens && length > (found?.length ?? 0)) found = { entry, length };
    }
    return found;
  }

  /**
   * Whether a sequence holding `tokens`, of which the next prompt keeps `kept`, should be saved before it is cut:
   * it loses at least `minTokens`, and no entry already holds all of `tokens`.
   */
  worthSaving(tokens: readonly Token[], kept: number): boolean {
    if (this.budgetBytes <= 0 || tokens.length - kept < this.minTokens) return false;
    return !this.entries.some((entry) => entry.tokens.length >= tokens.length && commonPrefixLength(entry.tokens, tokens) === tokens.length);
  }

  /** Saves `sequence` (which holds `tokens`); entries it extends go, then the least recently used until the budget holds. */
  async save(sequence: S, tokens: readonly Token[]): Promise<void> {
    const file = `${this.filePrefix}${this.fileCount++}.bin`;
    let bytes: number;
    try {
      bytes = await this.store.save(sequence, file);
    } catch (error) {
      this.counts.dropped += 1;
      await this.store.remove(file).catch(() => undefined);
      throw error;
    }
    if (bytes > this.budgetBytes) {
      this.counts.dropped += 1;
      await this.store.remove(file);
      return;
    }
    this.counts.saves += 1;
    // An entry whose tokens all start the new one is worth no more than it: any prompt it serves, the new one serves as far.
    const extended = this.entries.filter((entry) => commonPrefixLength(entry.tokens, tokens) === entry.tokens.length);
    await this.evict(extended);
    this.entries.push({ tokens: [...tokens], file, bytes, lastUsed: ++this.clock });
    const byAge = [...this.entries].sort((a, b) => a.lastUsed - b.lastUsed);
    const over: PromptCacheEntry[] = [];
    let total = this.bytes();
    for (const entry of byAge) {
      if (total <= this.budgetBytes) break;
      over.push(entry);
      total -= entry.bytes;
    }
    await this.evict(over);
  }

  /**
   * Puts `entry`'s state into `sequence`; `usedTokens` of it start the prompt (for the counters). False, and nothing
   * done, when the entry went meanwhile (a save between `best()` and this call made room). An entry that fails to
   * load is dropped, and the error thrown.
   */
  async restore(sequence: S, entry: PromptCacheEntry, usedTokens: number): Promise<boolean> {
    if (!this.entries.includes(entry)) return false;
    try {
      await this.store.load(sequence, entry.file);
    } catch (error) {
      this.counts.dropped += 1;
      await this.evict([entry]);
      throw error;
    }
    entry.lastUsed = ++this.clock;
    this.counts.restores += 1;
    this.counts.restoredTokens += usedTokens;
    return true;
  }

  /** Deletes every entry's file. */
  async clear(): Promise<void> {
    await this.evict([...this.entries]);
  }

  get stats(): PromptCacheStats {
    return { entries: this.entries.length, bytes: this.bytes(), ...this.counts };
  }

  private bytes(): number {
    return this.entries.reduce((sum, entry) => sum + entry.bytes, 0);
  }

  private async evict(entries: readonly PromptCacheEntry[]): Promise<void> {
    for (const entry of entries) {
      const index = this.entries.indexOf(entry);
      if (index >= 0) this.entries.splice(index, 1);
      await this.store.remove(entry.file).catch(() => undefined);
    }
  }
}

export function commonPrefixLength(a: readonly Token[], b: readonly Token[]): number {
  const max = Math.min(a.length, b.length);
  let i = 0;
  while (i < max && a[i] === b[i]) i++;
  return i;
}
