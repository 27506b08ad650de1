/**
 * The three Phi-3-vision graphs as onnxruntime-node sessions (the only importer of onnxruntime-node
 * with its siblings here), and the runs the engine makes of them (docs/VISION.md "ONNX engine"):
 * - vision: `pixel_values [1, crops, 3, 336, 336]`, `image_sizes [1, 2]` → `image_features [rows, hidden]`;
 * - embedding: `input_ids [1, n]` (image positions negative), `image_features [Σ rows, hidden]` → `inputs_embeds [1, n, hidden]`;
 * - decoder: `inputs_embeds`, `attention_mask [1, past + n]`, `position_ids` (when declared),
 *   `past_key_values.i.key/value [1, kv_heads, past, head]` → `logits [1, n, vocab]`, `present.i.key/value`.
 * Element types are read from each session's input metadata: float16 inputs (Microsoft's exports
 * take float16 pixels) are converted from float32 at the boundary, float16 logits back to float32.
 * The engine runs all of this on its graph thread (onnx-graph-worker.ts), never on the event loop.
 */
import * as ort from "onnxruntime-node";
import type { EngineImage } from "../engine.ts";
import { float16ToFloat32, float32ToFloat16 } from "../../lib/float16.ts";
import type { OnnxModelFolder } from "./onnx-model-folder.ts";

type FloatType = "float32" | "float16";

export interface OnnxGraphs {
  vision: ort.InferenceSession;
  embedding: ort.InferenceSession;
  decoder: ort.InferenceSession;
  layers: number;
  kvHeads: number;
  headSize: number;
  hiddenSize: number;
  kvType: FloatType;
  /** Element type of the decoder's `inputs_embeds` (the embedding's output is converted to it when they differ). */
  embedsType: FloatType;
  hasPositionIds: boolean;
  /** KV input and output names per layer: [key, value]. */
  pastNames: [string, string][];
  presentNames: [string, string][];
}

/** A sequence's KV cache: one key and one value tensor per layer, `length` positions each. */
export interface KvCache {
  tensors: ort.Tensor[];
  length: number;
}

/** What loading the graphs needs from a model folder (cloneable into the graph thread). */
export type OnnxGraphSpec = Pick<OnnxModelFolder, "graphs" | "numKeyValueHeads" | "headSize" | "hiddenSize">;

export async function loadOnnxGraphs(model: OnnxGraphSpec, threads: number): Promise<OnnxGraphs> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    executionProviders: ["cpu"],
    // Idle intra-op threads otherwise spin for a while after each run, taking the cores the
    // event loop needs for sampling between runs (measured: top-p sampling 11 ms → 2 ms a token on 2 cores).
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
  const names = model.graphs;
  const [vision, embedding, decoder] = await Promise.all([
    ort.InferenceSession.create(names.vision.file, options),
    ort.InferenceSession.create(names.embedding.file, options),
    ort.InferenceSession.create(names.decoder.file, options),
  ]);
  const inputs = new Map(decoder.inputMetadata.map((m) => [m.name, m]));
  const layerName = (pattern: string, layer: number) => pattern.replace("%d", String(layer));
  let layers = 0;
  while (inputs.has(layerName(names.decoder.pastKey, layers))) layers++;
  if (layers === 0) throw new Error(`${names.decoder.file}: the decoder has no ${names.decoder.pastKey} inputs (expected a KV-cache decoder)`);
  const past = inputs.get(layerName(names.decoder.pastKey, 0))!;
  const shape = past.isTensor ? past.shape : [];
  const kvHeads = typeof shape[1] === "number" ? shape[1] : model.numKeyValueHeads;
  const headSize = typeof shape[3] === "number" ? shape[3] : model.headSize;
  const embedsInput = inputs.get(names.decoder.inputsEmbeds);
  const embedsShape = embedsInput?.isTensor ? embedsInput.shape : [];
  const hiddenSize = typeof embedsShape[2] === "number" ? embedsShape[2] : model.hiddenSize;
  if (kvHeads === undefined || headSize === undefined || hiddenSize === undefined) throw new Error(`${names.decoder.file}: cannot tell the KV-cache shape or hidden size from the graph or the config`);
  return {
    vision,
    embedding,
    decoder,
    layers,
    kvHeads,
    headSize,
    hiddenSize,
    kvType: floatType(past),
    embedsType: embedsInput ? floatType(embedsInput) : "float32",
    hasPositionIds: inputs.has(names.decoder.positionIds),
    pastNames: Array.from({ length: layers }, (_, i) => [layerName(names.decoder.pastKey, i), layerName(names.decoder.pastValue, i)]),
    presentNames: Array.from({ length: layers }, (_, i) => [layerName(names.decoder.presentKey, i), layerName(names.decoder.presentValue, i)]),
  };
}

