/**
 * A seeded random-weight Phi-3-vision test model in Microsoft's ONNX Runtime GenAI folder layout
 * (docs/VISION.md "Test model"): three ONNX graphs (phi3v-graphs.ts) named as in
 * microsoft/Phi-3-vision-128k-instruct-onnx-cpu, genai_config.json, processor_config.json and
 * the real Phi-3-vision tokenizer files (hf-tokenizer.ts), plus `phiserve-test-model.json`
 * saying what it is. Weights are random: the text is gibberish, but token ids, image token
 * counts, IO names and shapes are the real model's.
 *
 * Like the GGUF test models, only NORMAL vocabulary pieces can win a logit; control, byte,
 * added and padding ids get exactly 0 and are never emitted on their own (use a logit bias or
 * max_tokens to end a generation).
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { phi3vSpecialTokensMap, phi3vTokenizerConfig, phi3vTokenizerJson } from "./hf-tokenizer.ts";
import { buildPhi3vDecoderGraph, buildPhi3vEmbeddingGraph, buildPhi3vVisionGraph, type Phi3vGraphShape } from "./phi3v-graphs.ts";
import { PHI3_TOKEN_IDS, PHI3_VOCAB_SIZE, TokenType, phi3Vocab } from "./phi3-vocab.ts";
import { TEST_MODEL_CACHE_DIR } from "./test-models.ts";

/** Shape and settings of a Phi-3-vision test model; omitted fields take the tiny defaults. */
export interface Phi3vTestModelOptions {
  /** Hidden size. Default 32. */
  hidden?: number | undefined;
  /** Attention heads; head_dim = hidden / heads (even). Default 4. */
  heads?: number | undefined;
  /** Key/value heads (GQA); divides heads. Default 2. */
  kvHeads?: number | undefined;
  /** Decoder layers. Default 2. */
  layers?: number | undefined;
  /** MLP inner width. Default 64. */
  ff?: number | undefined;
  /** `context_length` written in genai_config.json (the graphs have no length cap). Default 131072. */
  contextLength?: number | undefined;
  /** `num_crops` of processor_config.json. Default 16 (Phi-3-vision-128k-instruct's). */
  numCrops?: number | undefined;
  /** PRNG seed of all weights. Default 42. */
  seed?: number | undefined;
}

export type ResolvedPhi3vTestModelOptions = { [K in keyof Phi3vTestModelOptions]-?: number };

export const PHI3V_TEST_MODEL_DEFAULTS: ResolvedPhi3vTestModelOptions = {
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  layers: 2,
  ff: 64,
  contextLength: 131072,
  numCrops: 16,
  seed: 42,
};

/** File names of the three graphs (as in Microsoft's Phi-3-vision-128k-instruct ONNX export). */
export const PHI3V_FILES = {
  vision: "phi-3-v-128k-instruct-vision.onnx",
  embedding: "phi-3-v-128k-instruct-text-embedding.onnx",
  decoder: "phi-3-v-128k-instruct-text.onnx",
} as const;

/** End-of-generation ids: `<|end|>`, `<|assistant|>`, `<|endoftext|>`. */
export const PHI3V_EOS_TOKEN_IDS = [PHI3_TOKEN_IDS.end, PHI3_TOKEN_IDS.assistant, PHI3_TOKEN_IDS.endOfText] as const;

/** Bump when the bytes written for the same options change, so cached folders are regenerated. */
const PHI3V_FACTORY_VERSION = 1;

