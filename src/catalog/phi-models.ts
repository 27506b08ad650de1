/**
 * The Phi model catalog, as data.
 *
 * The facts behind every value, and where each was found, are in docs/MODELS.md; values marked **[inferred]** or
 * **[unverified]** there are marked the same way here.
 *
 * Download policy (docs/MODELS.md, "Downloads"): Hugging Face `resolve/main` URLs. A `sha256` is given only where a
 * source quotes the full 64-hex digest; otherwise it is left undefined and the downloader falls back to the
 * server's `x-linked-etag`. `sizeBytes` is left undefined everywhere: the sources round sizes to 10 MB
 * ("2.39 GB"), which must not be mistaken for exact sizes.
 *
 * @module
 */
import type { ChatTemplateId } from "./chat-templates.ts";
import type { FolderDownloadSource } from "../models/folder-downloader.ts";

/** Which engine serves a model. */
export type EngineKind = "llama-cpp" | "onnx-vision" | "none";

/** One catalog entry. */
export interface CatalogModel {
  /** Catalog name used on the CLI: the lower-cased Hugging Face id without `microsoft/`, e.g. "phi-3.5-mini-instruct". */
  id: string;
  /** `/info` `model_name` as Azure spells it (docs/MODELS.md, "Model table"), e.g. "Phi-3.5-Mini-Instruct". */
  azureName: string;
  /** Hugging Face `model_type` family (docs/MODELS.md, "Model table"). */
  architecture: "phi3" | "phimoe" | "phi3small" | "phi3v" | "phi4mm";
  /** Parameter count as documented, e.g. "3.8B". */
  parameters: string;
  /** Azure-documented context window in tokens (docs/MODELS.md, "Model table"). */
  contextLength: number;
  /** Per Azure docs (docs/MODELS.md, "System messages"): false => system messages are translated into user messages. */
  supportsSystemRole: boolean;
  /** Chat template of the model (docs/MODELS.md, "Chat templates"), matching the template embedded in the catalog download. */
  chatTemplate: ChatTemplateId;
  /** Tokenizer family and vocabulary size (docs/MODELS.md, "Tokenizers and stop tokens"). */
  tokenizer: "llama-spm-32064" | "cl100k-100352" | "o200k-200064";
  /**
   * Token texts that end generation (docs/MODELS.md, "Tokenizers and stop tokens"). Includes tokens llama.cpp already treats as
   * end-of-generation; extra ones (`<|assistant|>` for SPM Phi) must be added as stop triggers by the engine.
   */
  stopTokens: string[];
  /** Native tool calling (Phi-4-mini only; docs/MODELS.md, "Tool calling"). */
  supportsTools: boolean;
  /** Accepts images (Phi-3/3.5-vision). */
  supportsVision: boolean;
  /** Vision models: HD crops per image by default (16: the single-image setting, which matches Azure's counting; docs/VISION.md "Image token formula"). */
  numCrops?: number | undefined;
  /** Which engine serves it. */
  engine: EngineKind;
  /** False for engines not built yet (everything but llama-cpp for now); such models are listed honestly. */
  engineAvailable: boolean;
  /** Why the model cannot be served; present whenever `engineAvailable` is false. */
  unavailableReason?: string | undefined;
  /** Default single-file download (a GGUF) for llama-cpp models. */
  download?: {
    url: string;
    fileName: string;
    /** Exact size in bytes, when known. */
    sizeBytes?: number;
    /** Full lower-case hex sha256, only when a source gives all 64 digits. */
    sha256?: string;
    /** Where the URL/digest come from (upstream repo and digest source; see docs/MODELS.md, "Downloads"). */
    source: string;
  };
  /** Default folder download (the ONNX files of the onnx-vision engine): a folder of a Hugging Face repo at a revision. */
  downloadFolder?: FolderDownloadSource;
  /** Azure serverless quota per deployment; always {@link AZURE_SERVERLESS_QUOTA} (docs/MODELS.md, "Azure quota"). */
  quota: { tokensPerMinute: number; requestsPerMinute: number };
}

