/**
 * The three ONNX graphs of a random-weight Phi-3-vision test model, with the IO contract of
 * Microsoft's ONNX Runtime GenAI export (names in genai_config.json; docs/VISION.md "Test model"):
 *
 * - vision: `pixel_values` f32 [num_images, max_num_crops, 3, 336, 336], `image_sizes` i64
 *   [num_images, 2] (padded HD [H, W], multiples of 336) → `image_features` f32
 *   [num_image_tokens, hidden], where each image contributes
 *   ((H/336)·(W/336) + 1)·144 + 1 + (H/336 + 1)·12 rows (docs/VISION.md "Image token formula").
 * - embedding: `input_ids` i64 [batch, seq] (image positions hold negative ids), `image_features`
 *   → `inputs_embeds` f32 [batch, seq, hidden].
 * - text decoder: `inputs_embeds`, `attention_mask` i64 [batch, past+seq],
 *   `past_key_values.{i}.key|value` f32 [batch, kv_heads, past, head_dim] → `logits` f32
 *   [batch, seq, vocab], `present.{i}.key|value` [batch, kv_heads, past+seq, head_dim].
 *
 * The vision "encoder" is synthetic (no CLIP): row r of an image's features is a seeded position
 * embedding (r mod 157) plus a seeded projection of pixel statistics: the mean colour of a
 * 28×28-pixel patch (patch r mod 144 of crop ⌊r/144⌋ mod max_num_crops) and the 4×4 grid of mean
 * colours of that crop. So any change of the pixels changes the features, and so the generation.
 *
 * The decoder is a real pre-norm transformer: RMSNorm, GQA self-attention with RoPE (positions
 * from the attention mask: cumsum − 1, so left or right padding in a batch keeps each row's
 * positions), a causal mask combined with the attention mask (masked keys get −1e9, so a fully
 * masked padding row stays finite), a SwiGLU MLP, final RMSNorm and an LM head.
 */
import { OnnxGraphBuilder, f32Tensor, type OnnxTensor } from "./onnx-writer.ts";
import { SeededRandom, deriveSeed } from "./prng.ts";

/** Shape of the test model's graphs. */
export interface Phi3vGraphShape {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  layers: number;
  /** MLP inner width. */
  ff: number;
  vocab: number;
  seed: number;
  /** Vocabulary ids whose LM-head column is random; every other id gets a logit of exactly 0. */
  emittable: (id: number) => boolean;
}

/** Side of one crop in pixels. */
export const PHI3V_CROP_PX = 336;
/** Feature rows per crop (12×12 pooled CLIP patches). */
export const PHI3V_TOKENS_PER_CROP = 144;
/** Separator rows per crop row (one per 12 pooled patch rows). */
const ROWS_PER_CROP_ROW = 12;
const PATCH_GRID = 12; // 12×12 patches of 28 px per crop
const PATCH_PX = PHI3V_CROP_PX / PATCH_GRID;
const CROP_GRID = 4; // 4×4 cells of 3×3 patches for the per-crop descriptor
const VISION_POSITION_ROWS = 157; // 12 rows of 13 + 1 separator: the real layout's period
const ROPE_THETA = 10000;
const RMS_EPS = 1e-5;
const MASKED = -1e9;

/** Number of `image_features` rows for one padded HD image of `height`×`width` pixels. */
export function phi3vImageTokenCount(height: number, width: number): number {
  const h = Math.floor(height / PHI3V_CROP_PX);
  const w = Math.floor(width / PHI3V_CROP_PX);
  return (h * w + 1) * PHI3V_TOKENS_PER_CROP + 1 + (h + 1) * ROWS_PER_CROP_ROW;
}

/** Seeded bell-shaped tensor `[rows, cols]`, row-major. */
function randomMatrix(shape: Phi3vGraphShape, name: string, dims: readonly number[], std: number): OnnxTensor {
  const values = new Float32Array(dims.reduce((n, d) => n * d, 1));
  new SeededRandom(deriveSeed(shape.seed, name)).fillNormalish(values, std);
  return f32Tensor(dims, values);
}

