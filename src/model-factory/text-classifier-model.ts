/**
 * A seeded random-weight text classifier in transformers.js's folder layout (docs/SAFETY.md "ONNX
 * classifier"): `config.json` (`id2label`, `problem_type`), the Phi-3 tokenizer files
 * (hf-tokenizer.ts; any real tokenizer does for the plumbing) and `onnx/model.onnx` taking
 * `input_ids` and `attention_mask` (+ `token_type_ids` when asked) and giving `logits`
 * [batch, labels], plus `phiserve-test-model.json` saying what it is.
 *
 * The graph: token embeddings, mean-pooled over the attention mask, times a weight matrix, plus a
 * bias. Random weights cannot classify, so two switches make the output predictable for tests:
 * - `weightScale: 0` zeroes every random weight, so each label's logit is exactly its `biases` entry;
 * - `triggers` maps a word (one vocabulary piece, `▁word`) to a label: that token's embedding is
 *   {@link TRIGGER_STRENGTH} in the label's own hidden dimension and 0 elsewhere, and hidden
 *   dimension k feeds only label k's logit, so a window of n tokens holding the word c times adds
 *   exactly TRIGGER_STRENGTH · c / n to that label's logit and nothing to the others.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { phi3vSpecialTokensMap, phi3vTokenizerConfig, phi3vTokenizerJson } from "./hf-tokenizer.ts";
import { OnnxGraphBuilder, f32Tensor } from "./onnx-writer.ts";
import { PHI3_VOCAB_SIZE, phi3Vocab } from "./phi3-vocab.ts";
import { SeededRandom, deriveSeed } from "./prng.ts";
import { TEST_MODEL_CACHE_DIR } from "./test-models.ts";

/** KoalaAI/Text-Moderation's labels (OpenAI moderation's), in alphabetical order. */
export const KOALA_LABEL_NAMES = ["H", "H2", "HR", "OK", "S", "S3", "SH", "V", "V2"] as const;

/** What a trigger word adds to its label's hidden dimension (a power of two: sums stay exact). */
export const TRIGGER_STRENGTH = 65536;

export type ClassifierProblemType = "single_label_classification" | "multi_label_classification";

export interface TextClassifierTestModelOptions {
  /** `id2label` in order. Default: KoalaAI/Text-Moderation's nine. */
  labels?: readonly string[] | undefined;
  /** `problem_type` in config.json (multi-label → sigmoid, else softmax). Default single-label, as KoalaAI's. */
  problemType?: ClassifierProblemType | undefined;
  /** PRNG seed of all weights. Default 42. */
  seed?: number | undefined;
  /** Hidden size (at least the label count). Default 16. */
  hidden?: number | undefined;
  /** Standard deviation of the random weights; 0 makes the logits exactly `biases` (+ triggers). Default 1. */
  weightScale?: number | undefined;
  /** Each label's bias. Default all 0. */
  biases?: readonly number[] | undefined;
  /** Word → label: the word's token drives that label's logit (see the module comment). */
  triggers?: Readonly<Record<string, string>> | undefined;
  /** Declare a `token_type_ids` input (BERT-style). Default false (DeBERTa-v3-style). */
  tokenTypeIds?: boolean | undefined;
  /** Where the graph goes in the folder. Default `onnx/model.onnx` (transformers.js's layout). */
  modelFile?: string | undefined;
  /** `max_position_embeddings` in config.json (the graph itself has no length cap). Default 512. */
  maxPositions?: number | undefined;
}

export interface ResolvedTextClassifierTestModelOptions {
  labels: string[];
  problemType: ClassifierProblemType;
  seed: number;
  hidden: number;
  weightScale: number;
  biases: number[];
  triggers: Record<string, string>;
  tokenTypeIds: boolean;
  modelFile: string;
  maxPositions: number;
}

/** Bump when the bytes written for the same options change, so cached folders are regenerated. */
const FACTORY_VERSION = 1;