/**
 * Azure's serverless quota for every Phi deployment: 200 000 tokens and 1 000 requests per minute
 * (docs/MODELS.md, "Azure quota"). Deployments fall back to it when neither their settings nor their catalog entry
 * name a quota.
 */
export const AZURE_SERVERLESS_QUOTA: Readonly<CatalogModel["quota"]> = Object.freeze({
  tokensPerMinute: 200_000,
  requestsPerMinute: 1_000,
});

/**
 * Stop tokens of the Llama-2 SentencePiece Phi models: `<|end|>` and `<|endoftext|>` are end-of-generation in
 * llama.cpp by name, `<|assistant|>` is not and must be an extra stop to match Hugging Face's `eos_token_id`
 * (docs/MODELS.md, "Tokenizers and stop tokens").
 */
const SPM_STOP_TOKENS = ["<|end|>", "<|endoftext|>", "<|assistant|>"] as const;

/** Hugging Face download URL for a file on the main branch. */
function hf(repo: string, fileName: string): string {
  return `https://huggingface.co/${repo}/resolve/main/${fileName}`;
}

/** A catalog entry as written below: shared arrays and the quota may be read-only; {@link defineModel} copies them. */
type ModelSpec = Omit<CatalogModel, "stopTokens" | "quota"> & {
  stopTokens: readonly string[];
  quota: Readonly<CatalogModel["quota"]>;
};

/** What a family fixes for its members; identity (`id`, `azureName`) always belongs to the entry. */
type FamilyDefaults = Partial<Omit<ModelSpec, "id" | "azureName">>;

/** An entry of family `F` gives every field `F` leaves open and may override any `F` sets. */
type OwnFields<F extends FamilyDefaults> = Omit<ModelSpec, keyof F> & Partial<ModelSpec>;

/**
 * Builds one catalog entry from its family's defaults and its own fields. The entry gets fresh copies of the
 * shared stop-token list and quota, and a fixed key order (that of {@link CatalogModel}).
 */
function defineModel<F extends FamilyDefaults>(family: F, own: OwnFields<F>): CatalogModel {
  // Complete by construction: OwnFields<F> requires every field of ModelSpec that F does not set.
  const m = { ...family, ...own } as ModelSpec;
  return {
    id: m.id,
    azureName: m.azureName,
    architecture: m.architecture,
    parameters: m.parameters,
    contextLength: m.contextLength,
    supportsSystemRole: m.supportsSystemRole,
    chatTemplate: m.chatTemplate,
    tokenizer: m.tokenizer,
    stopTokens: [...m.stopTokens],
    supportsTools: m.supportsTools,
    supportsVision: m.supportsVision,
    ...(m.numCrops === undefined ? {} : { numCrops: m.numCrops }),
    engine: m.engine,
    engineAvailable: m.engineAvailable,
    // Absent, not undefined, where an entry has none (the catalog is compared and printed as data).
    ...(m.unavailableReason === undefined ? {} : { unavailableReason: m.unavailableReason }),
    ...(m.download === undefined ? {} : { download: m.download }),
    ...(m.downloadFolder === undefined ? {} : { downloadFolder: { ...m.downloadFolder } }),
    quota: { ...m.quota },
  };
}

/**
 * What every Phi model shares. Azure lists none of them as supporting `role: "system"` (two by inference), so the
 * server translates system messages for all of them; only Phi-4-mini has tools; only the vision models take
 * images (docs/MODELS.md, "System messages", "Tool calling", "Azure quota").
 */
const PHI = {
  supportsSystemRole: false,
  supportsTools: false,
  supportsVision: false,
  quota: AZURE_SERVERLESS_QUOTA,
} as const satisfies FamilyDefaults;

/** Served from one GGUF by the llama.cpp engine. */
const ON_LLAMA_CPP = { engine: "llama-cpp", engineAvailable: true } as const satisfies FamilyDefaults;