/** The vision graph (see the module comment). */
export function buildPhi3vVisionGraph(shape: Phi3vGraphShape): Uint8Array {
  const g = new OnnxGraphBuilder("phi3v_vision");
  const pixels = g.input("pixel_values", "float32", ["num_images", "max_num_crops", 3, PHI3V_CROP_PX, PHI3V_CROP_PX]);
  const sizes = g.input("image_sizes", "int64", ["num_images", 2]);
  g.output("image_features", "float32", ["num_image_tokens", shape.hidden]);

  // Tokens per image from image_sizes (integer arithmetic, as in phi3vImageTokenCount).
  const crop = g.i64(PHI3V_CROP_PX);
  const h = g.op("Div", [g.op("Gather", [sizes, g.i64(0)], { axis: 1 }), crop]);
  const w = g.op("Div", [g.op("Gather", [sizes, g.i64(1)], { axis: 1 }), crop]);
  const one = g.i64(1);
  const crops = g.op("Mul", [g.op("Add", [g.op("Mul", [h, w]), one]), g.i64(PHI3V_TOKENS_PER_CROP)]);
  const separators = g.op("Mul", [g.op("Add", [h, one]), g.i64(ROWS_PER_CROP_ROW)]);
  const tokens = g.op("Add", [g.op("Add", [crops, one]), separators]); // [N]
  const ends = g.op("CumSum", [tokens, g.i64(0)]);
  const starts = g.op("Sub", [ends, tokens]);
  const total = g.op("ReduceSum", [tokens], { keepdims: 0 });
  const rows = g.op("Range", [g.i64(0), total, g.i64(1)]); // [T]

  // Image of each row: how many images end at or before it.
  const after = g.op("GreaterOrEqual", [g.op("Unsqueeze", [rows, g.i64([1])]), g.op("Unsqueeze", [ends, g.i64([0])])]);
  const image = g.op("ReduceSum", [g.op("Cast", [after], { to: 7 }), g.i64([1])], { keepdims: 0 }); // [T]
  const local = g.op("Sub", [rows, g.op("Gather", [starts, image])]);
  const maxCrops = g.op("Gather", [g.op("Shape", [pixels]), g.i64(1)]);
  const perCrop = g.i64(PHI3V_TOKENS_PER_CROP);
  const cropOfRow = g.op("Mod", [g.op("Div", [local, perCrop]), maxCrops]);
  const cropIndex = g.op("Add", [g.op("Mul", [image, maxCrops]), cropOfRow]); // into [N·C]
  const patchIndex = g.op("Add", [g.op("Mul", [cropIndex, perCrop]), g.op("Mod", [local, perCrop])]); // into [N·C·144]

  // Pixel statistics: mean colour per 28-px patch, and a 4×4 grid of those per crop.
  const grid = g.op("Reshape", [pixels, g.i64([-1, 3, PATCH_GRID, PATCH_PX, PATCH_GRID, PATCH_PX])]);
  const patches = g.op("ReduceMean", [grid], { axes: [3, 5], keepdims: 0 }); // [N·C, 3, 12, 12]
  const patchRows = g.op("Reshape", [g.op("Transpose", [patches], { perm: [0, 2, 3, 1] }), g.i64([-1, 3])]);
  const cell = PATCH_GRID / CROP_GRID;
  const cells = g.op("ReduceMean", [g.op("Reshape", [patches, g.i64([-1, 3, CROP_GRID, cell, CROP_GRID, cell])])], { axes: [3, 5], keepdims: 0 });
  const cropRows = g.op("Reshape", [cells, g.i64([-1, 3 * CROP_GRID * CROP_GRID])]);
  const descriptor = g.op("Concat", [g.op("Gather", [patchRows, patchIndex]), g.op("Gather", [cropRows, cropIndex])], { axis: 1 });

  const descriptorWidth = 3 + 3 * CROP_GRID * CROP_GRID;
  const projection = g.initializer("vision.proj.weight", randomMatrix(shape, "vision.proj.weight", [descriptorWidth, shape.hidden], 1 / Math.sqrt(descriptorWidth)));
  const positions = g.initializer("vision.pos_embed", randomMatrix(shape, "vision.pos_embed", [VISION_POSITION_ROWS, shape.hidden], 1));
  const position = g.op("Gather", [positions, g.op("Mod", [local, g.i64(VISION_POSITION_ROWS)])]);
  g.op("Add", [g.op("MatMul", [descriptor, projection]), position], {}, { output: "image_features" });
  return g.toBytes("phiserve Phi-3-vision test model: vision (random weights, synthetic encoder)");
}