export function resolveTextClassifierTestModelOptions(options: TextClassifierTestModelOptions = {}): ResolvedTextClassifierTestModelOptions {
  const labels = [...(options.labels ?? KOALA_LABEL_NAMES)];
  const o: ResolvedTextClassifierTestModelOptions = {
    labels,
    problemType: options.problemType ?? "single_label_classification",
    seed: options.seed ?? 42,
    hidden: options.hidden ?? Math.max(16, labels.length),
    weightScale: options.weightScale ?? 1,
    biases: [...(options.biases ?? labels.map(() => 0))],
    triggers: { ...(options.triggers ?? {}) },
    tokenTypeIds: options.tokenTypeIds ?? false,
    modelFile: options.modelFile ?? "onnx/model.onnx",
    maxPositions: options.maxPositions ?? 512,
  };
  const fail = (message: string): never => {
    throw new Error(`text classifier test model: ${message}`);
  };
  if (labels.length === 0 || new Set(labels).size !== labels.length) fail("labels must be distinct and at least one");
  if (!Number.isInteger(o.seed) || o.seed < 0) fail(`seed must be a non-negative integer, got ${o.seed}`);
  if (!Number.isInteger(o.hidden) || o.hidden < labels.length) fail(`hidden (${o.hidden}) must be an integer of at least the label count (${labels.length})`);
  if (!(o.weightScale >= 0)) fail(`weightScale must be >= 0, got ${o.weightScale}`);
  if (o.biases.length !== labels.length || !o.biases.every(Number.isFinite)) fail(`biases needs ${labels.length} finite numbers`);
  for (const label of Object.values(o.triggers)) if (!labels.includes(label)) fail(`trigger label ${label} is not one of ${labels.join(", ")}`);
  if (!o.modelFile.endsWith(".onnx")) fail(`modelFile must end in .onnx, got ${o.modelFile}`);
  return o;
}

/** The vocabulary id of each trigger word (`▁word`, one piece of Phi-3's vocabulary) → its label index. */
function triggerRows(o: ResolvedTextClassifierTestModelOptions): Map<number, number> {
  const { tokens } = phi3Vocab();
  const rows = new Map<number, number>();
  for (const [word, label] of Object.entries(o.triggers)) {
    const id = tokens.indexOf(`\u2581${word}`);
    if (id < 0) throw new Error(`text classifier test model: trigger "${word}" is not one token of the Phi-3 vocabulary (try "apple" or "hello")`);
    rows.set(id, o.labels.indexOf(label));
  }
  return rows;
}

/** The classifier graph (see the module comment). */
export function buildTextClassifierGraph(o: ResolvedTextClassifierTestModelOptions): Uint8Array {
  const labels = o.labels.length;
  const random = (name: string, size: number) => {
    const out = new Float32Array(size);
    if (o.weightScale > 0) new SeededRandom(deriveSeed(o.seed, name)).fillNormalish(out, o.weightScale);
    return out;
  };
  const embedding = random("embedding", PHI3_VOCAB_SIZE * o.hidden);
  for (const [id, label] of triggerRows(o)) {
    embedding.fill(0, id * o.hidden, (id + 1) * o.hidden);
    embedding[id * o.hidden + label] = TRIGGER_STRENGTH;
  }
  // Hidden dimension k < labels feeds label k alone (weight 1); the others feed every label at random.
  const weight = random("classifier", o.hidden * labels);
  for (let k = 0; k < labels; k++) for (let j = 0; j < labels; j++) weight[k * labels + j] = k === j ? 1 : 0;

  const g = new OnnxGraphBuilder("phiserve_text_classifier");
  const ids = g.input("input_ids", "int64", ["batch", "sequence"]);
  const mask = g.input("attention_mask", "int64", ["batch", "sequence"]);
  let hidden = g.op("Gather", [g.initializer("embeddings.word", f32Tensor([PHI3_VOCAB_SIZE, o.hidden], embedding)), ids]);
  if (o.tokenTypeIds) {
    const types = g.input("token_type_ids", "int64", ["batch", "sequence"]);
    const typeEmbedding = g.initializer("embeddings.token_type", f32Tensor([2, o.hidden], random("token_type", 2 * o.hidden)));
    hidden = g.op("Add", [hidden, g.op("Gather", [typeEmbedding, types])]);
  }
  const maskF = g.op("Unsqueeze", [g.op("Cast", [mask], { to: 1 }), g.i64([-1])]); // [batch, sequence, 1]
  const summed = g.op("ReduceSum", [g.op("Mul", [hidden, maskF]), g.i64([1])], { keepdims: 0 }); // [batch, hidden]
  const count = g.op("Max", [g.op("ReduceSum", [maskF, g.i64([1])], { keepdims: 0 }), g.f32(1)]); // [batch, 1]
  const pooled = g.op("Div", [summed, count]);
  const projected = g.op("MatMul", [pooled, g.initializer("classifier.weight", f32Tensor([o.hidden, labels], weight))]);
  g.op("Add", [projected, g.initializer("classifier.bias", f32Tensor([labels], o.biases))], {}, { output: "logits" });
  g.output("logits", "float32", ["batch", labels]);
  return g.toBytes("phiserve text classifier TEST model: random weights, not a trained classifier");
}

