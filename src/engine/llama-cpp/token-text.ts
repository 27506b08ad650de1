/**
 * Token ids and their text. `TokenTextDecoder` turns generated tokens into text as they arrive: a token that ends inside a multi-byte UTF-8
 * character is held back until the character completes, and each piece is detokenized with the
 * tokens before it as context so SentencePiece's leading spaces come out right.
 */
import type { LlamaModel, Token } from "node-llama-cpp";
import type { TokenAlternative } from "../engine.ts";

const REPLACEMENT_CHAR = "\uFFFD";
const CONTEXT_TOKENS = 8;

/** The id of a token text that is exactly one token (special tokens parsed as such), else undefined. */
export function singleToken(model: LlamaModel, text: string): Token | undefined {
  const tokens = model.tokenize(text, true);
  return tokens.length === 1 ? tokens[0] : undefined;
}

export class TokenTextDecoder {
  private readonly generated: Token[] = [];
  private pending: Token[] = [];

  constructor(
    private readonly model: LlamaModel,
    private readonly promptTail: readonly Token[],
  ) {}

  /** All tokens pushed so far. */
  get tokens(): readonly Token[] {
    return this.generated;
  }

  /** Counts a generated token whose text is not part of the output (a control token such as `<|tool_call|>`). */
  skip(token: Token): void {
    this.generated.push(token);
  }

  /** Adds a token; returns the text that became complete ("" while a character is unfinished). */
  push(token: Token, isLast: boolean): string {
    this.generated.push(token);
    this.pending.push(token);
    const before = this.generated.length - this.pending.length;
    const lastTokens = before > 0 ? this.generated.slice(Math.max(0, before - CONTEXT_TOKENS), before) : this.promptTail.slice(-CONTEXT_TOKENS);
    const text = this.model.detokenize(this.pending, false, lastTokens);
    if (text.endsWith(REPLACEMENT_CHAR) && !isLast) return "";
    this.pending = [];
    return text;
  }
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** GPT-2's byte↔unicode table (byte-level BPE vocabularies spell bytes as these characters). */
function gpt2UnicodeToByte(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const code = printable.includes(b) ? b : 256 + extra++;
    map.set(String.fromCodePoint(code), b);
  }
  return map;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Describes vocabulary entries for logprobs: exact bytes from the GGUF vocabulary text, and the
 * token as text (or `bytes:\x..` when its bytes are not valid UTF-8 on their own, as OpenAI does).
 */
export class TokenDescriber {
  private readonly unicodeToByte: Map<string, number> | undefined;
  private readonly cache = new Map<Token, Omit<TokenAlternative, "logprob">>();

  constructor(
    private readonly vocab: readonly string[],
    tokenizerModel: string,
  ) {
    this.unicodeToByte = tokenizerModel === "gpt2" ? gpt2UnicodeToByte() : undefined;
  }

  describe(token: Token, logprob: number): TokenAlternative {
    let entry = this.cache.get(token);
    if (!entry) {
      const bytes = this.bytesOf(this.vocab[token] ?? "");
      entry = { token: this.textOf(bytes), bytes };
      if (this.cache.size < 100_000) this.cache.set(token, entry);
    }
    return { token: entry.token, logprob, bytes: entry.bytes };
  }

  private bytesOf(piece: string): number[] {
    const byte = BYTE_TOKEN.exec(piece);
    if (byte?.[1]) return [Number.parseInt(byte[1], 16)];
    const table = this.unicodeToByte;
    if (table && [...piece].every((c) => table.has(c))) return [...piece].map((c) => table.get(c)!);
    return [...Buffer.from(piece.replaceAll("\u2581", " "), "utf8")];
  }

  private textOf(bytes: number[]): string {
    try {
      return utf8.decode(Uint8Array.from(bytes));
    } catch {
      return `bytes:${bytes.map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("")}`;
    }
  }
}