/** Token embedding table `[vocab, hidden]` (std 1; used by the embedding graph only). */
function embeddingTable(shape: Phi3vGraphShape): OnnxTensor {
  return randomMatrix(shape, "embed_tokens.weight", [shape.vocab, shape.hidden], 1);
}

/** The embedding graph: token embeddings with image rows scattered into negative-id positions. */
export function buildPhi3vEmbeddingGraph(shape: Phi3vGraphShape): Uint8Array {
  const g = new OnnxGraphBuilder("phi3v_embedding");
  const ids = g.input("input_ids", "int64", ["batch_size", "sequence_length"]);
  const features = g.input("image_features", "float32", ["num_image_tokens", shape.hidden]);
  g.output("inputs_embeds", "float32", ["batch_size", "sequence_length", shape.hidden]);
  const table = g.initializer("embed_tokens.weight", embeddingTable(shape));
  const text = g.op("Gather", [table, g.op("Max", [ids, g.i64(0)])]);
  // NonZero lists positions in row-major order, so image rows fill the negative ids in order.
  const where = g.op("Transpose", [g.op("NonZero", [g.op("Less", [ids, g.i64(0)])])], { perm: [1, 0] });
  g.op("ScatterND", [text, where, features], {}, { output: "inputs_embeds" });
  return g.toBytes("phiserve Phi-3-vision test model: text embedding (random weights)");
}

/** The text decoder graph (see the module comment). */
export function buildPhi3vDecoderGraph(shape: Phi3vGraphShape): Uint8Array {
  const { hidden, heads, kvHeads, headDim, layers, ff, vocab } = shape;
  if (heads % kvHeads !== 0) throw new Error(`heads (${heads}) must be a multiple of kv heads (${kvHeads})`);
  if (headDim % 2 !== 0) throw new Error(`head_dim (${headDim}) must be even for RoPE`);
  const g = new OnnxGraphBuilder("phi3v_text");
  const embeds = g.input("inputs_embeds", "float32", ["batch_size", "sequence_length", hidden]);
  const mask = g.input("attention_mask", "int64", ["batch_size", "total_sequence_length"]);
  const pastNames: [string, string][] = [];
  for (let i = 0; i < layers; i++) {
    const dims = ["batch_size", kvHeads, "past_sequence_length", headDim];
    pastNames.push([g.input(`past_key_values.${i}.key`, "float32", dims), g.input(`past_key_values.${i}.value`, "float32", dims)]);
  }
  g.output("logits", "float32", ["batch_size", "sequence_length", vocab]);
  for (let i = 0; i < layers; i++) {
    const dims = ["batch_size", kvHeads, "total_sequence_length", headDim];
    g.output(`present.${i}.key`, "float32", dims);
    g.output(`present.${i}.value`, "float32", dims);
  }

  const context = attentionContext(g, embeds, mask, headDim);
  let x = embeds;
  for (let i = 0; i < layers; i++) {
    const [pastKey, pastValue] = pastNames[i]!;
    x = decoderLayer(g, shape, i, x, context, pastKey, pastValue);
  }
  const normed = rmsNorm(g, x, g.initializer("norm.weight", f32Tensor([hidden], new Float32Array(hidden).fill(1))));
  const head = g.initializer("lm_head.weight", lmHead(shape));
  g.op("MatMul", [normed, head], {}, { output: "logits" });
  return g.toBytes("phiserve Phi-3-vision test model: text decoder (random weights)");
}

