/**
 * The Phi-3 / Phi-3.5 SentencePiece vocabulary (32,064 tokens), rebuilt offline.
 *
 * Ids 0–31999 are Meta's Llama-2 `tokenizer.model`, which npm `llama-tokenizer-js` ships as
 * `llama_vocab_base64`; the package only exposes it through its default tokenizer instance
 * (`vocabById`). Scores and types follow llama.cpp's `models/ggml-vocab-phi-3.gguf` exactly
 * (docs/MODELS.md "Vocabularies in GGUF form"):
 * - 0 `<unk>`, 1 `<s>`: CONTROL; 2 `</s>`: USER_DEFINED (Phi-3's config marks it non-special); score −1000.
 * - 3–258 `<0x00>`…`<0xFF>`: BYTE, score 0.
 * - 259–31999: NORMAL, score −(id − 259) — SentencePiece scores are merge priorities — except the
 *   16 whitespace-only pieces (`/^▁+$/`) that Meta's model scores −1e9.
 * - 32000–32010: Phi-3 added tokens, CONTROL, −1000.
 * - 32011–32063: `[PAD<id>]` rows, UNKNOWN (2), −10000 (newer converters write UNUSED (5)).
 */
import llamaTokenizer from "llama-tokenizer-js";

/** gguf-py `TokenType` values for `tokenizer.ggml.token_type`. */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

/** A SentencePiece vocabulary in GGUF form (`tokenizer.ggml.tokens/scores/token_type`). */
export interface SpmVocab {
  tokens: readonly string[];
  scores: Float32Array;
  types: Int32Array;
}

/** Well-known Phi-3 token ids. */
export const PHI3_TOKEN_IDS = {
  unk: 0,
  bos: 1,
  eos: 32000,
  pad: 32000,
  endOfText: 32000,
  assistant: 32001,
  system: 32006,
  end: 32007,
  user: 32010,
} as const;

/** Phi-3 vocabulary size (32000 base + 11 added + 53 padding rows). */
export const PHI3_VOCAB_SIZE = 32064;

/** Ids 32000–32010 in order (HF `added_tokens_decoder` of Phi-3/3.5-mini-instruct). */
const PHI3_ADDED_TOKENS = [
  "<|endoftext|>",
  "<|assistant|>",
  "<|placeholder1|>",
  "<|placeholder2|>",
  "<|placeholder3|>",
  "<|placeholder4|>",
  "<|system|>",
  "<|end|>",
  "<|placeholder5|>",
  "<|placeholder6|>",
  "<|user|>",
];

const LLAMA_BASE_SIZE = 32000;
const FIRST_NORMAL_ID = 259; // after <unk>, <s>, </s> and the 256 byte tokens
const WHITESPACE_ONLY = /^▁+$/;

let cached: SpmVocab | undefined;

/** Builds (once, then memoizes) the Phi-3 vocabulary. */
export function phi3Vocab(): SpmVocab {
  cached ??= buildPhi3Vocab();
  return cached;
}

function buildPhi3Vocab(): SpmVocab {
  const base = llamaTokenizer.vocabById;
  if (base.length !== LLAMA_BASE_SIZE || base[FIRST_NORMAL_ID] !== "▁▁") {
    throw new Error(`llama-tokenizer-js vocabulary is not Llama-2's (${base.length} pieces)`);
  }
  const tokens = [...base, ...PHI3_ADDED_TOKENS];
  while (tokens.length < PHI3_VOCAB_SIZE) tokens.push(`[PAD${tokens.length}]`);
  const scores = new Float32Array(PHI3_VOCAB_SIZE);
  const types = new Int32Array(PHI3_VOCAB_SIZE);
  for (let id = 0; id < PHI3_VOCAB_SIZE; id++) {
    const [type, score] = classify(id, tokens[id]!);
    types[id] = type;
    scores[id] = score;
  }
  return { tokens, scores, types };
}

/** Type and score of one id, per the rules in the module comment. */
function classify(id: number, piece: string): [TokenType, number] {
  if (id <= 1) return [TokenType.CONTROL, -1000];
  if (id === 2) return [TokenType.USER_DEFINED, -1000];
  if (id < FIRST_NORMAL_ID) return [TokenType.BYTE, 0];
  if (id < LLAMA_BASE_SIZE) return [TokenType.NORMAL, WHITESPACE_ONLY.test(piece) ? -1e9 : -(id - FIRST_NORMAL_ID)];
  if (id < LLAMA_BASE_SIZE + PHI3_ADDED_TOKENS.length) return [TokenType.CONTROL, -1000];
  return [TokenType.UNKNOWN, -10000];
}
