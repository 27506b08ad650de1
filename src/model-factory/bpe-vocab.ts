/**
 * Byte-level BPE vocabularies (`tokenizer.ggml.model = "gpt2"`) rebuilt offline from tiktoken
 * rank tables (docs/MODELS.md "Vocabularies in GGUF form").
 *
 * npm `js-tiktoken@1.0.21` ships `ranks/{cl100k_base,o200k_base}`: `{pat_str, special_tokens,
 * bpe_ranks}`, where `bpe_ranks` is lines of `"<tag> <startRank> <b64> <b64> …"` (consecutive
 * ranks from startRank). From a rank table we derive what a GGUF needs:
 * - token strings: each rank's bytes through GPT-2's byte-to-unicode map (`"Ġ"` = space, `"Ċ"` = `\n`);
 * - merges, the standard tiktoken → Hugging Face conversion: for each token of ≥ 2 bytes with
 *   rank r, replay BPE on its bytes using only pairs whose concatenation has rank < r (always the
 *   lowest-ranked pair) until two parts remain; those two parts form merge `"A B"`. Merges are
 *   emitted in rank order, so the merge list index is the priority llama.cpp uses.
 * cl100k gives 100000 merges starting `"Ġ Ġ", "ĠĠ ĠĠ", "i n", "Ġ t"` (as in phi-4 GGUFs), o200k
 * 199742 starting `"Ġ Ġ", "ĠĠ ĠĠ", "i n", "e r"` (as in Phi-4-mini GGUFs).
 *
 * Building is memoized per process (o200k takes about a second).
 */
import { createRequire } from "node:module";

/** The tiktoken encodings used by Phi models. */
export type TiktokenEncodingName = "cl100k_base" | "o200k_base";

/** A decoded tiktoken rank table. */
export interface TiktokenRanks {
  name: TiktokenEncodingName;
  /** tiktoken's pre-tokenization regex (JS `u` flag syntax). */
  patStr: string;
  /** tiktoken's own special tokens (ids above the mergeable ranks). */
  specialTokens: Readonly<Record<string, number>>;
  /** Bytes of each mergeable rank, indexed by rank; `undefined` for a rank the table skips. */
  pieces: ReadonlyArray<Uint8Array | undefined>;
}

/** The GGUF form of a rank table's mergeable ranks. */
export interface ByteLevelBpe {
  /** Token string of each rank (byte-to-unicode form); `undefined` for a skipped rank. */
  tokens: ReadonlyArray<string | undefined>;
  /** `"A B"` merges in priority order. */
  merges: readonly string[];
  /** 1 where a rank's bytes are valid UTF-8 on their own (a whole-characters piece of text). */
  wholeUtf8: Uint8Array;
}

interface RankFile {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

// The rank files are 1–2 MB of JS; load them only when a BPE vocabulary is actually built.
const require = createRequire(import.meta.url);
const RANK_MODULES: Record<TiktokenEncodingName, string> = {
  cl100k_base: "js-tiktoken/ranks/cl100k_base",
  o200k_base: "js-tiktoken/ranks/o200k_base",
};

const rankCache = new Map<TiktokenEncodingName, TiktokenRanks>();
const bpeCache = new Map<TiktokenEncodingName, ByteLevelBpe>();

/** Loads (once) and decodes a js-tiktoken rank table. */
export function tiktokenRanks(name: TiktokenEncodingName): TiktokenRanks {
  let ranks = rankCache.get(name);
  if (!ranks) {
    ranks = decodeRankFile(name, require(RANK_MODULES[name]) as RankFile);
    rankCache.set(name, ranks);
  }
  return ranks;
}

function decodeRankFile(name: TiktokenEncodingName, file: RankFile): TiktokenRanks {
  const pieces: Array<Uint8Array | undefined> = [];
  for (const line of file.bpe_ranks.split("\n")) {
    if (!line) continue;
    const [, start, ...encoded] = line.split(" ");
    const first = Number.parseInt(start!, 10);
    for (const [i, b64] of encoded.entries()) pieces[first + i] = new Uint8Array(Buffer.from(b64, "base64"));
  }
  return { name, patStr: file.pat_str, specialTokens: file.special_tokens, pieces };
}

let byteToUnicodeTable: readonly string[] | undefined;

/**
 * GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 onwards in byte order (so 0x20 → "Ġ", 0x0A → "Ċ").
 */
export function byteToUnicode(): readonly string[] {
  if (byteToUnicodeTable) return byteToUnicodeTable;
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  byteToUnicodeTable = table;
  return table;
}

/** Builds (once, then memoizes) tokens and merges for a tiktoken encoding. */
export function byteLevelBpe(name: TiktokenEncodingName): ByteLevelBpe {
  let bpe = bpeCache.get(name);
  if (!bpe) {
    bpe = buildByteLevelBpe(tiktokenRanks(name).pieces);
    bpeCache.set(name, bpe);
  }
  return bpe;
}

/** Tokens, merges and UTF-8 wholeness from rank-indexed byte pieces (see the module comment). */
export function buildByteLevelBpe(pieces: ReadonlyArray<Uint8Array | undefined>): ByteLevelBpe {
  const unicode = byteToUnicode();
  // Pieces keyed by their bytes as a Latin-1 string: one char per byte, cheap to concatenate.
  const keys: Array<string | undefined> = pieces.map((p) => (p ? Buffer.from(p.buffer, p.byteOffset, p.length).toString("latin1") : undefined));
  const rankOf = new Map<string, number>();
  for (const [rank, key] of keys.entries()) if (key !== undefined) rankOf.set(key, rank);
  const byteRank = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    const rank = rankOf.get(String.fromCharCode(b));
    if (rank === undefined) throw new Error(`BPE rank table lacks the single byte 0x${b.toString(16)}`);
    byteRank[b] = rank;
  }
  const replay = new BpeReplay(keys, rankOf, byteRank);
  const tokens: Array<string | undefined> = new Array(pieces.length);
  const wholeUtf8 = new Uint8Array(pieces.length);
  const merges: string[] = [];
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  for (const [rank, key] of keys.entries()) {
    if (key === undefined) continue;
    let token = "";
    for (let i = 0; i < key.length; i++) token += unicode[key.charCodeAt(i)]!;
    tokens[rank] = token;
    wholeUtf8[rank] = isWholeUtf8(utf8, pieces[rank]!) ? 1 : 0;
    if (key.length < 2) continue;
    // Both parts have lower ranks, so their token strings are already built.
    const [left, right] = replay.lastMerge(key, rank);
    merges.push(`${tokens[left]} ${tokens[right]}`);
  }
  return { tokens, merges, wholeUtf8 };
}

