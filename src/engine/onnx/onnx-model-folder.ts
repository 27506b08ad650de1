/**
 * Reads a Phi-3/3.5-vision ONNX model folder without loading any graph: which three graphs to run
 * (vision encoder, embedding, decoder), their input and output names, and the model's facts.
 * Two layouts are understood (docs/VISION.md "ONNX engine"):
 * - Microsoft's ONNX Runtime GenAI export: `genai_config.json` (`model.type` "phi3v") names the
 *   graphs and their IO; `processor_config.json` carries `num_crops`;
 * - the transformers.js export (onnx-community): `config.json` (`model_type` "phi3_v") and
 *   `onnx/vision_encoder*.onnx`, `onnx/prepare_inputs_embeds*.onnx`, `onnx/model*.onnx` with a
 *   dtype suffix (the most precise one present is taken); `preprocessor_config.json` carries `num_crops`.
 * Both carry `tokenizer.json` and `tokenizer_config.json`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";

/** Input and output names of the three graphs. `%d` in a KV name stands for the layer index. */
export interface OnnxGraphNames {
  vision: { file: string; pixelValues: string; imageSizes: string; imageFeatures: string };
  embedding: { file: string; inputIds: string; imageFeatures: string; inputsEmbeds: string };
  decoder: {
    file: string;
    inputsEmbeds: string;
    attentionMask: string;
    /** Fed only when the decoder declares it. */
    positionIds: string;
    pastKey: string;
    pastValue: string;
    logits: string;
    presentKey: string;
    presentValue: string;
  };
}

export interface OnnxModelFolder {
  folder: string;
  layout: "ort-genai" | "transformers.js";
  name: string;
  graphs: OnnxGraphNames;
  /** Token ids that end a generation (genai `eos_token_id`, a number or a list). */
  eosTokenIds: number[];
  contextLength: number | undefined;
  vocabSize: number | undefined;
  hiddenSize: number | undefined;
  numLayers: number | undefined;
  numKeyValueHeads: number | undefined;
  headSize: number | undefined;
  /** The image processor's `num_crops` (tiles besides the global view), when the folder says. */
  numCrops: number | undefined;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  chatTemplate: string | undefined;
  /** Bytes of every graph file and its external data (weights). */
  weightBytes: number;
}

/** transformers.js dtype suffixes, most precise first (`model.onnx` is fp32). */
const DTYPE_SUFFIXES = ["", "_fp16", "_quantized", "_int8", "_uint8", "_q8", "_q4", "_q4f16", "_bnb4"];

export function readOnnxModelFolder(folder: string): OnnxModelFolder {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new Error(`ONNX model folder ${folder} does not exist or is not a folder`);
  const genai = join(folder, "genai_config.json");
  if (existsSync(genai)) return readGenAiFolder(folder, readJson(genai));
  const config = join(folder, "config.json");
  if (existsSync(config)) {
    const parsed = readJson(config);
    if (parsed.model_type === "phi3_v") return readTransformersJsFolder(folder, parsed);
    throw new Error(`${folder}: config.json has model_type ${JSON.stringify(parsed.model_type)}; the ONNX engine serves Phi-3/3.5-vision ("phi3_v") only`);
  }
  throw new Error(
    `${folder} is not a Phi-3/3.5-vision ONNX model folder: expected genai_config.json (an ONNX Runtime GenAI export) ` +
      `or config.json with model_type "phi3_v" and an onnx/ folder (a transformers.js export)`,
  );
}

function readGenAiFolder(folder: string, config: Record<string, unknown>): OnnxModelFolder {
  const model = object(config.model, "genai_config.json model");
  if (model.type !== "phi3v") throw new Error(`${folder}: genai_config.json model.type is ${JSON.stringify(model.type)}; the ONNX engine serves Phi-3/3.5-vision ("phi3v") only`);
  const decoder = object(model.decoder, "genai_config.json model.decoder");
  const embedding = object(model.embedding, "genai_config.json model.embedding");
  const vision = object(model.vision, "genai_config.json model.vision");
  const io = (section: Record<string, unknown>, key: "inputs" | "outputs") => object(section[key] ?? {}, `${key}`);
  const name = (section: Record<string, unknown>, key: "inputs" | "outputs", field: string, fallback: string) => str(io(section, key)[field]) ?? fallback;
  const graphs: OnnxGraphNames = {
    vision: {
      file: graphFile(folder, vision.filename, "model.vision.filename"),
      pixelValues: name(vision, "inputs", "pixel_values", "pixel_values"),
      imageSizes: name(vision, "inputs", "image_sizes", "image_sizes"),
      imageFeatures: name(vision, "outputs", "image_features", "image_features"),
    },
    embedding: {
      file: graphFile(folder, embedding.filename, "model.embedding.filename"),
      inputIds: name(embedding, "inputs", "input_ids", "input_ids"),
      imageFeatures: name(embedding, "inputs", "image_features", "image_features"),
      inputsEmbeds: name(embedding, "outputs", "inputs_embeds", "inputs_embeds"),
    },
    decoder: {
      file: graphFile(folder, decoder.filename, "model.decoder.filename"),
      inputsEmbeds: name(decoder, "inputs", "inputs_embeds", "inputs_embeds"),
      attentionMask: name(decoder, "inputs", "attention_mask", "attention_mask"),
      positionIds: name(decoder, "inputs", "position_ids", "position_ids"),
      pastKey: name(decoder, "inputs", "past_key_names", "past_key_values.%d.key"),
      pastValue: name(decoder, "inputs", "past_value_names", "past_key_values.%d.value"),
      logits: name(decoder, "outputs", "logits", "logits"),
      presentKey: name(decoder, "outputs", "present_key_names", "present.%d.key"),
      presentValue: name(decoder, "outputs", "present_value_names", "present.%d.value"),
    },
  };
  const tokenizer = readTokenizerFiles(folder);
  const processor = optionalJson(join(folder, "processor_config.json"));
  return {
    folder,
    layout: "ort-genai",
    name: basename(folder),
    graphs,
    eosTokenIds: idList(model.eos_token_id),
    contextLength: num(model.context_length),
    vocabSize: num(model.vocab_size),
    hiddenSize: num(decoder.hidden_size),
    numLayers: num(decoder.num_hidden_layers),
    numKeyValueHeads: num(decoder.num_key_value_heads),
    headSize: num(decoder.head_size),
    numCrops: processor ? genAiNumCrops(processor) : undefined,
    ...tokenizer,
    weightBytes: graphBytes([graphs.vision.file, graphs.embedding.file, graphs.decoder.file]),
  };
}

