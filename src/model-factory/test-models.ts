/**
 * Seeded random-weight Phi models for tests and benchmarks.
 *
 * No model hub is reachable, so tests run against GGUFs built here: real llama.cpp architectures
 * and real tokenizers (so token ids and counts are exact), with deterministic weights (so greedy
 * output is reproducible). Weights are random, so the text is gibberish: test mechanics, not quality.
 *
 * Families (`TestModelOptions.family`):
 * - `phi3`: Phi-3.5-mini — arch `phi3`, Llama-2 SentencePiece vocab (32064), template T5.
 * - `phi4`: phi-4 (14B) — arch `phi3` with SWA 0 and rope base 250000, cl100k-based byte-level BPE
 *   (100352, pre-tokenizer `dbrx`), ChatML-style template T7b, eos `<|im_end|>`.
 * - `phi4-mini`: Phi-4-mini-instruct — arch `phi3` with partial rotary (rope dims = 0.75·head_dim)
 *   and tied embeddings (no `output.weight`), o200k-based BPE (200064, pre-tokenizer `gpt-4o`),
 *   template T8, eos `<|endoftext|>` (`<|end|>` is EOG by name in llama.cpp).
 * - `phimoe`: Phi-3.5-MoE-instruct — arch `phimoe` (separate Q/K/V with biases, biased norms and
 *   output, a softmax top-k router over stacked experts), Phi-3 SPM vocab, template T5.
 *
 * Weight init: every matrix is bell-shaped with std 1/sqrt(fan-in) (fan-in = ne0), which keeps
 * activations O(1) at any shape (0.125 for the 64-wide default, 0.018 at Phi-3-mini width); norm
 * weights are 1 and all biases 0. Only "emittable" tokens get a logit that can win: NORMAL tokens
 * whose bytes are whole UTF-8 text (plus Phi-4-mini's `<|tool_call|>`/`<|/tool_call|>`, which the
 * server's tool calling must see). Every other token — control, byte, padding, and BPE ranks that
 * are fragments of a UTF-8 sequence — has a logit of exactly 0, far below the best emittable token,
 * so a test model never emits `<|end|>`, `<|endoftext|>`, `<|im_end|>` or broken UTF-8 on its own
 * (use a logit bias to force an end), and its text is always whole UTF-8 pieces:
 * - untied families: those rows of `output.weight` are zero;
 * - tied `phi4-mini` (the output matrix is `token_embd`): the first embd/16 dims are "reserved":
 *   `output_norm.weight` is 0 there, emittable tokens' embeddings are random over all dims, and
 *   the others' embeddings are random over the reserved dims only. Their logits are then exactly 0
 *   while their input embeddings stay distinct and non-zero. Outside the reserved dims
 *   `output_norm.weight` is a random ±1 rather than 1: with tied embeddings the final hidden state
 *   still leans towards the current token's own embedding, and all-ones norms turn that into
 *   "repeat the last token forever"; random signs decorrelate the logits from the input token.
 *   Its `ffn_down` is also 2× stronger, against 2-cycles (see `TIED_FFN_DOWN_GAIN`).
 */
import { T5_PHI35_MINI, T7B_PHI4, T8_PHI4_MINI } from "../catalog/chat-templates.ts";
import { createHash, randomUUID } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GgmlType } from "./ggml-quants.ts";
import { gguf, writeGguf, type GgufFileSpec, type GgufTensorSpec, type GgufValue } from "./gguf-writer.ts";
import { PHI3_TOKEN_IDS, TokenType, phi3Vocab, type SpmVocab } from "./phi3-vocab.ts";
import { PHI4_MINI_TOKEN_IDS, PHI4_TOKEN_IDS, phi4MiniVocab, phi4Vocab, type BpeVocab } from "./phi4-vocab.ts";
import { SeededRandom, deriveSeed } from "./prng.ts";

/** The model families the factory can write (see the module comment). */
export type TestModelFamily = "phi3" | "phi4" | "phi4-mini" | "phimoe";

/** All families, in a stable order. */
export const TEST_MODEL_FAMILIES: readonly TestModelFamily[] = ["phi3", "phi4", "phi4-mini", "phimoe"];

