/**
 * The `onnx` classifier: a text classification model from a local folder in transformers.js's
 * layout (KoalaAI/Text-Moderation, Xenova/toxic-bert, a prompt-injection classifier …), run with
 * ONNX Runtime on a thread of its own (onnx-classifier-thread.ts), its labels mapped onto Azure's
 * categories (docs/SAFETY.md "ONNX classifier"):
 * - the folder holds `config.json` (`id2label`; `problem_type` "multi_label_classification" means
 *   sigmoid scores, anything else softmax), `tokenizer.json` (+ `tokenizer_config.json`) and the
 *   graph, `onnx/model.onnx`, `model.onnx`, `onnx/model_quantized.onnx` or `model_quantized.onnx`
 *   (the first found), taking `input_ids`, `attention_mask` (+ `token_type_ids`) and giving
 *   `logits` [batch, labels];
 * - every model label is mapped to a harm category, to "jailbreak", or to "ignore";
 * - a text longer than `maxTokens` is read in overlapping windows (onnx-classifier-runner.ts) and
 *   each category takes its highest probability over the windows. Within a window a category's
 *   probability is the sum of its labels' (softmax classes exclude each other: P(H or H2) =
 *   P(H) + P(H2)) or, for sigmoid scores, the highest of them;
 * - the probability becomes a severity by the cut points: below the first 0, then 2 (low), 4
 *   (medium), 6 (high) from each cut point on; a "jailbreak" probability at or above the second
 *   cut point is a jailbreak (prompts only).
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { HARM_CATEGORIES, type Classification, type HarmCategory, type TextClassifier, type TextRole } from "./classifier.ts";
import type { OnnxClassifierSpec } from "./onnx-classifier-runner.ts";
import { OnnxClassifierThread } from "./onnx-classifier-thread.ts";

/** What a model label counts as. */
export type OnnxLabelTarget = HarmCategory | "jailbreak" | "ignore";
export type OnnxLabelMap = Readonly<Record<string, OnnxLabelTarget>>;
/** Probabilities at which severity 2 (low), 4 (medium) and 6 (high) begin; increasing, in (0, 1]. */
export type CutPoints = readonly [number, number, number];

export const DEFAULT_CUT_POINTS: CutPoints = [0.25, 0.5, 0.8];
export const DEFAULT_MAX_TOKENS = 512;
export const DEFAULT_THREADS = 2;

/**
 * KoalaAI/Text-Moderation (OpenAI moderation's labels). HR (harassment) counts as hate: Azure's
 * hate category lists "harassment and bullying"; OK is the benign class.
 */
export const KOALA_TEXT_MODERATION_LABELS: OnnxLabelMap = {
  H: "hate",
  H2: "hate",
  HR: "hate",
  S: "sexual",
  S3: "sexual",
  V: "violence",
  V2: "violence",
  SH: "self_harm",
  OK: "ignore",
};

/** Every label target (for config schemas). */
export const ONNX_LABEL_TARGETS: readonly OnnxLabelTarget[] = [...HARM_CATEGORIES, "jailbreak", "ignore"];

/** Where the graph may be, in the order looked for (full precision first, as transformers.js's fp32). */
export const ONNX_CLASSIFIER_MODEL_FILES = ["onnx/model.onnx", "model.onnx", "onnx/model_quantized.onnx", "model_quantized.onnx"] as const;

export interface OnnxTextClassifierOptions {
  /** The model folder. */
  folder: string;
  /** Every label of the model's `id2label` → what it counts as. */
  labels: OnnxLabelMap;
  /** Default {@link DEFAULT_CUT_POINTS}. */
  cutPoints?: CutPoints | undefined;
  /** Tokens per window, special tokens included. Default 512, or the model's `max_position_embeddings` when smaller. */
  maxTokens?: number | undefined;
  /** ONNX Runtime intra-op threads. Default {@link DEFAULT_THREADS}. */
  threads?: number | undefined;
  /** The graph, relative to the folder, when not one of {@link ONNX_CLASSIFIER_MODEL_FILES} (e.g. `onnx/model_q4f16.onnx`). */
  modelFile?: string | undefined;
}

/** What the folder says. */
export interface OnnxClassifierFolder {
  modelFile: string;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** `id2label` in id order. */
  labels: string[];
  activation: "sigmoid" | "softmax";
  /** config.json's `max_position_embeddings`, when it says. */
  maxPositions: number | undefined;
}