function readTransformersJsFolder(folder: string, config: Record<string, unknown>): OnnxModelFolder {
  const onnxDir = join(folder, "onnx");
  const files = existsSync(onnxDir) ? readdirSync(onnxDir) : [];
  const pick = (stem: string) => {
    const suffix = DTYPE_SUFFIXES.find((s) => files.includes(`${stem}${s}.onnx`));
    if (suffix === undefined) throw new Error(`${folder}: no onnx/${stem}*.onnx (a transformers.js Phi-3-vision export has onnx/vision_encoder, onnx/prepare_inputs_embeds and onnx/model)`);
    return join(onnxDir, `${stem}${suffix}.onnx`);
  };
  const graphs: OnnxGraphNames = {
    vision: { file: pick("vision_encoder"), pixelValues: "pixel_values", imageSizes: "image_sizes", imageFeatures: "image_features" },
    embedding: { file: pick("prepare_inputs_embeds"), inputIds: "input_ids", imageFeatures: "image_features", inputsEmbeds: "inputs_embeds" },
    decoder: {
      file: pick("model"),
      inputsEmbeds: "inputs_embeds",
      attentionMask: "attention_mask",
      positionIds: "position_ids",
      pastKey: "past_key_values.%d.key",
      pastValue: "past_key_values.%d.value",
      logits: "logits",
      presentKey: "present.%d.key",
      presentValue: "present.%d.value",
    },
  };
  const hiddenSize = num(config.hidden_size);
  const heads = num(config.num_attention_heads);
  const preprocessor = optionalJson(join(folder, "preprocessor_config.json"));
  return {
    folder,
    layout: "transformers.js",
    name: basename(folder),
    graphs,
    eosTokenIds: idList(config.eos_token_id),
    contextLength: num(config.max_position_embeddings),
    vocabSize: num(config.vocab_size),
    hiddenSize,
    numLayers: num(config.num_hidden_layers),
    numKeyValueHeads: num(config.num_key_value_heads) ?? heads,
    headSize: num(config.head_dim) ?? (hiddenSize !== undefined && heads ? hiddenSize / heads : undefined),
    numCrops: preprocessor ? num(preprocessor.num_crops) : undefined,
    ...readTokenizerFiles(folder),
    weightBytes: graphBytes([graphs.vision.file, graphs.embedding.file, graphs.decoder.file]),
  };
}

function readTokenizerFiles(folder: string): Pick<OnnxModelFolder, "tokenizerJson" | "tokenizerConfig" | "chatTemplate"> {
  const tokenizerPath = join(folder, "tokenizer.json");
  if (!existsSync(tokenizerPath)) throw new Error(`${folder}: tokenizer.json is missing`);
  const tokenizerConfig = optionalJson(join(folder, "tokenizer_config.json")) ?? {};
  return { tokenizerJson: readJson(tokenizerPath), tokenizerConfig, chatTemplate: str(tokenizerConfig.chat_template) };
}

/** `num_crops` of ORT GenAI's `Phi3ImageTransform` step. */
function genAiNumCrops(processor: Record<string, unknown>): number | undefined {
  const transforms = (processor.processor as { transforms?: unknown } | undefined)?.transforms;
  if (!Array.isArray(transforms)) return undefined;
  for (const step of transforms) {
    const operation = (step as { operation?: { type?: unknown; attrs?: Record<string, unknown> } }).operation;
    if (operation?.type === "Phi3ImageTransform") return num(operation.attrs?.num_crops);
  }
  return undefined;
}

function graphFile(folder: string, filename: unknown, field: string): string {
  const name = str(filename);
  if (!name) throw new Error(`${folder}: genai_config.json ${field} is missing`);
  const path = join(folder, name);
  if (!existsSync(path)) throw new Error(`${folder}: ${name} (genai_config.json ${field}) is missing`);
  return path;
}

/** Graph files plus their external data (`x.onnx.data`, `x.onnx_data`, or `x.onnx.data` named inside). */
function graphBytes(files: readonly string[]): number {
  let total = 0;
  for (const file of files) {
    total += statSync(file).size;
    for (const data of [`${file}.data`, `${file}_data`]) if (existsSync(data)) total += statSync(data).size;
  }
  return total;
}

function readJson(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`${path} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  return object(parsed, path);
}

function optionalJson(path: string): Record<string, unknown> | undefined {
  return existsSync(path) ? readJson(path) : undefined;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Record<string, unknown>;
}

const str = (value: unknown) => (typeof value === "string" ? value : undefined);
const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : undefined);
const idList = (value: unknown) => (Array.isArray(value) ? value.filter((v): v is number => typeof v === "number") : typeof value === "number" ? [value] : []);
