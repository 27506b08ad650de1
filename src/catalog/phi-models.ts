/**
 * The Phi model catalog, as data.
 *
 * Every value cites `shared/spec/phi-models.md` (sections §1 summary matrix, §2 special/stop tokens, §3 chat
 * templates, §5 Azure facts, §7 GGUF sources) or `shared/spec/azure-model-inference-api.md` (§5.3 context sizes,
 * §7 quotas). Things the spec marks **[unverified]** are marked the same way here.
 *
 * Download policy (phi-models.md §7): Hugging Face `resolve/main` URLs of the GGUF repos listed there. A `sha256`
 * is given only where the spec quotes the full 64-hex digest; otherwise it is left undefined and the downloader
 * falls back to the server's `x-linked-etag`. `sizeBytes` is left undefined everywhere: the spec gives sizes only
 * rounded to 10 MB ("2.39 GB"), which must not be mistaken for exact sizes; approximate sizes are in comments.
 *
 * @module
 */
import type { ChatTemplateId } from "./chat-templates.ts";

/** Which engine serves a model. */
export type EngineKind = "llama-cpp" | "onnx-vision" | "none";

/** One catalog entry. */
export interface CatalogModel {
  /** Catalog name used on the CLI: the lower-cased Hugging Face id without `microsoft/`, e.g. "phi-3.5-mini-instruct". */
  id: string;
  /** `/info` `model_name` as Azure spells it (phi-models.md §5 table), e.g. "Phi-3.5-Mini-Instruct". */
  azureName: string;
  /** Hugging Face `model_type` family (phi-models.md §1). */
  architecture: "phi3" | "phimoe" | "phi3small" | "phi3v" | "phi4mm";
  /** Parameter count as documented, e.g. "3.8B". */
  parameters: string;
  /** Azure-documented context window in tokens (azure-model-inference-api.md §5.3). */
  contextLength: number;
  /** Per Azure docs (phi-models.md §5): false => system messages are translated into user messages. */
  supportsSystemRole: boolean;
  /** Chat template of the model (phi-models.md §3), matching the template embedded in the catalog download. */
  chatTemplate: ChatTemplateId;
  /** Tokenizer family and vocabulary size (phi-models.md §2). */
  tokenizer: "llama-spm-32064" | "cl100k-100352" | "o200k-200064";
  /**
   * Token texts that end generation (phi-models.md §2). Includes tokens llama.cpp already treats as
   * end-of-generation; extra ones (`<|assistant|>` for SPM Phi) must be added as stop triggers by the engine.
   */
  stopTokens: string[];
  /** Native tool calling (Phi-4-mini only, phi-models.md §4). */
  supportsTools: boolean;
  /** Accepts images (Phi-3/3.5-vision). */
  supportsVision: boolean;
  /** Which engine serves it. */
  engine: EngineKind;
  /** False for engines not built yet (everything but llama-cpp for now); such models are listed honestly. */
  engineAvailable: boolean;
  /** Why the model cannot be served; present whenever `engineAvailable` is false. */
  unavailableReason?: string;
  /** Default single-file download (a GGUF) for llama-cpp models. */
  download?: {
    url: string;
    fileName: string;
    /** Exact size in bytes, when known. */
    sizeBytes?: number;
    /** Full lower-case hex sha256, only when a source gives all 64 digits. */
    sha256?: string;
    /** Where the URL/digest come from (spec section and upstream source). */
    source: string;
  };
  /** Azure serverless quota per deployment (azure-model-inference-api.md §7). */
  quota: { tokensPerMinute: number; requestsPerMinute: number };
}

/** Azure serverless Phi quota: "200,000 tokens per minute and 1,000 API requests per minute" (azure §7). */
const AZURE_SERVERLESS_QUOTA = { tokensPerMinute: 200_000, requestsPerMinute: 1_000 } as const;

/**
 * Stop tokens of the Llama-2 SentencePiece Phi models (phi-models.md §2.1): generation_config
 * `eos_token_id: [32000, 32001, 32007]`. llama.cpp marks `<|end|>` and `<|endoftext|>` EOG by name, but **not**
 * `<|assistant|>` (32001), which must be an extra stop token to match HF.
 */
