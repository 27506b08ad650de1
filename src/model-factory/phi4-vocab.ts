/**
 * The Phi-4 (cl100k-based, 100352) and Phi-4-mini (o200k-based, 200064) byte-level BPE
 * vocabularies in GGUF form, rebuilt offline from js-tiktoken's rank tables
 * (docs/MODELS.md "Vocabularies in GGUF form").
 *
 * Types follow `convert_hf_to_gguf.py` `get_vocab_base`: mergeable ranks NORMAL (1), special
 * added tokens CONTROL (3), non-special added tokens USER_DEFINED (4), ids without a token
 * `[PAD{id}]` UNUSED (5). Deliberate choices:
 * - phi-4: every added token (ids 100256–100351: `<|dummy_N|>`, `<|endoftext|>`, FIM, ChatML) is CONTROL.
 * - Phi-4-mini: `<|tool|>`/`<|/tool|>` (200023/200024) are USER_DEFINED, as HF's config has them
 *   non-special. `<|tool_call|>`/`<|/tool_call|>` (200025/200026) are CONTROL: HF ships them
 *   non-special but onnxruntime-genai's docs tell users to flip them to special so they encode
 *   and decode as single tokens, and phiserve's tool calling detects them as such. (Note: the
 *   current llama.cpp converter marks any added `<|…|>` token CONTROL via
 *   `does_token_look_special`, so a freshly converted GGUF may also have 200023/200024 CONTROL.)
 * - Phi-4-mini ids 199998, 200000–200017 and 200027–200063 have no verified names: `[PAD{id}]`.
 */
import { byteLevelBpe, type TiktokenEncodingName } from "./bpe-vocab.ts";
import { TokenType } from "./phi3-vocab.ts";

/** A byte-level BPE vocabulary in GGUF form (`tokenizer.ggml.tokens/token_type/merges`). */
export interface BpeVocab {
  tokens: readonly string[];
  types: Int32Array;
  merges: readonly string[];
  /** 1 where the token is a NORMAL rank whose bytes are whole UTF-8 text (safe to emit alone). */
  wholeUtf8: Uint8Array;
}

/** Well-known phi-4 token ids (docs/MODELS.md "Vocabularies in GGUF form"). */
export const PHI4_TOKEN_IDS = {
  dummy0: 100256,
  endOfText: 100257,
  fimPrefix: 100258,
  fimMiddle: 100259,
  fimSuffix: 100260,
  imStart: 100264,
  imEnd: 100265,
  imSep: 100266,
  endOfPrompt: 100276,
  /** `<|dummy_85|>`: `pad_token` of the current HF config. */
  pad: 100349,
} as const;

/** phi-4 vocabulary size (100256 cl100k ranks + 96 added tokens). */
export const PHI4_VOCAB_SIZE = 100352;

/** Well-known Phi-4-mini token ids (docs/MODELS.md "Tokenizers and stop tokens"). */
export const PHI4_MINI_TOKEN_IDS = {
  endOfText: 199999,
  endOfPrompt: 200018,
  assistant: 200019,
  end: 200020,
  user: 200021,
  system: 200022,
  tool: 200023,
  toolEnd: 200024,
  toolCall: 200025,
  toolCallEnd: 200026,
} as const;

/** Phi-4-mini vocabulary size (199998 o200k ranks + added tokens and padding). */
export const PHI4_MINI_VOCAB_SIZE = 200064;

type AddedTokens = ReadonlyMap<number, { text: string; type: TokenType }>;

/**
 * phi-4's added tokens: torchtune's `phi4/_tokenizer.py` table (docs/MODELS.md "Vocabularies in GGUF
 * form"), all CONTROL.
 */
function phi4AddedTokens(): AddedTokens {
  const named: Record<number, string> = {
    100257: "<|endoftext|>",
    100258: "<|fim_prefix|>",
    100259: "<|fim_middle|>",
    100260: "<|fim_suffix|>",
    100264: "<|im_start|>",
    100265: "<|im_end|>",
    100266: "<|im_sep|>",
    100276: "<|endofprompt|>",
  };
  const added = new Map<number, { text: string; type: TokenType }>();
  let dummy = 0;
  for (let id = PHI4_TOKEN_IDS.dummy0; id < PHI4_VOCAB_SIZE; id++) {
    added.set(id, { text: named[id] ?? `<|dummy_${dummy++}|>`, type: TokenType.CONTROL });
  }
  return added;
}

/** Phi-4-mini's added tokens (docs/MODELS.md "Tokenizers and stop tokens"); see the module comment for the types. */
function phi4MiniAddedTokens(): AddedTokens {
  const ids = PHI4_MINI_TOKEN_IDS;
  const control = (text: string) => ({ text, type: TokenType.CONTROL });
  const userDefined = (text: string) => ({ text, type: TokenType.USER_DEFINED });
  return new Map<number, { text: string; type: TokenType }>([
    [ids.endOfText, control("<|endoftext|>")],
    [ids.endOfPrompt, control("<|endofprompt|>")],
    [ids.assistant, control("<|assistant|>")],
    [ids.end, control("<|end|>")],
    [ids.user, control("<|user|>")],
    [ids.system, control("<|system|>")],
    [ids.tool, userDefined("<|tool|>")],
    [ids.toolEnd, userDefined("<|/tool|>")],
    [ids.toolCall, control("<|tool_call|>")],
    [ids.toolCallEnd, control("<|/tool_call|>")],
  ]);
}

const cache = new Map<string, BpeVocab>();

/** The phi-4 vocabulary (built once per process). */
export function phi4Vocab(): BpeVocab {
  return memo("phi4", () => buildBpeVocab("cl100k_base", PHI4_VOCAB_SIZE, phi4AddedTokens()));
}

/** The Phi-4-mini vocabulary (built once per process; about a second for the o200k merges). */
export function phi4MiniVocab(): BpeVocab {
  return memo("phi4-mini", () => buildBpeVocab("o200k_base", PHI4_MINI_VOCAB_SIZE, phi4MiniAddedTokens()));
}

function memo(key: string, build: () => BpeVocab): BpeVocab {
  let vocab = cache.get(key);
  if (!vocab) {
    vocab = build();
    cache.set(key, vocab);
  }
  return vocab;
}

/** Mergeable ranks, then the added tokens at their ids, `[PAD{id}]` everywhere else. */
function buildBpeVocab(encoding: TiktokenEncodingName, size: number, added: AddedTokens): BpeVocab {
  const base = byteLevelBpe(encoding);
  const tokens: string[] = new Array(size);
  const types = new Int32Array(size);
  const wholeUtf8 = new Uint8Array(size);
  for (let id = 0; id < size; id++) {
    const rankToken = base.tokens[id];
    const extra = added.get(id);
    if (rankToken !== undefined && extra) throw new Error(`${encoding}: added token ${extra.text} collides with rank ${id}`);
    if (rankToken !== undefined) {
      tokens[id] = rankToken;
      types[id] = TokenType.NORMAL;
      wholeUtf8[id] = base.wholeUtf8[id]!;
    } else if (extra) {
      tokens[id] = extra.text;
      types[id] = extra.type;
    } else {
      tokens[id] = `[PAD${id}]`;
      types[id] = TokenType.UNUSED;
    }
  }
  if (base.tokens.length > size) throw new Error(`${encoding}: ${base.tokens.length} ranks exceed vocab size ${size}`);
  return { tokens, types, merges: base.merges, wholeUtf8 };
}