/** Phi-3 / Phi-3.5 text models on the Llama-2 SentencePiece vocabulary (mini, medium, 3.5-mini; MoE overrides the architecture). */
const PHI3_SPM_TEXT = {
  ...PHI,
  ...ON_LLAMA_CPP,
  architecture: "phi3",
  tokenizer: "llama-spm-32064",
  stopTokens: SPM_STOP_TOKENS,
} as const satisfies FamilyDefaults;

/**
 * Phi-3-small: cl100k vocabulary, `<|endoftext|>` 100257 and `<|end|>` 100266 stop; no llama.cpp architecture, so no
 * engine yet (docs/MODELS.md, "Models without an engine yet").
 */
const PHI3_SMALL = {
  ...PHI,
  architecture: "phi3small",
  parameters: "7B",
  chatTemplate: "phi3-small",
  tokenizer: "cl100k-100352",
  stopTokens: ["<|end|>", "<|endoftext|>"],
  engine: "none",
  engineAvailable: false,
  unavailableReason:
    "Phi-3-small (Phi3SmallForCausalLM, block-sparse attention, cl100k tokenizer) has no llama.cpp architecture and no " +
    "GGUF converter; it needs ONNX Runtime GenAI (microsoft/Phi-3-small-*-onnx-*), and the ONNX text engine is not " +
    "implemented yet (see docs/MODELS.md)",
} as const satisfies FamilyDefaults;

/**
 * Phi-3 / Phi-3.5 vision: SPM vocabulary plus `<|image|>`, template T6, served from Microsoft's ONNX exports by the
 * onnx-vision engine (docs/VISION.md). 16 crops per image, the model card's single-image setting, reproduce Azure's
 * documented usage (docs/VISION.md "Image token formula").
 */
const PHI3_VISION = {
  ...PHI,
  architecture: "phi3v",
  parameters: "4.2B",
  contextLength: 131072,
  chatTemplate: "phi3-vision",
  tokenizer: "llama-spm-32064",
  stopTokens: SPM_STOP_TOKENS,
  supportsVision: true,
  numCrops: 16,
  engine: "onnx-vision",
  engineAvailable: true,
} as const satisfies FamilyDefaults;

/** phi-4 (14B): cl100k-based vocabulary, stops on `<|im_end|>` 100265 and `<|endoftext|>` 100257. */
const PHI4 = {
  ...PHI,
  ...ON_LLAMA_CPP,
  architecture: "phi3",
  tokenizer: "cl100k-100352",
  stopTokens: ["<|im_end|>", "<|endoftext|>"],
} as const satisfies FamilyDefaults;

/** Phi-4-mini: o200k-based vocabulary; `generation_config` stops on `<|end|>` 200020 and `<|endoftext|>` 199999. */
const PHI4_MINI = {
  ...PHI,
  ...ON_LLAMA_CPP,
  architecture: "phi3",
  tokenizer: "o200k-200064",
  stopTokens: ["<|end|>", "<|endoftext|>"],
} as const satisfies FamilyDefaults;

/**
 * The catalog. Order: Phi-3 (mini, small, medium), Phi-3.5 (mini, MoE), vision, Phi-4. Each entry states what its
 * family leaves open: name, size, context (Azure's figures), template (the one embedded in its download) and
 * download (docs/MODELS.md, "Model table", "Chat templates", "Downloads").
 */
