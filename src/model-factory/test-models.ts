/**
 * Seeded random-weight Phi models for tests and benchmarks.
 *
 * No model hub is reachable, so tests run against GGUFs built here: the real `phi3`
 * architecture (llama.cpp loads and runs them like a real Phi-3.5-mini), the real Phi-3
 * tokenizer (so token ids and counts are exact), and deterministic weights (so greedy output is
 * reproducible). Weights are random, so the text is gibberish: test mechanics, not quality.
 *
 * Weight init: every matrix is bell-shaped with std 1/sqrt(fan-in) (fan-in = ne0), which keeps
 * activations O(1) at any shape (0.125 for the 64-wide default, 0.018 at Phi-3-mini width); norms
 * are 1. Rows of `output.weight` for non-NORMAL tokens (control, bytes, padding) are zero, so
 * those logits sit far below the best normal token: a test model never emits `<|end|>`,
 * `<|endoftext|>` or raw byte tokens on its own (use a logit bias to force an end), and its text
 * is always whole UTF-8 pieces.
 */
import { T5_PHI35_MINI } from "../catalog/chat-templates.ts";
import { createHash, randomUUID } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GgmlType } from "./ggml-quants.ts";
import { gguf, writeGguf, type GgufFileSpec, type GgufTensorSpec, type GgufValue } from "./gguf-writer.ts";
import { PHI3_TOKEN_IDS, TokenType, phi3Vocab, type SpmVocab } from "./phi3-vocab.ts";
import { SeededRandom, deriveSeed } from "./prng.ts";

/** Shape and encoding of a generated test model. Omitted fields take the tiny defaults. */
export interface TestModelOptions {
  family: "phi3";
  /** Transformer blocks (`block_count`). Default 2. */
  layers?: number;
  /** Hidden size (`embedding_length`); a multiple of 32 for q8_0/q4_0. Default 64. */
  embd?: number;
  /** FFN inner size (`feed_forward_length`); a multiple of 32 for q8_0/q4_0. Default 128. */
  ff?: number;
  /** Attention heads; embd/heads is head_dim = rope dims, must be even. Default 4. */
  heads?: number;
  /** KV heads (GQA); divides heads. Default = heads (Phi-3-mini has no GQA). */
  headsKv?: number;
  /** `context_length` (also `rope.scaling.original_context_length`: no LongRoPE). Default 4096. */
  ctx?: number;
  /** Encoding of the 2-D weight matrices (1-D norms stay F32). Default "q4_0": smallest and fastest to run. */
  quant?: "f16" | "q8_0" | "q4_0";
  /** PRNG seed for all weights. Default 42. */
  seed?: number;
  /** `general.name`; keep "phi-3"/"phi3" in it, or llama.cpp skips Phi-3's special-token rstrip. */
  name?: string;
  /** `tokenizer.chat_template`. Default: Phi-3.5-mini-instruct's (template T5). */
  chatTemplate?: string;
  /**
   * `tokenizer.ggml.add_bos_token`. Default false, as in Phi-3.5-mini-instruct, whose template
   * renders no `<s>`: prompts are tokenized exactly as rendered, with no implicit BOS.
   */
  addBosToken?: boolean;
  /** `phi3.attention.sliding_window`. Default 0 (no SWA; llama.cpp v0.5.0 ignores Phi SWA anyway). */
  slidingWindow?: number;
}

/** Options with every default applied. */
export type ResolvedTestModelOptions = Required<TestModelOptions>;

/** Defaults: a ~3 MB model (most of it the two 32064-row vocab matrices) that loads in well under a second. */
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
};

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