export async function readOnnxClassifierFolder(folder: string, modelFile?: string): Promise<OnnxClassifierFolder> {
  const where = `ONNX classifier folder ${folder}`;
  const isFile = (path: string) => stat(path).then((s) => s.isFile(), () => false);
  const readJson = async (name: string, required: boolean): Promise<Record<string, unknown>> => {
    const path = join(folder, name);
    if (!(await isFile(path))) {
      if (required) throw new Error(`${where}: no ${name}`);
      return {};
    }
    try {
      const value: unknown = JSON.parse(await readFile(path, "utf8"));
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // reported below
    }
    throw new Error(`${where}: ${name} is not a JSON object`);
  };
  const config = await readJson("config.json", true);
  const tokenizerJson = await readJson("tokenizer.json", true);
  const tokenizerConfig = await readJson("tokenizer_config.json", false);

  const id2label = config.id2label;
  if (typeof id2label !== "object" || id2label === null) throw new Error(`${where}: config.json has no id2label (not a classification model?)`);
  const entries = Object.entries(id2label as Record<string, unknown>);
  const labels = entries.map((_, id) => (id2label as Record<string, unknown>)[String(id)]);
  if (entries.length === 0 || !labels.every((l): l is string => typeof l === "string") || new Set(labels).size !== labels.length) {
    throw new Error(`${where}: config.json's id2label must name distinct labels for ids 0 to ${Math.max(0, entries.length - 1)}`);
  }

  const candidates = modelFile === undefined ? ONNX_CLASSIFIER_MODEL_FILES : [modelFile];
  let found: string | undefined;
  for (const name of candidates) {
    if (await isFile(join(folder, name))) {
      found = join(folder, name);
      break;
    }
  }
  if (found === undefined) throw new Error(`${where}: no ONNX graph (looked for ${candidates.join(", ")})`);

  const positions = config.max_position_embeddings;
  return {
    modelFile: found,
    tokenizerJson,
    tokenizerConfig,
    labels: labels as string[],
    activation: config.problem_type === "multi_label_classification" ? "sigmoid" : "softmax",
    maxPositions: typeof positions === "number" && Number.isInteger(positions) && positions > 0 ? positions : undefined,
  };
}

/** Severity 0, 2, 4 or 6 for a probability (see the module comment). */
export function severityOf(probability: number, cutPoints: CutPoints): number {
  if (probability >= cutPoints[2]) return 6;
  if (probability >= cutPoints[1]) return 4;
  if (probability >= cutPoints[0]) return 2;
  return 0;
}

/** How logits become findings: the model's labels (id order), their targets, the activation, the cut points. */
export interface LabelPlan {
  labels: readonly string[];
  targets: OnnxLabelMap;
  activation: "sigmoid" | "softmax";
  cutPoints: CutPoints;
}

/** Each window's probabilities, in place (`windows` rows of `labels` logits). */
export function toProbabilities(logits: Float32Array, labels: number, activation: "sigmoid" | "softmax"): Float32Array {
  for (let row = 0; row < logits.length; row += labels) {
    if (activation === "sigmoid") {
      for (let i = row; i < row + labels; i++) logits[i] = 1 / (1 + Math.exp(-logits[i]!));
      continue;
    }
    let max = -Infinity;
    for (let i = row; i < row + labels; i++) max = Math.max(max, logits[i]!);
    let sum = 0;
    for (let i = row; i < row + labels; i++) sum += logits[i] = Math.exp(logits[i]! - max);
    for (let i = row; i < row + labels; i++) logits[i] = logits[i]! / sum;
  }
  return logits;
}

/** Each target's probability: per window the sum (softmax) or highest (sigmoid) of its labels', then the highest over windows. */
export function targetProbabilities(logits: Float32Array, plan: LabelPlan): Map<OnnxLabelTarget, number> {
  const width = plan.labels.length;
  const probabilities = toProbabilities(logits, width, plan.activation);
  const best = new Map<OnnxLabelTarget, number>();
  for (let row = 0; row < probabilities.length; row += width) {
    const window = new Map<OnnxLabelTarget, number>();
    plan.labels.forEach((label, i) => {
      const target = plan.targets[label]!;
      const p = probabilities[row + i]!;
      const had = window.get(target) ?? 0;
      window.set(target, plan.activation === "softmax" ? Math.min(1, had + p) : Math.max(had, p));
    });
    for (const [target, p] of window) best.set(target, Math.max(best.get(target) ?? 0, p));
  }
  best.delete("ignore");
  return best;
}