/** LM head `[hidden, vocab]` (std 1/√hidden), zero in the columns of non-emittable ids. */
function lmHead(shape: Phi3vGraphShape): OnnxTensor {
  const tensor = randomMatrix(shape, "lm_head.weight", [shape.hidden, shape.vocab], 1 / Math.sqrt(shape.hidden));
  const data = tensor.data as Float32Array;
  for (let id = 0; id < shape.vocab; id++) {
    if (shape.emittable(id)) continue;
    for (let d = 0; d < shape.hidden; d++) data[d * shape.vocab + id] = 0;
  }
  return tensor;
}

/** RoPE tables and the additive attention bias, shared by all layers. */
interface AttentionContext {
  /** [batch, 1, seq, head_dim/2] */
  cos: string;
  sin: string;
  /** [batch, 1, seq, total] : 0 where attended, −1e9 elsewhere. */
  bias: string;
}

function attentionContext(g: OnnxGraphBuilder, embeds: string, mask: string, headDim: number): AttentionContext {
  const seq = g.op("Gather", [g.op("Shape", [embeds]), g.i64(1)]); // scalar
  const total = g.op("Gather", [g.op("Shape", [mask]), g.i64(1)]); // scalar
  const past = g.op("Sub", [total, seq]);

  // Positions: cumulative count of attended tokens − 1, last `seq` columns, padding clamped to 0.
  const cumulative = g.op("Sub", [g.op("CumSum", [mask, g.i64(1)]), g.i64(1)]);
  const current = g.op("Slice", [cumulative, g.op("Unsqueeze", [past, g.i64([0])]), g.op("Unsqueeze", [total, g.i64([0])]), g.i64([1])]);
  const positions = g.op("Cast", [g.op("Max", [current, g.i64(0)])], { to: 1 }); // [B, S] float
  const half = headDim / 2;
  const invFreq = Array.from({ length: half }, (_, i) => 1 / ROPE_THETA ** ((2 * i) / headDim));
  const angles = g.op("Mul", [g.op("Unsqueeze", [positions, g.i64([1, 3])]), g.f32(invFreq)]); // [B,1,S,half]

  // Causal: key j visible from query i (absolute index past + i) when j ≤ past + i.
  const queryIndex = g.op("Unsqueeze", [g.op("Range", [past, total, g.i64(1)]), g.i64([1])]); // [S,1]
  const keyIndex = g.op("Unsqueeze", [g.op("Range", [g.i64(0), total, g.i64(1)]), g.i64([0])]); // [1,T]
  const causal = g.op("LessOrEqual", [keyIndex, queryIndex]); // [S,T]
  const attended = g.op("Cast", [g.op("Unsqueeze", [mask, g.i64([1, 2])])], { to: 9 }); // [B,1,1,T]
  const allowed = g.op("And", [causal, attended]); // [B,1,S,T]
  const bias = g.op("Where", [allowed, g.f32(0), g.f32(MASKED)]);
  return { cos: g.op("Cos", [angles]), sin: g.op("Sin", [angles]), bias };
}

function rmsNorm(g: OnnxGraphBuilder, x: string, weight: string): string {
  const meanSquare = g.op("ReduceMean", [g.op("Mul", [x, x])], { axes: [-1], keepdims: 1 });
  const scale = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [meanSquare, g.f32(RMS_EPS)])])]);
  return g.op("Mul", [g.op("Mul", [x, scale]), weight]);
}

/** Rotates [B, heads, S, D] by the RoPE tables (rotate-half form, as Phi-3). */
function rope(g: OnnxGraphBuilder, x: string, context: AttentionContext, headDim: number): string {
  const half = headDim / 2;
  const first = g.op("Slice", [x, g.i64([0]), g.i64([half]), g.i64([3])]);
  const second = g.op("Slice", [x, g.i64([half]), g.i64([headDim]), g.i64([3])]);
  const { cos, sin } = context;
  const a = g.op("Sub", [g.op("Mul", [first, cos]), g.op("Mul", [second, sin])]);
  const b = g.op("Add", [g.op("Mul", [second, cos]), g.op("Mul", [first, sin])]);
  return g.op("Concat", [a, b], { axis: 3 });
}