/** The decoder's logits per position (its vocabulary), when the graph declares it. */
export function logitsSize(graphs: OnnxGraphs, names: OnnxModelFolder["graphs"]): number | undefined {
  const meta = graphs.decoder.outputMetadata.find((m) => m.name === names.decoder.logits);
  const size = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  return typeof size === "number" ? size : undefined;
}

export async function releaseOnnxGraphs(graphs: OnnxGraphs): Promise<void> {
  await Promise.all([graphs.vision.release(), graphs.embedding.release(), graphs.decoder.release()]);
}

/** Runs the vision encoder on one image; checks it returns exactly `image.tokens` feature rows. */
export async function encodeImage(graphs: OnnxGraphs, names: OnnxModelFolder["graphs"], image: EngineImage): Promise<ort.Tensor> {
  const expected = image.crops * 3 * 336 * 336;
  if (image.pixelValues.length !== expected) throw new Error(`pixel values hold ${image.pixelValues.length} values, not crops × 3 × 336 × 336 = ${expected}`);
  const pixelType = floatType(inputMeta(graphs.vision, names.vision.pixelValues));
  const feeds = {
    [names.vision.pixelValues]: floatTensor(pixelType, image.pixelValues, [1, image.crops, 3, 336, 336]),
    [names.vision.imageSizes]: new ort.Tensor("int64", BigInt64Array.from(image.imageSize.map(BigInt)), [1, 2]),
  };
  const features = (await graphs.vision.run(feeds))[names.vision.imageFeatures]!;
  const rows = features.size / graphs.hiddenSize;
  if (rows !== image.tokens) {
    throw new Error(`the vision encoder returned ${rows} feature rows for an image of ${image.tokens} tokens (image size ${image.imageSize.join("×")}, ${image.crops} crops): the model and the preprocessing disagree`);
  }
  return features;
}

/** `inputs_embeds [1, ids.length, hidden]` for prompt or generated ids, image rows from `features` (in prompt order). */
export async function embedTokens(graphs: OnnxGraphs, names: OnnxModelFolder["graphs"], ids: BigInt64Array, features: readonly ort.Tensor[]): Promise<ort.Tensor> {
  const featureType = floatType(inputMeta(graphs.embedding, names.embedding.imageFeatures));
  const feeds = {
    [names.embedding.inputIds]: new ort.Tensor("int64", ids, [1, ids.length]),
    [names.embedding.imageFeatures]: joinFeatures(featureType, features, graphs.hiddenSize),
  };
  const embeds = (await graphs.embedding.run(feeds))[names.embedding.inputsEmbeds]!;
  if (embeds.type === graphs.embedsType) return embeds;
  const data = embeds.data as Float32Array | Uint16Array;
  if (graphs.embedsType === "float16") {
    const half = new Uint16Array(data.length);
    float32ToFloat16(data as Float32Array, half);
    return new ort.Tensor("float16", half, embeds.dims);
  }
  const full = new Float32Array(data.length);
  float16ToFloat32(data as Uint16Array, full);
  return new ort.Tensor("float32", full, embeds.dims);
}

export function emptyKvCache(graphs: OnnxGraphs): KvCache {
  const empty = () => new ort.Tensor(graphs.kvType, graphs.kvType === "float16" ? new Uint16Array(0) : new Float32Array(0), [1, graphs.kvHeads, 0, graphs.headSize]);
  return { tensors: Array.from({ length: graphs.layers * 2 }, empty), length: 0 };
}

/** Per-sequence buffers the decoder steps reuse. */
export class DecoderBuffers {
  /** All ones: a view of the first `past + n` is the attention mask. */
  readonly mask: BigInt64Array;
  readonly positions: BigInt64Array;
  private logitsBuffer: Float32Array | undefined;

  constructor(contextSize: number, maxChunk: number) {
    this.mask = new BigInt64Array(contextSize).fill(1n);
    this.positions = new BigInt64Array(maxChunk);
  }

  /** The last position's logits as float32 (converted into a reused buffer when the graph gives float16). */
  lastLogits(logits: ort.Tensor): Float32Array {
    const vocab = logits.dims[logits.dims.length - 1]!;
    const offset = logits.size - vocab;
    if (logits.type === "float32") return (logits.data as Float32Array).subarray(offset, offset + vocab);
    const out = (this.logitsBuffer ??= new Float32Array(vocab));
    float16ToFloat32((logits.data as Uint16Array).subarray(offset, offset + vocab), out);
    return out;
  }
}