export function resolvePhi3vTestModelOptions(options: Phi3vTestModelOptions = {}): ResolvedPhi3vTestModelOptions {
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Phi3vTestModelOptions;
  const o: ResolvedPhi3vTestModelOptions = { ...PHI3V_TEST_MODEL_DEFAULTS, ...(defined as Partial<ResolvedPhi3vTestModelOptions>) };
  for (const [key, value] of Object.entries(o)) {
    if (!Number.isInteger(value) || value < (key === "seed" ? 0 : 1)) throw new Error(`phi3v test model: ${key} must be a positive integer, got ${value}`);
  }
  if (o.hidden % o.heads !== 0 || (o.hidden / o.heads) % 2 !== 0) throw new Error(`phi3v test model: hidden (${o.hidden}) / heads (${o.heads}) must be an even integer`);
  if (o.heads % o.kvHeads !== 0) throw new Error(`phi3v test model: heads (${o.heads}) must be a multiple of kvHeads (${o.kvHeads})`);
  return o;
}

/** The shape passed to the graph builders. */
export function phi3vGraphShape(o: ResolvedPhi3vTestModelOptions): Phi3vGraphShape {
  const { types } = phi3Vocab();
  return {
    hidden: o.hidden,
    heads: o.heads,
    kvHeads: o.kvHeads,
    headDim: o.hidden / o.heads,
    layers: o.layers,
    ff: o.ff,
    vocab: PHI3_VOCAB_SIZE,
    seed: o.seed,
    emittable: (id) => types[id] === TokenType.NORMAL,
  };
}

/** Every file of the folder: name → bytes. Deterministic for given options. */
export function phi3vTestModelFiles(options: Phi3vTestModelOptions = {}): Map<string, Uint8Array> {
  const o = resolvePhi3vTestModelOptions(options);
  const shape = phi3vGraphShape(o);
  const json = (value: unknown) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  return new Map<string, Uint8Array>([
    [PHI3V_FILES.vision, buildPhi3vVisionGraph(shape)],
    [PHI3V_FILES.embedding, buildPhi3vEmbeddingGraph(shape)],
    [PHI3V_FILES.decoder, buildPhi3vDecoderGraph(shape)],
    ["genai_config.json", json(genaiConfig(o))],
    ["processor_config.json", json(processorConfig(o))],
    ["tokenizer.json", json(phi3vTokenizerJson())],
    ["tokenizer_config.json", json(phi3vTokenizerConfig({ modelMaxLength: o.contextLength }))],
    ["special_tokens_map.json", json(phi3vSpecialTokensMap())],
    ["phiserve-test-model.json", json(testModelNote(o))],
  ]);
}

/** genai_config.json in ONNX Runtime GenAI's `phi3v` shape. */
function genaiConfig(o: ResolvedPhi3vTestModelOptions): Record<string, unknown> {
  return {
    model: {
      bos_token_id: PHI3_TOKEN_IDS.bos,
      context_length: o.contextLength,
      decoder: {
        session_options: { log_id: "onnxruntime-genai", provider_options: [] },
        filename: PHI3V_FILES.decoder,
        head_size: o.hidden / o.heads,
        hidden_size: o.hidden,
        inputs: {
          inputs_embeds: "inputs_embeds",
          attention_mask: "attention_mask",
          past_key_names: "past_key_values.%d.key",
          past_value_names: "past_key_values.%d.value",
        },
        outputs: { logits: "logits", present_key_names: "present.%d.key", present_value_names: "present.%d.value" },
        num_attention_heads: o.heads,
        num_hidden_layers: o.layers,
        num_key_value_heads: o.kvHeads,
      },
      embedding: {
        filename: PHI3V_FILES.embedding,
        inputs: { input_ids: "input_ids", image_features: "image_features" },
        outputs: { inputs_embeds: "inputs_embeds" },
      },
      vision: {
        filename: PHI3V_FILES.vision,
        inputs: { pixel_values: "pixel_values", image_sizes: "image_sizes" },
        outputs: { image_features: "image_features" },
      },
      eos_token_id: [...PHI3V_EOS_TOKEN_IDS],
      pad_token_id: PHI3_TOKEN_IDS.pad,
      type: "phi3v",
      vocab_size: PHI3_VOCAB_SIZE,
    },
    search: {
      diversity_penalty: 0,
      do_sample: false,
      early_stopping: true,
      length_penalty: 1,
      max_length: o.contextLength,
      min_length: 0,
      no_repeat_ngram_size: 0,
      num_beams: 1,
      num_return_sequences: 1,
      past_present_share_buffer: false,
      repetition_penalty: 1,
      temperature: 1,
      top_k: 1,
      top_p: 1,
    },
  };
}