export const CATALOG: readonly CatalogModel[] = Object.freeze([
  // Official Microsoft GGUF; it embeds T1 (April-2024 build), so the catalog uses T1 too. The LocalAI digest predates
  // the file's re-upload, so none is enforced.
  defineModel(PHI3_SPM_TEXT, {
    id: "phi-3-mini-4k-instruct",
    azureName: "Phi-3-mini-4k-Instruct",
    parameters: "3.8B",
    contextLength: 4096,
    chatTemplate: "phi3-mini-apr2024",
    download: {
      url: hf("microsoft/Phi-3-mini-4k-instruct-gguf", "Phi-3-mini-4k-instruct-q4.gguf"),
      fileName: "Phi-3-mini-4k-instruct-q4.gguf",
      source: "official microsoft/Phi-3-mini-4k-instruct-gguf (HF tree page); template T1",
    },
  }),
  // No official GGUF; the community repo and its template (T2, the July-2024 update) are [unverified].
  defineModel(PHI3_SPM_TEXT, {
    id: "phi-3-mini-128k-instruct",
    azureName: "Phi-3-mini-128k-Instruct", // [inferred]
    parameters: "3.8B",
    contextLength: 131072,
    chatTemplate: "phi3-mini-jul2024",
    download: {
      url: hf("bartowski/Phi-3.1-mini-128k-instruct-GGUF", "Phi-3.1-mini-128k-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3.1-mini-128k-instruct-Q4_K_M.gguf",
      source: "community bartowski/Phi-3.1-mini-128k-instruct-GGUF [unverified repo and file name]",
    },
  }),
  defineModel(PHI3_SMALL, {
    id: "phi-3-small-8k-instruct",
    azureName: "Phi-3-small-8k-Instruct", // [inferred]
    contextLength: 8192,
  }),
  defineModel(PHI3_SMALL, {
    id: "phi-3-small-128k-instruct",
    azureName: "Phi-3-small-128k-Instruct", // [inferred]
    contextLength: 131072,
  }),
  // Absent from Azure's "no system messages" list, but T4 drops system messages, so without translation the system
  // text would be lost: false by inference (PHI). Only a truncated digest is known, so none is enforced.
  defineModel(PHI3_SPM_TEXT, {
    id: "phi-3-medium-4k-instruct",
    azureName: "Phi-3-medium-4k-Instruct", // [inferred]
    parameters: "14B",
    contextLength: 4096,
    chatTemplate: "phi3-medium",
    download: {
      url: hf("bartowski/Phi-3-medium-4k-instruct-GGUF", "Phi-3-medium-4k-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3-medium-4k-instruct-Q4_K_M.gguf",
      source: "bartowski/Phi-3-medium-4k-instruct-GGUF (mudler/LocalAI gallery)",
    },
  }),
  defineModel(PHI3_SPM_TEXT, {
    id: "phi-3-medium-128k-instruct",
    azureName: "Phi-3-medium-128k-Instruct", // [inferred]
    parameters: "14B",
    contextLength: 131072,
    chatTemplate: "phi3-medium",
    download: {
      url: hf("bartowski/Phi-3-medium-128k-instruct-GGUF", "Phi-3-medium-128k-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3-medium-128k-instruct-Q4_K_M.gguf",
      source: "bartowski/Phi-3-medium-128k-instruct-GGUF [unverified repo and file name]",
    },
  }),
  // The default model. bartowski's Q4_K_M is the file llama.cpp's server tool-call tests use; the digest found next
  // to it belongs to another repo, so none is enforced.
  defineModel(PHI3_SPM_TEXT, {
    id: "phi-3.5-mini-instruct",
    azureName: "Phi-3.5-Mini-Instruct",
    parameters: "3.8B",
    contextLength: 131072,
    chatTemplate: "phi3.5-mini",
    download: {
      url: hf("bartowski/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3.5-mini-instruct-Q4_K_M.gguf",
      source: "bartowski/Phi-3.5-mini-instruct-GGUF :Q4_K_M (llama.cpp PR #12288)",
    },
  }),
  // llama.cpp architecture `phimoe` (PR #11003, in the bundled build). Template believed to be Phi-3.5-mini's
  // [unverified].
  defineModel(PHI3_SPM_TEXT, {
    id: "phi-3.5-moe-instruct",
    azureName: "Phi-3.5-MoE-Instruct", // [inferred]
    architecture: "phimoe",
    parameters: "16x3.8B (6.6B active)",
    contextLength: 131072,
    chatTemplate: "phi3.5-mini",
    download: {
      url: hf("bartowski/Phi-3.5-MoE-instruct-GGUF", "Phi-3.5-MoE-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3.5-MoE-instruct-Q4_K_M.gguf",
      sha256: "43e91bb720869bd8a92d8eb86bc3c74a52c49cf61642ca709b3d7bb89644df36",
      source: "bartowski/Phi-3.5-MoE-instruct-GGUF; sha256 from mudler/LocalAI gallery",
    },
  }),
  // Azure: one image per turn, no system messages. Microsoft's CPU int4 ONNX export for ONNX Runtime GenAI 0.5+ (the
  // older `-onnx-cpu` repo's embedding graph predates the three-graph contract), pinned to the commit listed.
  defineModel(PHI3_VISION, {
    id: "phi-3-vision-128k-instruct",
    azureName: "Phi-3-vision-128k-Instruct",
    downloadFolder: {
      repo: "microsoft/Phi-3-vision-128k-instruct-onnx",
      revision: "d6673a5bcadf4913aa696f6c70a3e02588d2f59a",
      path: "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4",
      source: "microsoft/Phi-3-vision-128k-instruct-onnx (onnxruntime.ai phi3-v tutorial); files and digests from the Hub's tree listing",
    },
  }),
  // Azure name [unverified]; no system messages and template T6 by analogy with Phi-3-vision [inferred].
  defineModel(PHI3_VISION, {
    id: "phi-3.5-vision-instruct",
    azureName: "Phi-3.5-vision-Instruct",
    downloadFolder: {
      repo: "microsoft/Phi-3.5-vision-instruct-onnx",
      revision: "a764e22e9675e266a7a808b8e707ff51bf1fc088",
      path: "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4",
      source: "microsoft/Phi-3.5-vision-instruct-onnx (onnxruntime.ai Phi-3.5-vision tutorial, CPU); files and digests from the Hub's tree listing",
    },
  }),
  // bartowski's GGUF was made with Unsloth's tokenizer fixes, so it embeds the current template (T7b).
  defineModel(PHI4, {
    id: "phi-4",
    azureName: "Phi-4",
    parameters: "14.7B",
    contextLength: 16384,
    chatTemplate: "phi4",
    download: {
      url: hf("bartowski/phi-4-GGUF", "phi-4-Q4_K_M.gguf"),
      fileName: "phi-4-Q4_K_M.gguf",
      sha256: "009aba717c09d4a35890c7d35eb59d54e1dba884c7c526e7197d9c13ab5911d9",
      source: "bartowski/phi-4-GGUF; sha256 from mudler/LocalAI gallery",
    },
  }),
  // Needs llama.cpp's `gpt-4o` pre-tokenizer, partial rotary and tied output; the bundled build (2025+) is assumed to
  // have them. Tools ride on the system message (T8). No official Microsoft GGUF.
  defineModel(PHI4_MINI, {
    id: "phi-4-mini-instruct",
    azureName: "Phi-4-mini-instruct",
    parameters: "3.8B",
    contextLength: 131072,
    chatTemplate: "phi4-mini",
    supportsTools: true,
    download: {
      url: hf("bartowski/microsoft_Phi-4-mini-instruct-GGUF", "microsoft_Phi-4-mini-instruct-Q4_K_M.gguf"),
      fileName: "microsoft_Phi-4-mini-instruct-Q4_K_M.gguf",
      sha256: "01999f17c39cc3074afae5e9c539bc82d45f2dd7faa3917c66cbef76fce8c0c2",
      source: "bartowski/microsoft_Phi-4-mini-instruct-GGUF; sha256 from mudler/LocalAI gallery",
    },
  }),
]);

/** Catalog id of the model served when none is named. */
export const DEFAULT_MODEL_ID = "phi-3.5-mini-instruct";

/**
 * Looks a model up by catalog id or Azure name, case-insensitively (Azure's own casing is inconsistent:
 * `…-Instruct` for Phi-3, `-instruct` for Phi-4-mini — docs/MODELS.md, "Model table"). Surrounding whitespace and a
 * Hugging Face `microsoft/` prefix are ignored, so `microsoft/Phi-3.5-mini-instruct` finds the catalog entry too.
 */
export function findCatalogModel(nameOrAzureName: string): CatalogModel | undefined {
  let key = nameOrAzureName.trim().toLowerCase();
  if (key.startsWith("microsoft/")) key = key.slice("microsoft/".length);
  if (key === "") return undefined;
  return CATALOG.find((m) => m.id === key || m.azureName.toLowerCase() === key);
}