/** Shape and encoding of a generated test model. Omitted fields take the tiny defaults. */
export interface TestModelOptions {
  family: TestModelFamily;
  /** Transformer blocks (`block_count`). Default 2. */
  layers?: number;
  /** Hidden size (`embedding_length`); a multiple of 32 for q8_0/q4_0. Default 64. */
  embd?: number;
  /** FFN inner size (`feed_forward_length`; per expert for phimoe); a multiple of 32 for q8_0/q4_0. Default 128. */
  ff?: number;
  /**
   * Attention heads; head_dim = embd/heads must be even (a multiple of 8 for phi4-mini, whose
   * rope dims are 0.75·head_dim; the other families rotate all of head_dim). Default 4.
   */
  heads?: number;
  /**
   * KV heads (GQA); divides heads. Default: = heads when heads is given, else the family's tiny
   * default (phi3 4 — Phi-3-mini has no GQA; phi4, phi4-mini and phimoe 2, as the real models use GQA).
   */
  headsKv?: number;
  /** `context_length` (also `rope.scaling.original_context_length`: no LongRoPE). Default 4096. */
  ctx?: number;
  /** Encoding of the 2-D/3-D weight matrices (1-D norms and biases stay F32). Default "q4_0": smallest and fastest to run. */
  quant?: "f16" | "q8_0" | "q4_0";
  /** PRNG seed for all weights. Default 42. */
  seed?: number;
  /**
   * `general.name`. Default: the family's model name + " (phiserve test model)". llama.cpp applies
   * Phi-3's special-token rstrip when the name contains "phi-3"/"phi3": keep that in phi3/phimoe
   * names, and never use it for phi4/phi4-mini (the rstrip code looks up `<s>`, which a BPE vocab
   * lacks, and the load fails).
   */
  name?: string;
  /** `tokenizer.chat_template`. Default: the family's template (phi3/phimoe T5, phi4 T7b, phi4-mini T8). */
  chatTemplate?: string;
  /**
   * `tokenizer.ggml.add_bos_token`. Default false, as in all four real models, whose templates
   * render no BOS: prompts are tokenized exactly as rendered, with no implicit BOS.
   */
  addBosToken?: boolean;
  /** `<arch>.attention.sliding_window`. Default 0 (no SWA; llama.cpp v0.5.0 ignores Phi SWA anyway). */
  slidingWindow?: number;
  /** phimoe only: `phimoe.expert_count`. Default 4 (Phi-3.5-MoE has 16); 0 for dense families. */
  experts?: number;
  /** phimoe only: `phimoe.expert_used_count`. Default 2 (as Phi-3.5-MoE); 0 for dense families. */
  expertsUsed?: number;
}

/** Options with every default applied. */
export type ResolvedTestModelOptions = Required<TestModelOptions>;

/** Defaults of the phi3 family: a ~3 MB model (most of it the two 32064-row vocab matrices) that loads in well under a second. */
export const TEST_MODEL_DEFAULTS: ResolvedTestModelOptions = {
  family: "phi3",
  layers: 2,
  embd: 64,
  ff: 128,
  heads: 4,
  headsKv: 4,
  ctx: 4096,
  quant: "q4_0",
  seed: 42,
  name: "Phi-3.5-mini-instruct (phiserve test model)",
  chatTemplate: T5_PHI35_MINI,
  addBosToken: false,
  slidingWindow: 0,
  experts: 0,
  expertsUsed: 0,
};

/** What differs from {@link TEST_MODEL_DEFAULTS} per family. */
const FAMILY_DEFAULTS: Record<TestModelFamily, Partial<ResolvedTestModelOptions>> = {
  phi3: {},
  phi4: { headsKv: 2, name: "Phi 4 (phiserve test model)", chatTemplate: T7B_PHI4 },
  "phi4-mini": { headsKv: 2, name: "Phi 4 mini instruct (phiserve test model)", chatTemplate: T8_PHI4_MINI },
  phimoe: { headsKv: 2, name: "Phi-3.5-MoE-instruct (phiserve test model)", chatTemplate: T5_PHI35_MINI, experts: 4, expertsUsed: 2 },
};

/** The tiny defaults of one family. */
export function testModelDefaults(family: TestModelFamily): ResolvedTestModelOptions {
  if (!TEST_MODEL_FAMILIES.includes(family)) throw new Error(`test model: unsupported family ${String(family)}`);
  return { ...TEST_MODEL_DEFAULTS, ...FAMILY_DEFAULTS[family], family };
}

