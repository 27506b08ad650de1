/**
 * Hugging Face `tokenizer.json` / `tokenizer_config.json` / `special_tokens_map.json` for
 * Phi-3-vision, built from our rebuilt Phi-3 SentencePiece vocabulary ({@link phi3Vocab}).
 *
 * The shape is what transformers' `LlamaConverter` writes for a SentencePiece BPE model
 * (docs/VISION.md "Test model"): a `BPE` model with `byte_fallback` and `fuse_unk`, the 32000
 * base pieces as its vocab, and merges derived from the piece scores the way
 * `SentencePieceExtractor.extract(vocab_scores)` does it: for every piece (in id order), every
 * split into two pieces that are both in the vocab, ordered by (left id, right id); then all
 * merges stably sorted by the piece's score, highest first. Normalizer: prepend `▁`, spaces →
 * `▁`; no pre-tokenizer; decoder: `▁` → space, byte fallback, fuse, strip one leading space;
 * post-processor: BOS (`<s>`) before each sequence. Added tokens: ids 0, 1, 2 and Phi-3-vision's
 * 32000–32044 (`<|image|>` = 32044) with its flags.
 */
import { PHI3_TOKEN_IDS, phi3Vocab } from "./phi3-vocab.ts";

/** Id of `<|image|>`, the last of Phi-3-vision's added tokens. */
export const PHI3V_IMAGE_TOKEN_ID = 32044;

/** Phi-3-vision's chat template (tokenizer_config.json `chat_template`). */
export const PHI3V_CHAT_TEMPLATE =
  "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}{% endfor %}" +
  "{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{- '<|assistant|>\n' -}}{% endif %}";

/** One entry of `added_tokens` in tokenizer.json. */
export interface HfAddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

const BASE_VOCAB_SIZE = 32000;

/**
 * Phi-3-vision's added tokens: `<unk>`, `<s>` (special), `</s>` (rstrip, not special: Phi-3
 * treats it as text), then 32000–32044. `rstrip` is set on `<|assistant|>`, the placeholders and
 * `<|image|>`, not on `<|endoftext|>`, `<|system|>`, `<|end|>`, `<|user|>`.
 */
export function phi3vAddedTokens(): HfAddedToken[] {
  const vocab = phi3Vocab();
  const token = (id: number, content: string, rstrip: boolean, special = true): HfAddedToken => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip,
    normalized: false,
    special,
  });
  const tokens = [token(0, "<unk>", false), token(1, "<s>", false), token(2, "</s>", true, false)];
  const noRstrip = new Set(["<|endoftext|>", "<|system|>", "<|end|>", "<|user|>"]);
  for (let id = BASE_VOCAB_SIZE; id <= PHI3V_IMAGE_TOKEN_ID; id++) {
    const content = id === PHI3V_IMAGE_TOKEN_ID ? "<|image|>" : phi3vAddedContent(id, vocab.tokens[id]!);
    tokens.push(token(id, content, !noRstrip.has(content)));
  }
  return tokens;
}

/** Phi-3 names 32000–32010; Phi-3-vision continues the placeholders from 7 at 32011. */
function phi3vAddedContent(id: number, phi3Piece: string): string {
  if (id <= PHI3_TOKEN_IDS.user) return phi3Piece;
  return `<|placeholder${id - PHI3_TOKEN_IDS.user + 6}|>`;
}

/** Merges of the BPE model, as "left right" strings (see the module comment). */
export function phi3Merges(): string[] {
  const { tokens, scores } = phi3Vocab();
  const idOf = new Map<string, number>();
  for (let id = 0; id < BASE_VOCAB_SIZE; id++) idOf.set(tokens[id]!, id);
  const merges: { left: string; right: string; score: number; order: number }[] = [];
  for (let id = 0; id < BASE_VOCAB_SIZE; id++) {
    // Python slices strings by code point, so split by code point too.
    const chars = Array.from(tokens[id]!);
    const local: { left: string; right: string; l: number; r: number }[] = [];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join("");
      const right = chars.slice(i).join("");
      const l = idOf.get(left);
      const r = idOf.get(right);
      if (l !== undefined && r !== undefined) local.push({ left, right, l, r });
    }
    local.sort((a, b) => a.l - b.l || a.r - b.r);
    for (const m of local) merges.push({ left: m.left, right: m.right, score: scores[id]!, order: merges.length });
  }
  merges.sort((a, b) => b.score - a.score || a.order - b.order);
  return merges.map((m) => `${m.left} ${m.right}`);
}

/** The full tokenizer.json object. */
export function phi3vTokenizerJson(): Record<string, unknown> {
  const { tokens } = phi3Vocab();
  const vocab: Record<string, number> = {};
  for (let id = 0; id < BASE_VOCAB_SIZE; id++) vocab[tokens[id]!] = id;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: phi3vAddedTokens(),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [PHI3_TOKEN_IDS.bos], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: phi3Merges(),
    },
  };
}

/** tokenizer_config.json (Phi-3-vision's, minus the Python processor's `auto_map`). */
export function phi3vTokenizerConfig(options: { modelMaxLength: number }): Record<string, unknown> {
  const addedTokensDecoder: Record<string, Omit<HfAddedToken, "id">> = {};
  for (const { id, ...rest } of phi3vAddedTokens()) addedTokensDecoder[String(id)] = rest;
  return {
    add_bos_token: true,
    add_eos_token: false,
    add_prefix_space: null,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ["<|system|>", "<|end|>", "<|user|>", "<|end|>"],
    bos_token: "<s>",
    chat_template: PHI3V_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: "<|endoftext|>",
    legacy: false,
    model_max_length: options.modelMaxLength,
    pad_token: "<|endoftext|>",
    padding_side: "right",
    sp_model_kwargs: {},
    tokenizer_class: "LlamaTokenizer",
    unk_token: "<unk>",
    use_default_system_prompt: false,
  };
}

/** special_tokens_map.json (Phi-3-vision's). */
export function phi3vSpecialTokensMap(): Record<string, unknown> {
  const token = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  return {
    additional_special_tokens: ["<|system|>", "<|end|>", "<|user|>", "<|end|>"],
    bos_token: token("<s>"),
    eos_token: token("<|endoftext|>"),
    pad_token: token("<|endoftext|>"),
    unk_token: token("<unk>"),
  };
}