const SPM_STOP_TOKENS = ["<|end|>", "<|endoftext|>", "<|assistant|>"] as const;
/** Phi-3-small (phi-models.md §2.2): `<|endoftext|>` 100257 and `<|end|>` 100266 [generation_config not seen]. */
const PHI3_SMALL_STOP_TOKENS = ["<|end|>", "<|endoftext|>"] as const;
/** phi-4 (phi-models.md §2.3): `<|im_end|>` 100265 and `<|endoftext|>` 100257. */
const PHI4_STOP_TOKENS = ["<|im_end|>", "<|endoftext|>"] as const;
/** Phi-4-mini (phi-models.md §2.4): generation_config `eos_token_id: [200020, 199999]` = `<|end|>`, `<|endoftext|>`. */
const PHI4_MINI_STOP_TOKENS = ["<|end|>", "<|endoftext|>"] as const;

/** Hugging Face download URL for a file on the main branch. */
function hf(repo: string, fileName: string): string {
  return `https://huggingface.co/${repo}/resolve/main/${fileName}`;
}

const PHI3_SMALL_UNAVAILABLE =
  "Phi-3-small (Phi3SmallForCausalLM, block-sparse attention, cl100k tokenizer) has no llama.cpp architecture and no " +
  "GGUF converter; it needs ONNX Runtime GenAI (microsoft/Phi-3-small-*-onnx-*), and the ONNX text engine is not " +
  "implemented yet (phi-models.md §1, §7)";

const VISION_UNAVAILABLE =
  "has no llama.cpp/GGUF path (no converter or mmproj for Phi3VForCausalLM); it needs the ONNX Runtime GenAI " +
  "'phi3v' pipeline, and the onnx-vision engine is not implemented yet (phi-models.md §1, §7, §8)";

/**
 * The catalog. Order: Phi-3 (mini, small, medium), Phi-3.5 (mini, MoE), vision, Phi-4.
 *
 * `supportsSystemRole` follows Azure (phi-models.md §5): deploy-models-phi-3.md lists Phi-3.5-Mini, Phi-3.5-MoE,
 * Phi-3-mini-4k/128k, Phi-3-small-8k/128k and Phi-3-medium-128k; deploy-models-phi-3-vision.md lists
 * Phi-3-vision-128k; deploy-models-phi-4.md (ms.date 02/25/2025) lists Phi-4-mini and Phi-4. Two entries are set
 * to false by inference (see their comments): Phi-3-medium-4k and Phi-3.5-vision. So every entry is false: the
 * server translates system messages into user messages for every catalog model, as Azure does.
 */