/** Full Phi-3-mini dimensions (3.8B parameters, ~2.2 GB as q4_0), for benchmarks. */
export const PHI3_MINI_SHAPE: Partial<TestModelOptions> = {
  family: "phi3",
  embd: 3072,
  layers: 32,
  heads: 32,
  headsKv: 32,
  ff: 8192,
  ctx: 4096,
  quant: "q4_0",
};

/** Full Phi-4-mini dimensions (3.8B parameters, head_dim 128, rope dims 96, tied embeddings), for benchmarks. */
export const PHI4_MINI_SHAPE: Partial<TestModelOptions> = {
  family: "phi4-mini",
  embd: 3072,
  layers: 32,
  heads: 24,
  headsKv: 8,
  ff: 8192,
  ctx: 4096,
  quant: "q4_0",
};

/** Full phi-4 dimensions (14.7B parameters, ~8 GB as q4_0), for benchmarks. */
export const PHI4_SHAPE: Partial<TestModelOptions> = {
  family: "phi4",
  embd: 5120,
  layers: 40,
  heads: 40,
  headsKv: 10,
  ff: 17920,
  ctx: 16384,
  quant: "q4_0",
};

/**
 * Bump when the bytes produced for the same options change (weights, metadata, vocab), so
 * cached models are regenerated.
 */
const FACTORY_VERSION = 1;

const QUANT_TYPES = {
  f16: { type: GgmlType.F16, fileType: 1 },
  q8_0: { type: GgmlType.Q8_0, fileType: 7 },
  q4_0: { type: GgmlType.Q4_0, fileType: 2 },
} as const;

/** Per-family architecture constants (docs/MODELS.md "GGUF layout"). */
const ARCH = {
  phi3: { arch: "phi3", ropeFreqBase: 10000, rotaryFactor: 1, tied: false },
  phi4: { arch: "phi3", ropeFreqBase: 250000, rotaryFactor: 1, tied: false },
  "phi4-mini": { arch: "phi3", ropeFreqBase: 10000, rotaryFactor: 0.75, tied: true },
  phimoe: { arch: "phimoe", ropeFreqBase: 10000, rotaryFactor: 1, tied: false },
} as const satisfies Record<TestModelFamily, { arch: string; ropeFreqBase: number; rotaryFactor: number; tied: boolean }>;

/** Options as callers (CLI flags) pass them: an undefined value means "the default". */
export type TestModelOverrides = { [K in keyof TestModelOptions]?: TestModelOptions[K] | undefined };