/** processor_config.json (ORT GenAI's image pipeline; `num_crops` is what counts here). */
function processorConfig(o: ResolvedPhi3vTestModelOptions): Record<string, unknown> {
  return {
    processor: {
      name: "image_processing",
      transforms: [
        { operation: { name: "decode_image", domain: "com.microsoft.extensions", type: "DecodeImage", attrs: { color_space: "BGR" } } },
        { operation: { name: "convert_to_rgb", domain: "com.microsoft.extensions", type: "ConvertRGB" } },
        {
          operation: {
            name: "phi3_image_transform",
            domain: "com.microsoft.extensions",
            type: "Phi3ImageTransform",
            attrs: { num_crops: o.numCrops, num_img_tokens: 144 },
          },
        },
      ],
    },
  };
}

function testModelNote(o: ResolvedPhi3vTestModelOptions): Record<string, unknown> {
  return {
    description: "phiserve Phi-3-vision TEST model: random weights and a synthetic vision encoder; not a trained model. Real tokenizer and IO contract.",
    family: "phi3v",
    factoryVersion: PHI3V_FACTORY_VERSION,
    ...o,
    headDim: o.hidden / o.heads,
    vocabSize: PHI3_VOCAB_SIZE,
  };
}

/** Writes the folder (created if missing; existing files of the same names are replaced). */
export async function writePhi3vTestModel(dir: string, options: Phi3vTestModelOptions = {}): Promise<{ dir: string; bytes: number }> {
  const files = phi3vTestModelFiles(options);
  await mkdir(dir, { recursive: true });
  let bytes = 0;
  for (const [name, data] of files) {
    await writeFile(join(dir, name), data);
    bytes += data.byteLength;
  }
  return { dir, bytes };
}

/** Cache folder name: a hash of the resolved options and the factory version. */
export function phi3vTestModelDirName(options: Phi3vTestModelOptions = {}): string {
  const o = resolvePhi3vTestModelOptions(options);
  const canonical = JSON.stringify({ version: PHI3V_FACTORY_VERSION, ...o }, Object.keys({ version: 0, ...o }).sort());
  return `phi3v-${createHash("sha256").update(canonical).digest("hex").slice(0, 16)}`;
}

const pending = new Map<string, Promise<string>>();

/**
 * Returns the folder of a cached Phi-3-vision test model for these options, generating it under
 * `.cache/test-models/phi3v-<hash>/` on first use. Safe across concurrent processes: each writes
 * a private temp folder and renames it into place; a loser of the race discards its copy.
 */
export async function ensurePhi3vTestModel(options: Phi3vTestModelOptions = {}): Promise<string> {
  const dir = join(TEST_MODEL_CACHE_DIR, phi3vTestModelDirName(options));
  let promise = pending.get(dir);
  if (!promise) {
    promise = generateFolderIfMissing(dir, options);
    pending.set(dir, promise);
    promise.catch(() => pending.delete(dir));
  }
  return promise;
}

async function generateFolderIfMissing(dir: string, options: Phi3vTestModelOptions): Promise<string> {
  if (await isComplete(dir)) return dir;
  await mkdir(TEST_MODEL_CACHE_DIR, { recursive: true });
  const temp = `${dir}.${process.pid}.${randomUUID()}.tmp`;
  try {
    await writePhi3vTestModel(temp, options);
    await rename(temp, dir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    if (await isComplete(dir)) return dir; // another process renamed its copy first
    throw error;
  }
  return dir;
}

async function isComplete(dir: string): Promise<boolean> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return false;
  const names = new Set(await readdir(dir));
  return ["genai_config.json", "tokenizer.json", ...Object.values(PHI3V_FILES)].every((name) => names.has(name));
}