/**
 * One decoder run over `embeds` (`[1, n, hidden]`, positions `cache.length …`); replaces the
 * cache's tensors with the presents and returns the last position's logits. With `logits` false (a
 * prefill chunk before the last) only the presents are fetched, so ONNX Runtime skips the LM head over
 * every position (measured: half of a 512-token chunk's time; docs/VISION.md "ONNX engine").
 */
export async function decodeStep(graphs: OnnxGraphs, names: OnnxModelFolder["graphs"], cache: KvCache, embeds: ort.Tensor, buffers: DecoderBuffers): Promise<Float32Array>;
export async function decodeStep(graphs: OnnxGraphs, names: OnnxModelFolder["graphs"], cache: KvCache, embeds: ort.Tensor, buffers: DecoderBuffers, logits: false): Promise<undefined>;
export async function decodeStep(graphs: OnnxGraphs, names: OnnxModelFolder["graphs"], cache: KvCache, embeds: ort.Tensor, buffers: DecoderBuffers, logits = true): Promise<Float32Array | undefined> {
  const n = embeds.dims[1]!;
  const total = cache.length + n;
  const feeds: Record<string, ort.Tensor> = {
    [names.decoder.inputsEmbeds]: embeds,
    [names.decoder.attentionMask]: new ort.Tensor("int64", buffers.mask.subarray(0, total), [1, total]),
  };
  if (graphs.hasPositionIds) {
    const positions = buffers.positions.subarray(0, n);
    for (let i = 0; i < n; i++) positions[i] = BigInt(cache.length + i);
    feeds[names.decoder.positionIds] = new ort.Tensor("int64", positions, [1, n]);
  }
  for (let layer = 0; layer < graphs.layers; layer++) {
    const [key, value] = graphs.pastNames[layer]!;
    feeds[key] = cache.tensors[2 * layer]!;
    feeds[value] = cache.tensors[2 * layer + 1]!;
  }
  const outputs = logits ? await graphs.decoder.run(feeds) : await graphs.decoder.run(feeds, graphs.presentNames.flat());
  for (let layer = 0; layer < graphs.layers; layer++) {
    const [key, value] = graphs.presentNames[layer]!;
    cache.tensors[2 * layer] = outputs[key]!;
    cache.tensors[2 * layer + 1] = outputs[value]!;
  }
  cache.length = total;
  return logits ? buffers.lastLogits(outputs[names.decoder.logits]!) : undefined;
}

/** Rows `[from, to)` of `embeds [1, n, hidden]`, as a tensor over the same memory. */
export function sliceEmbeds(embeds: ort.Tensor, from: number, to: number): ort.Tensor {
  const hidden = embeds.dims[2]!;
  const data = embeds.data as Float32Array | Uint16Array;
  return new ort.Tensor(embeds.type as FloatType, data.subarray(from * hidden, to * hidden), [1, to - from, hidden]);
}

function joinFeatures(type: FloatType, features: readonly ort.Tensor[], hidden: number): ort.Tensor {
  if (features.length === 1 && features[0]!.type === type) {
    const only = features[0]!;
    return new ort.Tensor(type, only.data as Float32Array | Uint16Array, [only.size / hidden, hidden]);
  }
  const rows = features.reduce((sum, f) => sum + f.size / hidden, 0);
  const out = type === "float16" ? new Uint16Array(rows * hidden) : new Float32Array(rows * hidden);
  let at = 0;
  for (const feature of features) {
    const data = feature.data as Float32Array | Uint16Array;
    if (feature.type === type) out.set(data, at);
    else if (type === "float16") float32ToFloat16(data as Float32Array, out.subarray(at, at + data.length) as Uint16Array);
    else float16ToFloat32(data as Uint16Array, out.subarray(at, at + data.length) as Float32Array);
    at += data.length;
  }
  return new ort.Tensor(type, out, [rows, hidden]);
}

function floatTensor(type: FloatType, data: Float32Array, dims: number[]): ort.Tensor {
  if (type === "float32") return new ort.Tensor("float32", data, dims);
  const half = new Uint16Array(data.length);
  float32ToFloat16(data, half);
  return new ort.Tensor("float16", half, dims);
}

function inputMeta(session: ort.InferenceSession, name: string): ort.InferenceSession.ValueMetadata {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (!meta) throw new Error(`the graph has no input ${name} (it has ${session.inputNames.join(", ")})`);
  return meta;
}

function floatType(meta: ort.InferenceSession.ValueMetadata): FloatType {
  const type = meta.isTensor ? meta.type : undefined;
  if (type === "float32" || type === "float16") return type;
  throw new Error(`input ${meta.name} has element type ${String(type)}; the ONNX engine feeds float32 or float16`);
}
