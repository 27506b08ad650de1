/**
 * The llama.cpp engine's prompt tokenizing: partition (prompt-partition.ts: the template's markers
 * become their tokens, message contents stay text), a size bound that refuses hopeless prompts
 * before any tokenizing, llama.cpp's tokenizer for the raw fragments (inline when small, on the
 * tokenizer thread otherwise), and a small cache between counting a prompt and evaluating it.
 */
import type { LlamaModel, Token } from "node-llama-cpp";
import type { PromptText, TokenCount } from "../engine.ts";
import { PromptPartitioner, type Fragment, type VocabularyFacts } from "./prompt-partition.ts";
import type { TokenizerThread } from "./tokenizer-thread.ts";

/**
 * Raw text up to this many UTF-16 units is tokenized on the event loop: at about 1 µs per byte
 * (docs/ENGINE-NOTES.md "Tokenizing off the event loop") that is a few milliseconds, less than a
 * round trip through the thread's queue when it is busy.
 */
const INLINE_CHARS = 4096;

/** Tokenizations kept between counting and evaluating: a few requests' worth, and never more than this many bytes. */
const CACHE_ENTRIES = 32;
const CACHE_BYTES = 8 * 1024 * 1024;

interface Cached {
  tokens: Token[];
  bytes: number;
}

export class PromptTokenizer {
  private readonly partitioner: PromptPartitioner;
  private readonly cache = new Map<string, Cached>();
  private cacheBytes = 0;

  constructor(
    private readonly model: LlamaModel,
    private readonly thread: TokenizerThread,
    vocabulary: VocabularyFacts,
  ) {
    this.partitioner = new PromptPartitioner(vocabulary);
  }

  /** See `Engine.countTokens`: exact, or a lower bound over `limitTokens` without tokenizing. */
  async count(prompt: PromptText, limitTokens: number): Promise<TokenCount> {
    const key = cacheKey(prompt);
    const cached = this.cache.get(key);
    if (cached) return { tokens: cached.tokens.length, exact: true };
    const fragments = this.partitioner.partition(prompt, { maxMarkers: limitTokens });
    if (!fragments) return { tokens: limitTokens + 1, exact: false };
    const atLeast = this.partitioner.minTokens(fragments);
    if (atLeast > limitTokens) return { tokens: atLeast, exact: false };
    const parts = await this.tokenizeRaw(fragments);
    const count = fragments.length - parts.length + parts.reduce((sum, part) => sum + part.length, 0);
    // Only a prompt that can run is kept: a refused one must leave nothing behind.
    if (count <= limitTokens) this.remember(key, joinTokens(fragments, parts));
    return { tokens: count, exact: true };
  }

  /** The prompt's tokens, as `count` counts them. */
  async tokens(prompt: PromptText): Promise<Token[]> {
    const cached = this.cache.get(cacheKey(prompt));
    if (cached) return cached.tokens;
    const fragments = this.partitioner.partition(prompt)!;
    return joinTokens(fragments, await this.tokenizeRaw(fragments));
  }

  /** Tokenizations kept now, and their estimated bytes (for tests). */
  cached(): { entries: number; bytes: number } {
    return { entries: this.cache.size, bytes: this.cacheBytes };
  }

  /** The raw fragments' tokens, in order: inline when they are short, on the tokenizer thread otherwise. */
  private async tokenizeRaw(fragments: readonly Fragment[]): Promise<ArrayLike<number>[]> {
    const raw = fragments.filter((f): f is string => typeof f === "string");
    const rawChars = raw.reduce((sum, text) => sum + text.length, 0);
    return rawChars <= INLINE_CHARS ? raw.map((text) => this.model.tokenize(text, false)) : this.thread.tokenize(raw);
  }

  private remember(key: string, tokens: Token[]): void {
    // UTF-16 key, 8 bytes per array slot.
    const bytes = key.length * 2 + tokens.length * 8;
    if (bytes > CACHE_BYTES) return;
    const previous = this.cache.get(key);
    if (previous) this.cacheBytes -= previous.bytes;
    this.cache.delete(key);
    this.cache.set(key, { tokens, bytes });
    this.cacheBytes += bytes;
    for (const [oldest, entry] of this.cache) {
      if (this.cache.size <= CACHE_ENTRIES && this.cacheBytes <= CACHE_BYTES) break;
      this.cache.delete(oldest);
      this.cacheBytes -= entry.bytes;
    }
  }
}

/** Markers and the raw fragments' tokens, in prompt order. */
function joinTokens(fragments: readonly Fragment[], parts: readonly ArrayLike<number>[]): Token[] {
  const tokens: Token[] = [];
  let next = 0;
  for (const fragment of fragments) {
    if (typeof fragment === "number") tokens.push(fragment as Token);
    else {
      const part = parts[next++]!;
      for (let i = 0; i < part.length; i++) tokens.push(part[i] as Token);
    }
  }
  return tokens;
}

/** The same text with different literal spans tokenizes differently, so the spans are part of the key. */
function cacheKey(prompt: PromptText): string {
  const spans = prompt.literalSpans?.map((s) => `${s.start}-${s.end}`).join(",") ?? "";
  return `${spans}|${prompt.prompt}`;
}