export const CATALOG: readonly CatalogModel[] = Object.freeze([
  {
    // Official Microsoft GGUF (phi-models.md §7). Its embedded template is T1 (April-2024 build), so the catalog
    // uses T1 too. Size ≈2.39 GB (2.32 GB in an earlier revision). A full sha256 exists in LocalAI's gallery
    // (8a83c7fb…2edef) but predates the file's re-upload (the size changed), so it is not enforced here.
    id: "phi-3-mini-4k-instruct",
    azureName: "Phi-3-mini-4k-Instruct", // shown as /info output in earlier deploy-models-phi-3.md revisions (§5)
    architecture: "phi3",
    parameters: "3.8B",
    contextLength: 4096,
    supportsSystemRole: false,
    chatTemplate: "phi3-mini-apr2024",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("microsoft/Phi-3-mini-4k-instruct-gguf", "Phi-3-mini-4k-instruct-q4.gguf"),
      fileName: "Phi-3-mini-4k-instruct-q4.gguf",
      source: "phi-models.md §7: official microsoft/Phi-3-mini-4k-instruct-gguf (HF tree page); template T1",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // No official GGUF; the community repo is [unverified] in phi-models.md §7 (file name follows bartowski's
    // naming). Template T2 is "believed also used by Phi-3-mini-128k after its update [unverified]" (§3).
    id: "phi-3-mini-128k-instruct",
    azureName: "Phi-3-mini-128k-Instruct", // [inferred] (§5)
    architecture: "phi3",
    parameters: "3.8B",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi3-mini-jul2024",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("bartowski/Phi-3.1-mini-128k-instruct-GGUF", "Phi-3.1-mini-128k-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3.1-mini-128k-instruct-Q4_K_M.gguf",
      source: "phi-models.md §7: community bartowski/Phi-3.1-mini-128k-instruct-GGUF [unverified repo and file name]",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    id: "phi-3-small-8k-instruct",
    azureName: "Phi-3-small-8k-Instruct", // [inferred] (§5)
    architecture: "phi3small",
    parameters: "7B",
    contextLength: 8192,
    supportsSystemRole: false,
    chatTemplate: "phi3-small",
    tokenizer: "cl100k-100352",
    stopTokens: [...PHI3_SMALL_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "none",
    engineAvailable: false,
    unavailableReason: PHI3_SMALL_UNAVAILABLE,
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    id: "phi-3-small-128k-instruct",
    azureName: "Phi-3-small-128k-Instruct", // [inferred] (§5)
    architecture: "phi3small",
    parameters: "7B",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi3-small",
    tokenizer: "cl100k-100352",
    stopTokens: [...PHI3_SMALL_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "none",
    engineAvailable: false,
    unavailableReason: PHI3_SMALL_UNAVAILABLE,
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // Azure's "don't support system messages" list omits Phi-3-medium-4k (phi-models.md §5), but its template T4
    // drops system messages entirely, so without translation the system text would be lost: false by inference.
    // bartowski Q4_K_M; LocalAI records only a truncated sha256 in the spec (6f05c97b…e82c) — not used.
    id: "phi-3-medium-4k-instruct",
    azureName: "Phi-3-medium-4k-Instruct", // [inferred] (§5)
    architecture: "phi3",
    parameters: "14B",
    contextLength: 4096,
    supportsSystemRole: false,
    chatTemplate: "phi3-medium",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("bartowski/Phi-3-medium-4k-instruct-GGUF", "Phi-3-medium-4k-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3-medium-4k-instruct-Q4_K_M.gguf",
      source: "phi-models.md §7: bartowski/Phi-3-medium-4k-instruct-GGUF (mudler/LocalAI gallery)",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    id: "phi-3-medium-128k-instruct",
    azureName: "Phi-3-medium-128k-Instruct", // [inferred] (§5)
    architecture: "phi3",
    parameters: "14B",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi3-medium",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("bartowski/Phi-3-medium-128k-instruct-GGUF", "Phi-3-medium-128k-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3-medium-128k-instruct-Q4_K_M.gguf",
      source: "phi-models.md §7: bartowski/Phi-3-medium-128k-instruct-GGUF [unverified repo and file name]",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // Default model. bartowski Q4_K_M is the file llama.cpp's server tool-call tests use (L2 PR #12288). The full
    // sha256 in the spec (3f68916e…7e88, truncated anyway) belongs to a different repo (MaziyarPanahi): not used.
    id: "phi-3.5-mini-instruct",
    azureName: "Phi-3.5-Mini-Instruct", // /info output in current deploy-models-phi-3.md (§5; azure §4)
    architecture: "phi3",
    parameters: "3.8B",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi3.5-mini",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("bartowski/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3.5-mini-instruct-Q4_K_M.gguf",
      source: "phi-models.md §7: bartowski/Phi-3.5-mini-instruct-GGUF :Q4_K_M (llama.cpp PR #12288)",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // llama.cpp arch `phimoe` (PR #11003, present in the 2025-02-20 mirror, so in the bundled llama.cpp).
    // Template believed = Phi-3.5-mini's T5 [unverified] (§3). Parameters: "16x3.8B parameters with 6.6B active"
    // (deploy-models-phi-3.md, §1).
    id: "phi-3.5-moe-instruct",
    azureName: "Phi-3.5-MoE-Instruct", // [inferred] (§5)
    architecture: "phimoe",
    parameters: "16x3.8B (6.6B active)",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi3.5-mini",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("bartowski/Phi-3.5-MoE-instruct-GGUF", "Phi-3.5-MoE-instruct-Q4_K_M.gguf"),
      fileName: "Phi-3.5-MoE-instruct-Q4_K_M.gguf",
      sha256: "43e91bb720869bd8a92d8eb86bc3c74a52c49cf61642ca709b3d7bb89644df36",
      source: "phi-models.md §7: bartowski/Phi-3.5-MoE-instruct-GGUF; sha256 from mudler/LocalAI gallery",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // ONNX: microsoft/Phi-3-vision-128k-instruct-onnx (phi-models.md §7). "supports only one image for each turn"
    // and "doesn't support system messages" (deploy-models-phi-3-vision.md, §5). 4.2B (§1).
    id: "phi-3-vision-128k-instruct",
    azureName: "Phi-3-vision-128k-Instruct", // /info output in deploy-models-phi-3-vision.md (§5)
    architecture: "phi3v",
    parameters: "4.2B",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi3-vision",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: true,
    engine: "onnx-vision",
    engineAvailable: false,
    unavailableReason: `Phi-3-vision ${VISION_UNAVAILABLE}`,
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // ONNX: microsoft/Phi-3.5-vision-instruct-onnx (phi-models.md §7). Azure name is [unverified] (§5: catalog id
    // `Phi-3.5-vision-instruct`); system support false by analogy with Phi-3-vision [inferred]; template believed
    // identical to Phi-3-vision's T6 [unverified] (§3).
    id: "phi-3.5-vision-instruct",
    azureName: "Phi-3.5-vision-Instruct",
    architecture: "phi3v",
    parameters: "4.2B",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi3-vision",
    tokenizer: "llama-spm-32064",
    stopTokens: [...SPM_STOP_TOKENS],
    supportsTools: false,
    supportsVision: true,
    engine: "onnx-vision",
    engineAvailable: false,
    unavailableReason: `Phi-3.5-vision ${VISION_UNAVAILABLE}`,
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // bartowski phi-4 Q4_K_M (≈9.05 GB), "made with b4456 incl. Tokenizer fixes as recommended by the unsloth team"
    // (phi-models.md §7), so its template is the current/Unsloth one, T7b; sha256 from the LocalAI gallery.
    // Official alternative: microsoft/phi-4-gguf `phi-4-q4.gguf` (no digest in the spec). 14.7B, 16K (§1; azure §5.3).
    id: "phi-4",
    azureName: "Phi-4", // /info output in the first revisions of deploy-models-phi-4.md (§5)
    architecture: "phi3",
    parameters: "14.7B",
    contextLength: 16384,
    supportsSystemRole: false,
    chatTemplate: "phi4",
    tokenizer: "cl100k-100352",
    stopTokens: [...PHI4_STOP_TOKENS],
    supportsTools: false,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("bartowski/phi-4-GGUF", "phi-4-Q4_K_M.gguf"),
      fileName: "phi-4-Q4_K_M.gguf",
      sha256: "009aba717c09d4a35890c7d35eb59d54e1dba884c7c526e7197d9c13ab5911d9",
      source: "phi-models.md §7: bartowski/phi-4-GGUF; sha256 from mudler/LocalAI gallery",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
  {
    // Needs a llama.cpp with the `gpt-4o` pre-tokenizer (PR #12099's successor), partial rotary and tied output
    // (phi-models.md §1, §9.5); the llama.cpp bundled with node-llama-cpp 3.22.1 is from 2025+, so assumed
    // supported. Tools via T8 (`tools` on the system message, §4). No official Microsoft GGUF (§7).
    id: "phi-4-mini-instruct",
    azureName: "Phi-4-mini-instruct", // /info output in current deploy-models-phi-4.md (§5)
    architecture: "phi3",
    parameters: "3.8B",
    contextLength: 131072,
    supportsSystemRole: false,
    chatTemplate: "phi4-mini",
    tokenizer: "o200k-200064",
    stopTokens: [...PHI4_MINI_STOP_TOKENS],
    supportsTools: true,
    supportsVision: false,
    engine: "llama-cpp",
    engineAvailable: true,
    download: {
      url: hf("bartowski/microsoft_Phi-4-mini-instruct-GGUF", "microsoft_Phi-4-mini-instruct-Q4_K_M.gguf"),
      fileName: "microsoft_Phi-4-mini-instruct-Q4_K_M.gguf",
      sha256: "01999f17c39cc3074afae5e9c539bc82d45f2dd7faa3917c66cbef76fce8c0c2",
      source: "phi-models.md §7: bartowski/microsoft_Phi-4-mini-instruct-GGUF; sha256 from mudler/LocalAI gallery",
    },
    quota: { ...AZURE_SERVERLESS_QUOTA },
  },
] satisfies CatalogModel[]);

/** Catalog id of the model served when none is named. */
export const DEFAULT_MODEL_ID = "phi-3.5-mini-instruct";

/**
 * Looks a model up by catalog id or Azure name, case-insensitively (Azure's own casing is inconsistent:
 * `…-Instruct` for Phi-3, `-instruct` for Phi-4-mini — phi-models.md §5). Surrounding whitespace and a
 * Hugging Face `microsoft/` prefix are ignored, so `microsoft/Phi-3.5-mini-instruct` finds the catalog entry too.
 */
export function findCatalogModel(nameOrAzureName: string): CatalogModel | undefined {
  let key = nameOrAzureName.trim().toLowerCase();
  if (key.startsWith("microsoft/")) key = key.slice("microsoft/".length);
  if (key === "") return undefined;
  return CATALOG.find((m) => m.id === key || m.azureName.toLowerCase() === key);
}