/** Applies defaults and checks the shape is one llama.cpp can load. */
export function resolveTestModelOptions(options: TestModelOverrides = {}): ResolvedTestModelOptions {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<TestModelOptions>;
  const defaults = testModelDefaults(defined.family ?? TEST_MODEL_DEFAULTS.family);
  const o: ResolvedTestModelOptions = { ...defaults, ...defined, headsKv: defined.headsKv ?? defined.heads ?? defaults.headsKv };
  const ints: Array<keyof ResolvedTestModelOptions> = ["layers", "embd", "ff", "heads", "headsKv", "ctx"];
  for (const key of ints) {
    const v = o[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new Error(`test model: ${key} must be a positive integer`);
  }
  if (!(o.quant in QUANT_TYPES)) throw new Error(`test model: unsupported quant ${o.quant}`);
  if (o.embd % o.heads !== 0 || (o.embd / o.heads) % 2 !== 0) throw new Error("test model: embd/heads must be an even integer");
  if (ropeDims(o) % 2 !== 0 || !Number.isInteger(ropeDims(o))) throw new Error(`test model: ${o.family} needs head_dim (embd/heads) a multiple of 8`);
  if (o.heads % o.headsKv !== 0) throw new Error("test model: headsKv must divide heads");
  if (o.quant !== "f16" && (o.embd % 32 !== 0 || o.ff % 32 !== 0)) throw new Error(`test model: ${o.quant} needs embd and ff multiples of 32`);
  if (o.family === "phimoe") {
    if (!Number.isInteger(o.experts) || !Number.isInteger(o.expertsUsed) || o.expertsUsed < 1 || o.expertsUsed > o.experts) {
      throw new Error("test model: phimoe needs integer experts >= expertsUsed >= 1");
    }
  } else if (o.experts !== 0 || o.expertsUsed !== 0) {
    throw new Error(`test model: experts/expertsUsed apply to phimoe only, not ${o.family}`);
  }
  if ((o.family === "phi4" || o.family === "phi4-mini") && /phi-?3/i.test(o.name)) {
    throw new Error(`test model: a ${o.family} name must not contain "phi3"/"phi-3" (llama.cpp's Phi-3 rstrip rule needs an SPM vocab)`);
  }
  return o;
}

/** `rope.dimension_count`: int(partial_rotary_factor · embd) / heads, as `convert_hf_to_gguf.py` writes it. */
function ropeDims(o: ResolvedTestModelOptions): number {
  return (ARCH[o.family].rotaryFactor * o.embd) / o.heads;
}

/** Writes a test model to `outFile` (overwriting it). Generation is deterministic in the options. */
export async function writeTestModel(outFile: string, options: TestModelOptions): Promise<{ file: string; bytes: number }> {
  const o = resolveTestModelOptions(options);
  const { bytes } = await writeGguf(outFile, testModelFileSpec(o));
  return { file: outFile, bytes };
}

/** The complete GGUF description of a test model of any family. */
export function testModelFileSpec(o: ResolvedTestModelOptions): GgufFileSpec {
  switch (o.family) {
    case "phi3":
      return phi3FileSpec(o);
    case "phi4":
    case "phi4-mini":
      return phi4FileSpec(o);
    case "phimoe":
      return phimoeFileSpec(o);
  }
}

/** The complete GGUF description of a phi3 test model. */
export function phi3FileSpec(o: ResolvedTestModelOptions): GgufFileSpec {
  const vocab = phi3Vocab();
  const metadata = new Map<string, GgufValue>([...archMetadata(o), ...spmTokenizerMetadata(vocab, o)]);
  return { metadata, tensors: denseTensors(o, vocab.tokens.length, (id) => vocab.types[id] === TokenType.NORMAL) };
}

/** The complete GGUF description of a phi4 or phi4-mini test model (arch `phi3`, byte-level BPE). */
export function phi4FileSpec(o: ResolvedTestModelOptions): GgufFileSpec {
  if (o.family !== "phi4" && o.family !== "phi4-mini") throw new Error(`phi4FileSpec: family ${o.family}`);
  const mini = o.family === "phi4-mini";
  const vocab = mini ? phi4MiniVocab() : phi4Vocab();
  const ids = mini ? PHI4_MINI_TOKEN_IDS : undefined;
  // Emittable: whole-UTF-8 NORMAL ranks, plus (Phi-4-mini) the tool-call delimiters.
  const emittable = (id: number) => vocab.wholeUtf8[id] === 1 || (ids !== undefined && (id === ids.toolCall || id === ids.toolCallEnd));
  const metadata = new Map<string, GgufValue>([...archMetadata(o), ...bpeTokenizerMetadata(vocab, o)]);
  return { metadata, tensors: denseTensors(o, vocab.tokens.length, emittable) };
}

/** The complete GGUF description of a phimoe test model. */
export function phimoeFileSpec(o: ResolvedTestModelOptions): GgufFileSpec {
  const vocab = phi3Vocab();
  const metadata = new Map<string, GgufValue>([...archMetadata(o), ...spmTokenizerMetadata(vocab, o)]);
  return { metadata, tensors: phimoeTensors(o, vocab) };
}

/** `general.*` and `<arch>.*` keys (docs/MODELS.md "GGUF layout"; `conversion/phi.py` Phi3MiniModel, PhiMoeModel). */
function archMetadata(o: ResolvedTestModelOptions): Map<string, GgufValue> {
  const { arch, ropeFreqBase } = ARCH[o.family];
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", gguf.string(arch)],
    ["general.name", gguf.string(o.name)],
    ["general.description", gguf.string(`Random weights (seed ${o.seed}) from phiserve model-factory v${FACTORY_VERSION}; not a trained model`)],
    ["general.file_type", gguf.uint32(QUANT_TYPES[o.quant].fileType)],
    ["general.quantization_version", gguf.uint32(2)],
    [`${arch}.context_length`, gguf.uint32(o.ctx)],
    [`${arch}.rope.scaling.original_context_length`, gguf.uint32(o.ctx)],
    [`${arch}.embedding_length`, gguf.uint32(o.embd)],
    [`${arch}.feed_forward_length`, gguf.uint32(o.ff)],
    [`${arch}.block_count`, gguf.uint32(o.layers)],
    [`${arch}.attention.head_count`, gguf.uint32(o.heads)],
    [`${arch}.attention.head_count_kv`, gguf.uint32(o.headsKv)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.float32(1e-5)],
    [`${arch}.rope.dimension_count`, gguf.uint32(ropeDims(o))],
    [`${arch}.rope.freq_base`, gguf.float32(ropeFreqBase)],
    [`${arch}.attention.sliding_window`, gguf.uint32(o.slidingWindow)],
  ]);
  if (o.family === "phimoe") {
    metadata.set(`${arch}.expert_used_count`, gguf.uint32(o.expertsUsed));
    metadata.set(`${arch}.expert_count`, gguf.uint32(o.experts));
  }
  return metadata;
}