/** Applies defaults and checks the shape is one llama.cpp can load. */
export function resolveTestModelOptions(options: Partial<TestModelOptions> = {}): ResolvedTestModelOptions {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const o: ResolvedTestModelOptions = { ...TEST_MODEL_DEFAULTS, ...defined, headsKv: options.headsKv ?? options.heads ?? TEST_MODEL_DEFAULTS.headsKv };
  const ints: Array<keyof ResolvedTestModelOptions> = ["layers", "embd", "ff", "heads", "headsKv", "ctx"];
  for (const key of ints) {
    const v = o[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new Error(`test model: ${key} must be a positive integer`);
  }
  if (o.family !== "phi3") throw new Error(`test model: unsupported family ${String(o.family)}`);
  if (!(o.quant in QUANT_TYPES)) throw new Error(`test model: unsupported quant ${o.quant}`);
  if (o.embd % o.heads !== 0 || (o.embd / o.heads) % 2 !== 0) throw new Error("test model: embd/heads must be an even integer");
  if (o.heads % o.headsKv !== 0) throw new Error("test model: headsKv must divide heads");
  if (o.quant !== "f16" && (o.embd % 32 !== 0 || o.ff % 32 !== 0)) throw new Error(`test model: ${o.quant} needs embd and ff multiples of 32`);
  return o;
}

/** Writes a test model to `outFile` (overwriting it). Generation is deterministic in the options. */
export async function writeTestModel(outFile: string, options: TestModelOptions): Promise<{ file: string; bytes: number }> {
  const o = resolveTestModelOptions(options);
  const { bytes } = await writeGguf(outFile, phi3FileSpec(o));
  return { file: outFile, bytes };
}

/** The complete GGUF description of a phi3 test model. */
export function phi3FileSpec(o: ResolvedTestModelOptions): GgufFileSpec {
  const vocab = phi3Vocab();
  const metadata = new Map<string, GgufValue>([...phi3Metadata(o), ...spmTokenizerMetadata(vocab, o)]);
  return { metadata, tensors: phi3Tensors(o, vocab) };
}

/** `general.*` and `phi3.*` keys (phi-models.md §6.1; `convert_hf_to_gguf.py` Phi3MiniModel). */
function phi3Metadata(o: ResolvedTestModelOptions): Map<string, GgufValue> {
  return new Map<string, GgufValue>([
    ["general.architecture", gguf.string("phi3")],
    ["general.name", gguf.string(o.name)],
    ["general.description", gguf.string(`Random weights (seed ${o.seed}) from phiserve model-factory v${FACTORY_VERSION}; not a trained model`)],
    ["general.file_type", gguf.uint32(QUANT_TYPES[o.quant].fileType)],
    ["general.quantization_version", gguf.uint32(2)],
    ["phi3.context_length", gguf.uint32(o.ctx)],
    ["phi3.rope.scaling.original_context_length", gguf.uint32(o.ctx)],
    ["phi3.embedding_length", gguf.uint32(o.embd)],
    ["phi3.feed_forward_length", gguf.uint32(o.ff)],
    ["phi3.block_count", gguf.uint32(o.layers)],
    ["phi3.attention.head_count", gguf.uint32(o.heads)],
    ["phi3.attention.head_count_kv", gguf.uint32(o.headsKv)],
    ["phi3.attention.layer_norm_rms_epsilon", gguf.float32(1e-5)],
    ["phi3.rope.dimension_count", gguf.uint32(o.embd / o.heads)],
    ["phi3.rope.freq_base", gguf.float32(10000)],
    ["phi3.attention.sliding_window", gguf.uint32(o.slidingWindow)],
  ]);
}

/** `tokenizer.*` keys of a SentencePiece (`"llama"`) vocabulary with Phi-3's special ids (§6.3). */
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

/** How a tensor's values are generated. */
type TensorInit =
  | { kind: "constant"; value: number }
  | { kind: "random"; std: number; zeroRow?: (row: number) => boolean };

/** phi3 tensors (engine-notes.md §2): fused QKV and fused gate‖up FFN, RMS norms without bias. */
function phi3Tensors(o: ResolvedTestModelOptions, vocab: SpmVocab): GgufTensorSpec[] {
  const nVocab = vocab.tokens.length;
  const nEmbdGqa = (o.embd / o.heads) * o.headsKv;
  const wType = QUANT_TYPES[o.quant].type;
  const spec = (name: string, dims: number[], init: TensorInit): GgufTensorSpec => {
    const type = dims.length === 1 ? GgmlType.F32 : wType;
    return { name, dims, type, data: () => tensorValues(deriveSeed(o.seed, name), dims, init) };
  };
  const ones: TensorInit = { kind: "constant", value: 1 };
  const fanIn = (n: number): TensorInit & { kind: "random" } => ({ kind: "random", std: 1 / Math.sqrt(n) });
  const tensors = [
    spec("token_embd.weight", [o.embd, nVocab], { kind: "random", std: TOKEN_EMBD_STD }),
    spec("output_norm.weight", [o.embd], ones),
    spec("output.weight", [o.embd, nVocab], { ...fanIn(o.embd), zeroRow: (id) => vocab.types[id] !== TokenType.NORMAL }),
  ];
  for (let i = 0; i < o.layers; i++) {
    tensors.push(
      spec(`blk.${i}.attn_norm.weight`, [o.embd], ones),
      spec(`blk.${i}.attn_qkv.weight`, [o.embd, o.embd + 2 * nEmbdGqa], fanIn(o.embd)),
      spec(`blk.${i}.attn_output.weight`, [o.embd, o.embd], fanIn(o.embd)),
      spec(`blk.${i}.ffn_norm.weight`, [o.embd], ones),
      spec(`blk.${i}.ffn_up.weight`, [o.embd, 2 * o.ff], fanIn(o.embd)),
      spec(`blk.${i}.ffn_down.weight`, [o.ff, o.embd], fanIn(o.ff)),
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
    } else {
      random.fillNormalish(chunk, init.std);
      if (init.zeroRow) zeroRows(chunk, rowLength, row, init.zeroRow);
    }
    yield chunk;
  }
}

function zeroRows(chunk: Float32Array, rowLength: number, firstRow: number, zeroRow: (row: number) => boolean): void {
  for (let r = 0; r * rowLength < chunk.length; r++) {
    if (zeroRow(firstRow + r)) chunk.fill(0, r * rowLength, (r + 1) * rowLength);
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
