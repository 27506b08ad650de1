/**
 * Splits a prompt into marker tokens and raw text the way llama.cpp's tokenizer does
 * (`tokenizer_st_partition`, llama-vocab.cpp), but only where special tokens may be parsed: the
 * template's text. Message contents (the prompt's literal spans) keep their special-token text as
 * text, as `parse_special = false` does (docs/ENGINE-NOTES.md "Special tokens in message content").
 *
 * Doing the partition here, in one linear pass, rather than in llama.cpp has two reasons:
 * - llama.cpp parses special tokens over a whole string or not at all, and the template's markers
 *   must be parsed while the contents between them must not;
 * - llama.cpp copies the whole remaining text for every marker it splits off, so its cost grows
 *   with markers × length (`<|end|>` × 20,000 took 3 s on the Phi-3 vocabulary, × 100,000 about 18 s).
 * The raw text between markers is then tokenized by llama.cpp with special parsing off, fragment by
 * fragment, which is what llama.cpp does after its own partition, so a prompt without special-token
 * text in its contents gets exactly the tokens of tokenizing it whole (a test checks it).
 */
import type { PromptText } from "../engine.ts";

/** A token llama.cpp matches by its text before merging (control, user-defined and unknown tokens). */
export interface MarkerToken {
  id: number;
  text: string;
  /** User-defined tokens are matched in message content too; control and unknown ones only in template text. */
  userDefined: boolean;
  /** Whitespace before the token is dropped (LLAMA_TOKEN_ATTR_LSTRIP). */
  lstrip: boolean;
  /** Whitespace after the token is dropped (LLAMA_TOKEN_ATTR_RSTRIP: every Phi-3 special token, docs/ENGINE-NOTES.md). */
  rstrip: boolean;
}

/** What the partition needs from a vocabulary, read once at load. */
export interface VocabularyFacts {
  markers: MarkerToken[];
  /**
   * Bytes of the longest token text in the vocabulary. No token covers more input bytes than its
   * text has (SentencePiece writes a space as the 3-byte `▁`, byte-level BPE maps each byte to a
   * character of 1–2 bytes), so a raw fragment of B bytes is at least ⌈B / maxTokenBytes⌉ tokens.
   */
  maxTokenBytes: number;
}

/** A prompt split for tokenizing: marker token ids and raw text fragments (never empty, never adjacent). */
export type Fragment = number | string;

/** llama.cpp strips with C `isspace` over bytes: ASCII whitespace only. */
const LEADING_SPACE = /^[ \t\n\v\f\r]+/;
const TRAILING_SPACE = /[ \t\n\v\f\r]+$/;

export class PromptPartitioner {
  private readonly byText = new Map<string, MarkerToken>();
  /** Every marker, longest first (llama.cpp tries longer texts first). */
  private readonly anyMarker: RegExp | undefined;
  private readonly userMarker: RegExp | undefined;

  constructor(readonly vocabulary: VocabularyFacts) {
    const markers = vocabulary.markers.filter((m) => m.text !== "").sort((a, b) => b.text.length - a.text.length);
    for (const marker of markers) if (!this.byText.has(marker.text)) this.byText.set(marker.text, marker);
    this.anyMarker = alternation(markers);
    this.userMarker = alternation(markers.filter((m) => m.userDefined));
  }

  /**
   * The prompt's fragments. `parseSpecialEverywhere` treats message text as template text (the opt-in old
   * behaviour). With `maxMarkers`, the partition stops as soon as it has found more markers than that (each is a
   * token, so the prompt has more tokens) and returns undefined: a prompt of 40,000 turns is refused after reading
   * the first few thousand.
   */
  partition(prompt: PromptText, options: { parseSpecialEverywhere?: boolean; maxMarkers?: number } = {}): Fragment[] | undefined {
    const state: Split = { pieces: [], markers: 0, maxMarkers: options.maxMarkers ?? Infinity };
    const text = prompt.prompt;
    const literal = options.parseSpecialEverywhere ? [] : (prompt.literalSpans ?? []);
    let at = 0;
    for (const { start, end } of literal) {
      const from = Math.max(start, at);
      if (from > at && !this.split(text.slice(at, from), this.anyMarker, state)) return undefined;
      if (!this.split(text.slice(from, end), this.userMarker, state)) return undefined;
      at = Math.max(at, end);
    }
    if (at < text.length && !this.split(text.slice(at), this.anyMarker, state)) return undefined;
    return toFragments(state.pieces);
  }

  /** A lower bound on the fragments' tokens: one per marker, ⌈bytes / longest token⌉ (at least 1) per raw fragment. */
  minTokens(fragments: readonly Fragment[]): number {
    let tokens = 0;
    for (const fragment of fragments) tokens += typeof fragment === "number" ? 1 : Math.max(1, Math.ceil(Buffer.byteLength(fragment) / this.vocabulary.maxTokenBytes));
    return tokens;
  }

  /** Appends `text` split around `pattern`'s markers; false once more than `maxMarkers` were found. */
  private split(text: string, pattern: RegExp | undefined, state: Split): boolean {
    if (text === "") return true;
    if (!pattern) {
      state.pieces.push(text);
      return true;
    }
    let at = 0;
    pattern.lastIndex = 0;
    for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
      if (match.index > at) state.pieces.push(text.slice(at, match.index));
      state.pieces.push(this.byText.get(match[0])!);
      if (++state.markers > state.maxMarkers) return false;
      at = match.index + match[0].length;
    }
    if (at < text.length) state.pieces.push(text.slice(at));
    return true;
  }
}

interface Split {
  pieces: (MarkerToken | string)[];
  markers: number;
  maxMarkers: number;
}

/** Joins adjacent raw pieces, then applies the markers' strips to their neighbours, dropping what becomes empty. */
function toFragments(pieces: readonly (MarkerToken | string)[]): Fragment[] {
  const merged: (MarkerToken | string)[] = [];
  let raw: string[] = [];
  for (const piece of pieces) {
    if (typeof piece === "string") raw.push(piece);
    else {
      if (raw.length > 0) merged.push(raw.join(""));
      raw = [];
      merged.push(piece);
    }
  }
  if (raw.length > 0) merged.push(raw.join(""));
  const fragments: Fragment[] = [];
  for (let i = 0; i < merged.length; i++) {
    const piece = merged[i]!;
    if (typeof piece !== "string") {
      fragments.push(piece.id);
      continue;
    }
    const before = merged[i - 1];
    const after = merged[i + 1];
    let text = piece;
    if (typeof before === "object" && before.rstrip) text = text.replace(LEADING_SPACE, "");
    if (typeof after === "object" && after.lstrip) text = text.replace(TRAILING_SPACE, "");
    if (text !== "") fragments.push(text);
  }
  return fragments;
}

function alternation(markers: readonly MarkerToken[]): RegExp | undefined {
  if (markers.length === 0) return undefined;
  return new RegExp(markers.map((m) => m.text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
}