/**
 * `tokenizer.*` keys of a SentencePiece (`"llama"`) vocabulary with Phi-3's special ids
 * (docs/MODELS.md "Vocabularies in GGUF form").
 */
function spmTokenizerMetadata(vocab: SpmVocab, o: ResolvedTestModelOptions): Map<string, GgufValue> {
  return new Map<string, GgufValue>([
    ["tokenizer.ggml.model", gguf.string("llama")],
    ["tokenizer.ggml.pre", gguf.string("default")],
    ["tokenizer.ggml.tokens", gguf.stringArray(vocab.tokens)],
    ["tokenizer.ggml.scores", gguf.float32Array(vocab.scores)],
    ["tokenizer.ggml.token_type", gguf.int32Array(vocab.types)],
    ["tokenizer.ggml.bos_token_id", gguf.uint32(PHI3_TOKEN_IDS.bos)],
    ["tokenizer.ggml.eos_token_id", gguf.uint32(PHI3_TOKEN_IDS.eos)],
    ["tokenizer.ggml.unknown_token_id", gguf.uint32(PHI3_TOKEN_IDS.unk)],
    ["tokenizer.ggml.padding_token_id", gguf.uint32(PHI3_TOKEN_IDS.pad)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(o.addBosToken)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
    ["tokenizer.chat_template", gguf.string(o.chatTemplate)],
  ]);
}

/**
 * Pre-tokenizer names llama.cpp v0.5.0 maps to the right regex: `dbrx` (the llama-3/cl100k
 * regex; what the converter's hash check yields for cl100k tokenizers such as phi-4's) and
 * `gpt-4o` (the o200k regex, Phi-4-mini). Both keep merges in use (unlike `llama-bpe`, which also
 * forces add-BOS).
 */
export const BPE_PRE_TOKENIZERS = { phi4: "dbrx", "phi4-mini": "gpt-4o" } as const;

/**
 * Special ids of the BPE families. phi-4: bos `<|endoftext|>`; eos `<|im_end|>` as in the current
 * HF config (the release config had eos = bos = 100257; both are EOG in llama.cpp by name either
 * way); pad `<|dummy_85|>`. Phi-4-mini: bos = eos = unk = pad = `<|endoftext|>` (its GGUFs);
 * `<|end|>` ends turns and is EOG by name.
 */
export const BPE_SPECIAL_IDS = {
  phi4: { bos: PHI4_TOKEN_IDS.endOfText, eos: PHI4_TOKEN_IDS.imEnd, pad: PHI4_TOKEN_IDS.pad, unk: undefined },
  "phi4-mini": { bos: PHI4_MINI_TOKEN_IDS.endOfText, eos: PHI4_MINI_TOKEN_IDS.endOfText, pad: PHI4_MINI_TOKEN_IDS.endOfText, unk: PHI4_MINI_TOKEN_IDS.endOfText },
} as const;

/** `tokenizer.*` keys of a byte-level BPE (`"gpt2"`) vocabulary (docs/MODELS.md "Vocabularies in GGUF form"). */
function bpeTokenizerMetadata(vocab: BpeVocab, o: ResolvedTestModelOptions): Map<string, GgufValue> {
  if (o.family !== "phi4" && o.family !== "phi4-mini") throw new Error(`no BPE vocabulary for ${o.family}`);
  const ids = BPE_SPECIAL_IDS[o.family];
  const metadata = new Map<string, GgufValue>([
    ["tokenizer.ggml.model", gguf.string("gpt2")],
    ["tokenizer.ggml.pre", gguf.string(BPE_PRE_TOKENIZERS[o.family])],
    ["tokenizer.ggml.tokens", gguf.stringArray(vocab.tokens)],
    ["tokenizer.ggml.token_type", gguf.int32Array(vocab.types)],
    ["tokenizer.ggml.merges", gguf.stringArray(vocab.merges)],
    ["tokenizer.ggml.bos_token_id", gguf.uint32(ids.bos)],
    ["tokenizer.ggml.eos_token_id", gguf.uint32(ids.eos)],
  ]);
  if (ids.unk !== undefined) metadata.set("tokenizer.ggml.unknown_token_id", gguf.uint32(ids.unk));
  metadata.set("tokenizer.ggml.padding_token_id", gguf.uint32(ids.pad));
  metadata.set("tokenizer.ggml.add_bos_token", gguf.bool(o.addBosToken));
  metadata.set("tokenizer.ggml.add_eos_token", gguf.bool(false));
  metadata.set("tokenizer.chat_template", gguf.string(o.chatTemplate));
  return metadata;
}

/** How a tensor's values are generated. */
type TensorInit =
  | { kind: "constant"; value: number }
  /** Random ±1 per element, except 0 in the first `zeroUntil` columns of every row. */
  | { kind: "signs"; zeroUntil: number }
  | {
      kind: "random";
      std: number;
      /** Rows to zero entirely. */
      zeroRow?: (row: number) => boolean;
      /** Rows to keep only in their first `dims` columns (zero after). */
      reservedOnly?: { dims: number; row: (row: number) => boolean };
    };

/** Builds tensor specs for one model: 1-D tensors are F32, the rest use the model's quant type. */
function tensorFactory(o: ResolvedTestModelOptions) {
  const wType = QUANT_TYPES[o.quant].type;
  const spec = (name: string, dims: number[], init: TensorInit, type = dims.length === 1 ? GgmlType.F32 : wType): GgufTensorSpec => {
    return { name, dims, type, data: () => tensorValues(deriveSeed(o.seed, name), dims, init) };
  };
  const fanIn = (n: number): TensorInit & { kind: "random" } => ({ kind: "random", std: 1 / Math.sqrt(n) });
  return { spec, fanIn, ones: { kind: "constant", value: 1 } as TensorInit, zeros: { kind: "constant", value: 0 } as TensorInit };
}

/**
 * Dims at the start of the hidden state that tied-embedding models keep out of the logits (see
 * the module comment): embd/16, at least 2.
 */
function reservedDims(o: ResolvedTestModelOptions): number {
  return Math.max(2, Math.floor(o.embd / 16));
}

/**
 * Tensors of the `phi3` architecture (phi3, phi4, phi4-mini; docs/MODELS.md "GGUF layout"): fused QKV and
 * fused gate‖up FFN, RMS norms without bias; `output.weight` omitted when embeddings are tied.
 */
function denseTensors(o: ResolvedTestModelOptions, nVocab: number, emittable: (id: number) => boolean): GgufTensorSpec[] {
  const nEmbdGqa = (o.embd / o.heads) * o.headsKv;
  const { spec, fanIn, ones } = tensorFactory(o);
  const tensors: GgufTensorSpec[] = [];
  const tied = ARCH[o.family].tied;
  const ffnDownGain = tied ? TIED_FFN_DOWN_GAIN : 1;
  if (tied) {
    const reserved = reservedDims(o);
    tensors.push(
      spec("token_embd.weight", [o.embd, nVocab], { kind: "random", std: TOKEN_EMBD_STD, reservedOnly: { dims: reserved, row: (id) => !emittable(id) } }),
      spec("output_norm.weight", [o.embd], { kind: "signs", zeroUntil: reserved }),
    );
  } else {
    tensors.push(
      spec("token_embd.weight", [o.embd, nVocab], { kind: "random", std: TOKEN_EMBD_STD }),
      spec("output_norm.weight", [o.embd], ones),
      spec("output.weight", [o.embd, nVocab], { ...fanIn(o.embd), zeroRow: (id) => !emittable(id) }),
    );
  }
  for (let i = 0; i < o.layers; i++) {
    tensors.push(
      spec(`blk.${i}.attn_norm.weight`, [o.embd], ones),
      spec(`blk.${i}.attn_qkv.weight`, [o.embd, o.embd + 2 * nEmbdGqa], fanIn(o.embd)),
      spec(`blk.${i}.attn_output.weight`, [o.embd, o.embd], fanIn(o.embd)),
      spec(`blk.${i}.ffn_norm.weight`, [o.embd], ones),
      spec(`blk.${i}.ffn_up.weight`, [o.embd, 2 * o.ff], fanIn(o.embd)),
      spec(`blk.${i}.ffn_down.weight`, [o.ff, o.embd], { kind: "random", std: ffnDownGain / Math.sqrt(o.ff) }),
    );
  }
  return tensors;
}

/**
 * Tensors of the `phimoe` architecture, as llama.cpp v0.5.0 `src/models/phimoe.cpp` requires them
 * and `PhiMoeModel` converts Phi-3.5-MoE: separate Q/K/V with biases (the HF model has
 * attention_bias), biases on every norm, the attention output and the output; per layer a router
 * `ffn_gate_inp` {embd, experts} (F32, as llama.cpp's quantizer keeps it) and the experts' SwiGLU
 * weights stacked into 3-D tensors {embd, ff, experts} / {ff, embd, experts}.
 */
function phimoeTensors(o: ResolvedTestModelOptions, vocab: SpmVocab): GgufTensorSpec[] {
  const nVocab = vocab.tokens.length;
  const nEmbdGqa = (o.embd / o.heads) * o.headsKv;
  const { spec, fanIn, ones, zeros } = tensorFactory(o);
  const tensors = [
    spec("token_embd.weight", [o.embd, nVocab], { kind: "random", std: TOKEN_EMBD_STD }),
    spec("output_norm.weight", [o.embd], ones),
    spec("output_norm.bias", [o.embd], zeros),
    spec("output.weight", [o.embd, nVocab], { ...fanIn(o.embd), zeroRow: (id) => vocab.types[id] !== TokenType.NORMAL }),
    spec("output.bias", [nVocab], zeros),
  ];
  for (let i = 0; i < o.layers; i++) {
    const blk = `blk.${i}`;
    tensors.push(
      spec(`${blk}.attn_norm.weight`, [o.embd], ones),
      spec(`${blk}.attn_norm.bias`, [o.embd], zeros),
      spec(`${blk}.attn_q.weight`, [o.embd, o.embd], fanIn(o.embd)),
      spec(`${blk}.attn_q.bias`, [o.embd], zeros),
      spec(`${blk}.attn_k.weight`, [o.embd, nEmbdGqa], fanIn(o.embd)),
      spec(`${blk}.attn_k.bias`, [nEmbdGqa], zeros),
      spec(`${blk}.attn_v.weight`, [o.embd, nEmbdGqa], fanIn(o.embd)),
      spec(`${blk}.attn_v.bias`, [nEmbdGqa], zeros),
      spec(`${blk}.attn_output.weight`, [o.embd, o.embd], fanIn(o.embd)),
      spec(`${blk}.attn_output.bias`, [o.embd], zeros),
      spec(`${blk}.ffn_norm.weight`, [o.embd], ones),
      spec(`${blk}.ffn_norm.bias`, [o.embd], zeros),
      spec(`${blk}.ffn_gate_inp.weight`, [o.embd, o.experts], fanIn(o.embd), GgmlType.F32),
      spec(`${blk}.ffn_gate_exps.weight`, [o.embd, o.ff, o.experts], fanIn(o.embd)),
      spec(`${blk}.ffn_down_exps.weight`, [o.ff, o.embd, o.experts], fanIn(o.ff)),
      spec(`${blk}.ffn_up_exps.weight`, [o.embd, o.ff, o.experts], fanIn(o.embd)),
    );
  }
  return tensors;
}

/**
 * Token embeddings are RMS-normalized before use, so their scale only sets how much the current
 * token dominates the residual stream versus attention over the context. 1 keeps both in play,
 * which makes greedy output context-dependent (varied) rather than a fixed token-to-token map.
 */
const TOKEN_EMBD_STD = 1;

/**
 * With tied embeddings, the current token's embedding reaches the logits through the residual
 * stream as a symmetric score (logit of y after x ≈ Σ_d norm_d·E[x]_d·E[y]_d = same for x after
 * y), so greedy decoding falls into 2-cycles ("A B A B …"). A 2× stronger `ffn_down` lets the
 * per-token, non-symmetric FFN output dominate that path: over 24 prompts × seeds, greedy output
 * then is as varied as the untied families' (~24 distinct tokens of 24, versus 21 with some
 * collapsing to 3 distinct of 8 at gain 1).
 */
const TIED_FFN_DOWN_GAIN = 2;
const CHUNK_ELEMENTS = 1 << 20;

/** Yields a tensor's values in whole rows of at most ~1M elements, reusing one buffer. */
function* tensorValues(seed: number, dims: readonly number[], init: TensorInit): Generator<Float32Array> {
  const rowLength = dims[0]!;
  const rows = dims.slice(1).reduce((n, d) => n * d, 1);
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / rowLength));
  const buffer = new Float32Array(rowsPerChunk * rowLength);
  const random = new SeededRandom(seed);
  for (let row = 0; row < rows; row += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - row);
    const chunk = buffer.subarray(0, n * rowLength);
    if (init.kind === "constant") {
      chunk.fill(init.value);
    } else if (init.kind === "signs") {
      for (let i = 0; i < chunk.length; i++) chunk[i] = i % rowLength < init.zeroUntil ? 0 : random.nextU32() & 1 ? 1 : -1;
    } else {
      random.fillNormalish(chunk, init.std);
      if (init.zeroRow) zeroRows(chunk, rowLength, row, init.zeroRow, 0);
      if (init.reservedOnly) zeroRows(chunk, rowLength, row, init.reservedOnly.row, init.reservedOnly.dims);
    }
    yield chunk;
  }
}

