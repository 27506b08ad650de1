/**
 * The remote engine's own prompt counter: phiserve counts a prompt for a remote deployment with the
 * catalog model's tokenizer, in this process, so the context check and the quota reservation are
 * made before anything is sent upstream (docs/REMOTE.md "Token accounting"). The count follows
 * llama.cpp's two steps, as the llama.cpp engine does (docs/ENGINE-NOTES.md "Special tokens in
 * message content"): the prompt is split at special-token text found in the template's text (never
 * in message contents, the literal spans), then each raw fragment is tokenized on its own.
 *
 * - `llama-spm-32064` (Phi-3, Phi-3.5): Meta's Llama-2 SentencePiece pieces (npm `llama-tokenizer-js`)
 *   plus Phi-3's eleven added tokens; every fragment gets SentencePiece's space prefix, and the
 *   whitespace after a special token (except `<unk>`, `<s>`, `<|endoftext|>`) is stripped, Phi-3's
 *   rstrip rule (docs/ENGINE-NOTES.md "Tokenization and BOS").
 * - `cl100k-100352` (Phi-3-small, Phi-4) and `o200k-200064` (Phi-4-mini): tiktoken's ranks (npm
 *   `js-tiktoken`); a `<|name|>` marker in template text is one special token.
 *
 * The upstream's own `usage.prompt_tokens` is what is billed in the end (the `done` event carries it);
 * this count reserves quota and refuses prompts too long for the context.
 */
import llamaTokenizer from "llama-tokenizer-js";
import { getEncoding, type Tiktoken } from "js-tiktoken";
import type { PromptText, TokenCount } from "../engine.ts";

export type TokenizerFamily = "llama-spm-32064" | "cl100k-100352" | "o200k-200064";

/** Phi-3's added tokens and Llama's three specials: the markers of the SPM vocabulary. */
const SPM_MARKERS = [
  "<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
  "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>",
];
/** Phi-3's special tokens without llama.cpp's rstrip (docs/ENGINE-NOTES.md "Tokenization and BOS"). */
const SPM_NO_RSTRIP = new Set(["<unk>", "<s>", "<|endoftext|>"]);
const BPE_MARKER = /<\|[A-Za-z0-9_/]+\|>/g;
/** Bytes of the longest token text any of these vocabularies has, rounded up: ⌈bytes / this⌉ is a lower bound on tokens. */
const MAX_TOKEN_BYTES = 256;
const LEADING_SPACE = /^[ \t\n\v\f\r]+/;

export interface PromptCounter {
  /** Exact count, or a lower bound over `limitTokens` (see `Engine.countTokens`). */
  count(prompt: PromptText, limitTokens: number): TokenCount;
  /** Token id range: valid `logit_bias` keys are below this. */
  readonly vocabSize: number;
  readonly bosToken: string;
  readonly eosToken: string;
}

export function createPromptCounter(family: TokenizerFamily): PromptCounter {
  if (family === "llama-spm-32064") return new SpmCounter();
  return new TiktokenCounter(family === "cl100k-100352" ? "cl100k_base" : "o200k_base", family === "cl100k-100352" ? 100352 : 200064);
}

/** Splits `prompt` into marker and raw-text pieces: markers only in template text (and user-defined ones everywhere). */
function partition(prompt: PromptText, isMarker: (text: string, inLiteral: boolean) => boolean, pattern: RegExp): (string | { marker: string })[] {
  const text = prompt.prompt;
  const pieces: (string | { marker: string })[] = [];
  const push = (from: number, to: number, inLiteral: boolean) => {
    let at = from;
    const re = new RegExp(pattern.source, "g");
    re.lastIndex = from;
    for (let m = re.exec(text); m && m.index + m[0].length <= to; m = re.exec(text)) {
      if (!isMarker(m[0], inLiteral)) continue;
      if (m.index > at) pieces.push(text.slice(at, m.index));
      pieces.push({ marker: m[0] });
      at = m.index + m[0].length;
    }
    if (to > at) pieces.push(text.slice(at, to));
  };
  let at = 0;
  for (const { start, end } of prompt.literalSpans ?? []) {
    if (start > at) push(at, start, false);
    push(Math.max(start, at), end, true);
    at = Math.max(at, end);
  }
  if (at < text.length) push(at, text.length, false);
  // Adjacent text pieces (template and message text) are one raw fragment, as llama.cpp sees them.
  const joined: (string | { marker: string })[] = [];
  for (const piece of pieces) {
    const last = joined.at(-1);
    if (typeof piece === "string" && typeof last === "string") joined[joined.length - 1] = last + piece;
    else joined.push(piece);
  }
  return joined;
}

function lowerBound(prompt: PromptText, limitTokens: number): TokenCount | undefined {
  const atLeast = Math.ceil(Buffer.byteLength(prompt.prompt) / MAX_TOKEN_BYTES);
  return atLeast > limitTokens ? { tokens: atLeast, exact: false } : undefined;
}

class SpmCounter implements PromptCounter {
  readonly vocabSize = 32064;
  readonly bosToken = "<s>";
  readonly eosToken = "<|endoftext|>";
  private readonly pattern = new RegExp(SPM_MARKERS.map((m) => m.replace(/[|<>/]/g, "\\$&")).sort((a, b) => b.length - a.length).join("|"), "g");

  count(prompt: PromptText, limitTokens: number): TokenCount {
    const bound = lowerBound(prompt, limitTokens);
    if (bound) return bound;
    // Measured against llama.cpp on the Phi-3 vocabulary: `</s>` in message text is text there too.
    const pieces = partition(prompt, (_m, inLiteral) => !inLiteral, this.pattern);
    let tokens = 0;
    let strip = false;
    for (const piece of pieces) {
      if (typeof piece !== "string") {
        tokens += 1;
        strip = !SPM_NO_RSTRIP.has(piece.marker);
        continue;
      }
      const text = strip ? piece.replace(LEADING_SPACE, "") : piece;
      strip = false;
      // Each raw fragment is tokenized alone, with SentencePiece's space prefix (llama.cpp's add_space_prefix).
      if (text !== "") tokens += llamaTokenizer.encode(text, false, true).length;
    }
    return { tokens, exact: true };
  }
}

class TiktokenCounter implements PromptCounter {
  readonly bosToken = "<|endoftext|>";
  readonly eosToken = "<|endoftext|>";
  private encoding: Tiktoken | undefined;

  constructor(private readonly name: "cl100k_base" | "o200k_base", readonly vocabSize: number) {}

  count(prompt: PromptText, limitTokens: number): TokenCount {
    const bound = lowerBound(prompt, limitTokens);
    if (bound) return bound;
    this.encoding ??= getEncoding(this.name);
    let tokens = 0;
    for (const piece of partition(prompt, (_m, inLiteral) => !inLiteral, BPE_MARKER)) {
      // Special-token text inside a raw fragment is plain text (no special parsing).
      tokens += typeof piece === "string" ? this.encoding.encode(piece, [], []).length : 1;
    }
    return { tokens, exact: true };
  }
}
