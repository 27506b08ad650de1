/**
 * Generated token ids to text, as Hugging Face's decoder for Phi-3's tokenizer.json does it
 * (Replace `▁` → space, ByteFallback, Fuse, Strip one leading space), but incrementally for
 * streaming: bytes of a character split over several tokens (byte-fallback `<0xE2>` `<0x82>` …)
 * are held back until the character is complete, so a streamed piece is never half a character.
 * Also each token's text and bytes for logprobs, in the llama.cpp engine's shape.
 */
import type { TokenAlternative } from "../engine.ts";
import type { OnnxTokenizer } from "./onnx-tokenizer.ts";

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const SPACE = 0x20;

interface TokenEntry {
  /** Bytes the token adds to streamed text (a special token adds none). */
  streamBytes: Uint8Array;
  /** Bytes reported in logprobs (a special token's own text). */
  bytes: number[];
  /** The token as logprobs show it: its text, or `bytes:\x..` when its bytes are not UTF-8 on their own. */
  token: string;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Per-id bytes and texts, built on first use. */
export class TokenVocabulary {
  private readonly entries = new Map<number, TokenEntry>();
  private readonly special = new Map<number, string>();

  constructor(private readonly tokenizer: OnnxTokenizer) {
    for (const token of tokenizer.addedTokens()) if (token.special) this.special.set(token.id, token.content);
  }

  entry(id: number): TokenEntry {
    let entry = this.entries.get(id);
    if (entry) return entry;
    const special = this.special.get(id);
    const piece = special ?? this.tokenizer.full.id_to_token(id) ?? "";
    const byte = BYTE_TOKEN.exec(piece);
    const bytes = byte?.[1] ? [Number.parseInt(byte[1], 16)] : [...Buffer.from(piece.replaceAll("\u2581", " "), "utf8")];
    entry = { streamBytes: special === undefined ? Uint8Array.from(bytes) : new Uint8Array(0), bytes, token: describeBytes(bytes) };
    this.entries.set(id, entry);
    return entry;
  }

  /** A logprobs alternative for `id`. */
  describe(id: number, logprob: number): TokenAlternative {
    const { token, bytes } = this.entry(id);
    return { token, logprob, bytes };
  }
}

function describeBytes(bytes: readonly number[]): string {
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    return `bytes:${bytes.map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("")}`;
  }
}

/** One generation's streamed text. */
export class TokenTextStream {
  private pending = new Uint8Array(64);
  private pendingLength = 0;
  private atStart = true;
  private readonly utf8 = new TextDecoder("utf-8");

  constructor(private readonly vocabulary: TokenVocabulary) {}

  /** Adds a token; returns the text that became complete ("" while a character is unfinished). `isLast` flushes. */
  push(id: number, isLast: boolean): string {
    const bytes = this.vocabulary.entry(id).streamBytes;
    let from = 0;
    // The decoder's Strip: the generation's first space goes (the tokenizer's prepended `▁`).
    if (this.atStart && bytes.length > 0) {
      this.atStart = false;
      if (bytes[0] === SPACE) from = 1;
    }
    this.append(bytes, from);
    const complete = isLast ? this.pendingLength : completeLength(this.pending, this.pendingLength);
    if (complete === 0) return "";
    const text = this.utf8.decode(this.pending.subarray(0, complete));
    this.pending.copyWithin(0, complete, this.pendingLength);
    this.pendingLength -= complete;
    return text;
  }

  private append(bytes: Uint8Array, from: number): void {
    const needed = this.pendingLength + bytes.length - from;
    if (needed > this.pending.length) {
      const grown = new Uint8Array(Math.max(needed, this.pending.length * 2));
      grown.set(this.pending.subarray(0, this.pendingLength));
      this.pending = grown;
    }
    this.pending.set(bytes.subarray(from), this.pendingLength);
    this.pendingLength = needed;
  }
}

/**
 * How many of the first `length` bytes can be decoded now: all but a trailing, still incomplete
 * UTF-8 sequence (a lead byte followed by fewer continuation bytes than it announces).
 */
export function completeLength(bytes: Uint8Array, length: number): number {
  for (let back = 1; back <= Math.min(4, length); back++) {
    const byte = bytes[length - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back for its lead
    const expected = byte >= 0xf0 && byte <= 0xf4 ? 4 : byte >= 0xe0 && byte <= 0xef ? 3 : byte >= 0xc2 && byte <= 0xdf ? 2 : 1;
    return expected > back ? length - back : length;
  }
  return length;
}