/** [B, S, n·D] → [B, n, S, D] */
function splitHeads(g: OnnxGraphBuilder, x: string, n: number, headDim: number): string {
  return g.op("Transpose", [g.op("Reshape", [x, g.i64([0, 0, n, headDim])])], { perm: [0, 2, 1, 3] });
}

function decoderLayer(
  g: OnnxGraphBuilder,
  shape: Phi3vGraphShape,
  layer: number,
  x: string,
  context: AttentionContext,
  pastKey: string,
  pastValue: string,
): string {
  const { hidden, heads, kvHeads, headDim, ff } = shape;
  const p = `layers.${layer}`;
  const weight = (name: string, dims: number[], std: number) => g.initializer(`${p}.${name}`, randomMatrix(shape, `${p}.${name}`, dims, std));
  const ones = (name: string) => g.initializer(`${p}.${name}`, f32Tensor([hidden], new Float32Array(hidden).fill(1)));
  const fanIn = 1 / Math.sqrt(hidden);

  const normed = rmsNorm(g, x, ones("input_layernorm.weight"));
  const q = rope(g, splitHeads(g, g.op("MatMul", [normed, weight("q_proj.weight", [hidden, heads * headDim], fanIn)]), heads, headDim), context, headDim);
  const k = rope(g, splitHeads(g, g.op("MatMul", [normed, weight("k_proj.weight", [hidden, kvHeads * headDim], fanIn)]), kvHeads, headDim), context, headDim);
  const v = splitHeads(g, g.op("MatMul", [normed, weight("v_proj.weight", [hidden, kvHeads * headDim], fanIn)]), kvHeads, headDim);
  const keys = g.op("Concat", [pastKey, k], { axis: 2 }, { output: `present.${layer}.key` });
  const values = g.op("Concat", [pastValue, v], { axis: 2 }, { output: `present.${layer}.value` });

  // GQA without copying K/V: query head h uses kv head ⌊h / group⌋, so [B, H, S, D] viewed as
  // [B, KV, group·S, D] lines each group's queries up with its kv head.
  const grouped = g.op("Reshape", [q, g.i64([0, kvHeads, -1, headDim])]);
  const scores = g.op("Mul", [g.op("MatMul", [grouped, g.op("Transpose", [keys], { perm: [0, 1, 3, 2] })]), g.f32(1 / Math.sqrt(headDim))]);
  const perHead = g.op("Reshape", [scores, g.i64([0, heads, -1, 0])]); // [B, H, S, T]
  const probs = g.op("Softmax", [g.op("Add", [perHead, context.bias])], { axis: -1 });
  const mixed = g.op("MatMul", [g.op("Reshape", [probs, g.i64([0, kvHeads, -1, 0])]), values]); // [B, KV, group·S, D]
  const merged = g.op("Reshape", [g.op("Transpose", [g.op("Reshape", [mixed, g.i64([0, heads, -1, headDim])])], { perm: [0, 2, 1, 3] }), g.i64([0, 0, heads * headDim])]);
  const attention = g.op("MatMul", [merged, weight("o_proj.weight", [heads * headDim, hidden], 1 / Math.sqrt(heads * headDim))]);
  const afterAttention = g.op("Add", [x, attention]);

  const normed2 = rmsNorm(g, afterAttention, ones("post_attention_layernorm.weight"));
  const gate = g.op("MatMul", [normed2, weight("mlp.gate_proj.weight", [hidden, ff], fanIn)]);
  const up = g.op("MatMul", [normed2, weight("mlp.up_proj.weight", [hidden, ff], fanIn)]);
  const activated = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
  const down = g.op("MatMul", [activated, weight("mlp.down_proj.weight", [ff, hidden], 1 / Math.sqrt(ff))]);
  return g.op("Add", [afterAttention, down]);
}