/** The findings for a text's window logits. */
export function classificationOf(logits: Float32Array, plan: LabelPlan, role: TextRole): Classification {
  const probabilities = targetProbabilities(logits, plan);
  const severities: Partial<Record<HarmCategory, number>> = {};
  for (const category of HARM_CATEGORIES) {
    const p = probabilities.get(category);
    if (p !== undefined) severities[category] = severityOf(p, plan.cutPoints);
  }
  const jailbreak = probabilities.get("jailbreak");
  return role === "prompt" && jailbreak !== undefined ? { severities, jailbreak: jailbreak >= plan.cutPoints[1] } : { severities };
}

function checkOptions(options: OnnxTextClassifierOptions, folder: OnnxClassifierFolder): { cutPoints: CutPoints; maxTokens: number; threads: number } {
  const where = `ONNX classifier ${options.folder}`;
  const unknown = Object.keys(options.labels).filter((label) => !folder.labels.includes(label));
  if (unknown.length > 0) throw new Error(`${where}: the label map names ${unknown.join(", ")}, which the model does not have (its labels: ${folder.labels.join(", ")})`);
  const unmapped = folder.labels.filter((label) => !Object.hasOwn(options.labels, label));
  if (unmapped.length > 0) throw new Error(`${where}: the label map says nothing of ${unmapped.join(", ")} (map each label to ${ONNX_LABEL_TARGETS.join(", ")})`);
  for (const [label, target] of Object.entries(options.labels)) {
    if (!ONNX_LABEL_TARGETS.includes(target)) throw new Error(`${where}: label ${label} maps to ${String(target)}; expected one of ${ONNX_LABEL_TARGETS.join(", ")}`);
  }
  const cutPoints = options.cutPoints ?? DEFAULT_CUT_POINTS;
  const [low, medium, high] = cutPoints;
  if (cutPoints.length !== 3 || !(low > 0 && low < medium && medium < high && high <= 1)) {
    throw new Error(`${where}: cutPoints must be three increasing probabilities in (0, 1], got [${cutPoints.join(", ")}]`);
  }
  const maxTokens = options.maxTokens ?? Math.min(DEFAULT_MAX_TOKENS, folder.maxPositions ?? DEFAULT_MAX_TOKENS);
  if (!Number.isInteger(maxTokens) || maxTokens < 2) throw new Error(`${where}: maxTokens must be an integer of at least 2, got ${maxTokens}`);
  if (folder.maxPositions !== undefined && maxTokens > folder.maxPositions) {
    throw new Error(`${where}: maxTokens ${maxTokens} is more than the model's max_position_embeddings (${folder.maxPositions})`);
  }
  const threads = options.threads ?? DEFAULT_THREADS;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`${where}: threads must be a positive integer, got ${threads}`);
  return { cutPoints, maxTokens, threads };
}

/** Loads the folder and the model (on its thread); rejects with what is wrong with either. */
export async function createOnnxTextClassifier(options: OnnxTextClassifierOptions): Promise<TextClassifier> {
  const folder = await readOnnxClassifierFolder(options.folder, options.modelFile);
  const { cutPoints, maxTokens, threads } = checkOptions(options, folder);
  const spec: OnnxClassifierSpec = {
    modelFile: folder.modelFile,
    tokenizerJson: folder.tokenizerJson,
    tokenizerConfig: folder.tokenizerConfig,
    labelCount: folder.labels.length,
    maxTokens,
    threads,
  };
  const thread = new OnnxClassifierThread(spec);
  await thread.start();
  const plan: LabelPlan = { labels: folder.labels, targets: { ...options.labels }, activation: folder.activation, cutPoints };
  const assessesHarm = folder.labels.some((label) => (HARM_CATEGORIES as readonly string[]).includes(plan.targets[label]!));
  return {
    name: "onnx",
    async classify(text: string, role: TextRole, signal: AbortSignal): Promise<Classification> {
      // A jailbreak-only model has nothing to say of a completion.
      if (role === "completion" && !assessesHarm) return { severities: {} };
      const { logits } = await thread.logits(text, signal);
      return classificationOf(logits, plan, role);
    },
    close: () => thread.close(),
  };
}