/** Zeroes the selected rows from column `from` on. */
function zeroRows(chunk: Float32Array, rowLength: number, firstRow: number, zeroRow: (row: number) => boolean, from: number): void {
  for (let r = 0; r * rowLength < chunk.length; r++) {
    if (zeroRow(firstRow + r)) chunk.fill(0, r * rowLength + from, (r + 1) * rowLength);
  }
}

/** `<repo>/.cache/test-models` (git-ignored). */
export const TEST_MODEL_CACHE_DIR = fileURLToPath(new URL("../../.cache/test-models/", import.meta.url));

const pending = new Map<string, Promise<string>>();

/**
 * Returns the path of a cached test model for these options (tiny defaults), generating it on
 * first use. The file name carries a hash of the resolved options and the factory version.
 * Safe across concurrent test processes: each writes a private temp file and renames it.
 */
export async function ensureTestModel(options: Partial<TestModelOptions> = {}): Promise<string> {
  const o = resolveTestModelOptions(options);
  const file = join(TEST_MODEL_CACHE_DIR, testModelFileName(o));
  let promise = pending.get(file);
  if (!promise) {
    promise = generateIfMissing(file, o);
    pending.set(file, promise);
    promise.catch(() => pending.delete(file));
  }
  return promise;
}

/** Cache file name: readable shape plus a hash of everything that affects the bytes. */
export function testModelFileName(o: ResolvedTestModelOptions): string {
  const canonical = JSON.stringify({ version: FACTORY_VERSION, ...o }, Object.keys({ version: 0, ...o }).sort());
  const hash = createHash("sha256").update(canonical).digest("hex").slice(0, 16);
  return `${o.family}-${o.layers}L-${o.embd}e-${o.quant}-${hash}.gguf`;
}

async function generateIfMissing(file: string, o: ResolvedTestModelOptions): Promise<string> {
  const existing = await stat(file).catch(() => undefined);
  if (existing?.isFile() && existing.size > 0) return file;
  await mkdir(TEST_MODEL_CACHE_DIR, { recursive: true });
  const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  try {
    await writeTestModel(temp, o);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return file;
}