/** Every file of the folder: relative path → bytes. Deterministic for given options. */
export function textClassifierTestModelFiles(options: TextClassifierTestModelOptions = {}): Map<string, Uint8Array> {
  const o = resolveTextClassifierTestModelOptions(options);
  const json = (value: unknown) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  const id2label = Object.fromEntries(o.labels.map((label, i) => [String(i), label]));
  const label2id = Object.fromEntries(o.labels.map((label, i) => [label, i]));
  const config = {
    architectures: ["PhiserveTestForSequenceClassification"],
    model_type: "phiserve-test-classifier",
    hidden_size: o.hidden,
    max_position_embeddings: o.maxPositions,
    id2label,
    label2id,
    problem_type: o.problemType,
  };
  const tokenizerConfig = { ...phi3vTokenizerConfig({ modelMaxLength: o.maxPositions }), chat_template: undefined };
  return new Map<string, Uint8Array>([
    [o.modelFile, buildTextClassifierGraph(o)],
    ["config.json", json(config)],
    ["tokenizer.json", json(phi3vTokenizerJson())],
    ["tokenizer_config.json", json(tokenizerConfig)],
    ["special_tokens_map.json", json(phi3vSpecialTokensMap())],
    ["phiserve-test-model.json", json({ description: "phiserve text classifier TEST model: random weights, not a trained classifier. Real tokenizer (Phi-3's) and transformers.js IO contract.", factoryVersion: FACTORY_VERSION, ...o })],
  ]);
}

/** Writes the folder (created if missing; existing files of the same names are replaced). */
export async function writeTextClassifierTestModel(dir: string, options: TextClassifierTestModelOptions = {}): Promise<{ dir: string; bytes: number }> {
  let bytes = 0;
  for (const [name, data] of textClassifierTestModelFiles(options)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, data);
    bytes += data.byteLength;
  }
  return { dir, bytes };
}

/** Cache folder name: a hash of the resolved options and the factory version. */
export function textClassifierTestModelDirName(options: TextClassifierTestModelOptions = {}): string {
  const o = resolveTextClassifierTestModelOptions(options);
  const canonical = JSON.stringify({ version: FACTORY_VERSION, ...o, triggers: Object.entries(o.triggers).sort() });
  return `text-classifier-${createHash("sha256").update(canonical).digest("hex").slice(0, 16)}`;
}

const pending = new Map<string, Promise<string>>();

/**
 * Returns the folder of a cached text classifier test model for these options, generating it under
 * `.cache/test-models/text-classifier-<hash>/` on first use. Safe across concurrent processes: each
 * writes a private temp folder and renames it into place; a loser of the race discards its copy.
 */
export async function ensureTextClassifierTestModel(options: TextClassifierTestModelOptions = {}): Promise<string> {
  const dir = join(TEST_MODEL_CACHE_DIR, textClassifierTestModelDirName(options));
  let promise = pending.get(dir);
  if (!promise) {
    promise = generateIfMissing(dir, options);
    pending.set(dir, promise);
    promise.catch(() => pending.delete(dir));
  }
  return promise;
}

async function generateIfMissing(dir: string, options: TextClassifierTestModelOptions): Promise<string> {
  if (await isComplete(dir, options)) return dir;
  await mkdir(TEST_MODEL_CACHE_DIR, { recursive: true });
  const temp = `${dir}.${process.pid}.${randomUUID()}.tmp`;
  try {
    await writeTextClassifierTestModel(temp, options);
    await rename(temp, dir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    if (await isComplete(dir, options)) return dir; // another process renamed its copy first
    throw error;
  }
  return dir;
}

async function isComplete(dir: string, options: TextClassifierTestModelOptions): Promise<boolean> {
  const names = ["config.json", "tokenizer.json", resolveTextClassifierTestModelOptions(options).modelFile];
  const found = await Promise.all(names.map((name) => stat(join(dir, name)).then((s) => s.isFile(), () => false)));
  return found.every(Boolean);
}