/**
 * BPE replay over rank ids. Every part is itself a token, so a part is its rank; "may parts a
 * and b merge" is the rank of their concatenated bytes, memoized in an open-addressing table
 * keyed by (a, b): far cheaper than hashing a fresh string per lookup (o200k: ~0.5 s vs ~1.3 s).
 */
class BpeReplay {
  private static readonly TABLE_BITS = 21;
  private readonly mask = (1 << BpeReplay.TABLE_BITS) - 1;
  private readonly slotA = new Int32Array(1 << BpeReplay.TABLE_BITS).fill(-1);
  private readonly slotB = new Int32Array(1 << BpeReplay.TABLE_BITS);
  private readonly slotRank = new Int32Array(1 << BpeReplay.TABLE_BITS);
  private used = 0;
  private parts = new Int32Array(256);
  private pairs = new Int32Array(256);

  constructor(
    private readonly keys: ReadonlyArray<string | undefined>,
    private readonly rankOf: ReadonlyMap<string, number>,
    private readonly byteRank: Int32Array,
  ) {}

  /** Rank of token a's bytes followed by token b's, or -1 if that is no token. */
  private concatRank(a: number, b: number): number {
    let h = ((Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 11) & this.mask;
    for (;;) {
      const slot = this.slotA[h]!;
      if (slot === -1) break;
      if (slot === a && this.slotB[h] === b) return this.slotRank[h]!;
      h = (h + 1) & this.mask;
    }
    const rank = this.rankOf.get(this.keys[a]! + this.keys[b]!) ?? -1;
    if (this.used < this.mask >>> 1) {
      // Keep the table at most half full; past that, just stop memoizing.
      this.slotA[h] = a;
      this.slotB[h] = b;
      this.slotRank[h] = rank;
      this.used++;
    }
    return rank;
  }

  /**
   * Replays BPE on `key` with only the ranks below `maxRank` (always merging the lowest-ranked
   * adjacent pair) and returns the ranks of the final two parts: the merge that makes `maxRank`.
   */
  lastMerge(key: string, maxRank: number): [number, number] {
    let n = key.length;
    if (this.parts.length < n) {
      this.parts = new Int32Array(n);
      this.pairs = new Int32Array(n);
    }
    const { parts, pairs } = this;
    const pairRank = (i: number): number => {
      const rank = this.concatRank(parts[i]!, parts[i + 1]!);
      return rank >= 0 && rank < maxRank ? rank : maxRank;
    };
    for (let i = 0; i < n; i++) parts[i] = this.byteRank[key.charCodeAt(i)]!;
    for (let i = 0; i + 1 < n; i++) pairs[i] = pairRank(i);
    while (n > 2) {
      let best = -1;
      let bestRank = maxRank;
      for (let i = 0; i + 1 < n; i++) {
        if (pairs[i]! < bestRank) {
          bestRank = pairs[i]!;
          best = i;
        }
      }
      if (best < 0) break;
      parts[best] = bestRank;
      parts.copyWithin(best + 1, best + 2, n);
      pairs.copyWithin(best, best + 1, n - 1);
      n--;
      if (best > 0) pairs[best - 1] = pairRank(best - 1);
      if (best + 1 < n) pairs[best] = pairRank(best);
    }
    if (n !== 2) throw new Error(`BPE rank ${maxRank} cannot be built from two lower-ranked parts`);
    return [parts[0]!, parts[1]!];
  }
}

function isWholeUtf8(decoder: TextDecoder, bytes: Uint8Array): boolean {
  try {
    decoder.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
