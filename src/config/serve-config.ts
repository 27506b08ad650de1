import type { ContentSafetyPolicy } from "../safety/content-policy.ts";
import type { HarmCategory } from "../safety/classifier.ts";

/**
 * The frozen configuration `serve` runs with: built once from flags, environment and the config
 * file in src/cli (the only reader of process.env), then passed to the composition root.
 */

/** Compute backends `--gpu` accepts; `auto` lets the engine pick what the machine has. */
export const GPU_CHOICES = ["auto", "cpu", "cuda", "vulkan", "metal"] as const;
export type GpuChoice = (typeof GPU_CHOICES)[number];

/** One deployment: a model file and how it is served. */
export interface DeploymentSettings {
  /** Deployment name (`model` in requests, `azureml-model-deployment`, `/v1/models` id); default: the catalog id or file name. */
  name: string | undefined;
  /** Local GGUF path (already downloaded/resolved). */
  modelPath: string;
  /** Catalog name describing the file (template, system-role rule, Azure name); undefined = guessed from the file. */
  catalogModelId: string | undefined;
  /** Sequences generating at once; undefined = chosen from the model's KV size and the machine's memory. */
  parallel: number | undefined;
  /** Requests allowed to wait for a sequence; undefined = max(16, 8 × parallel). */
  maxQueue: number | undefined;
  /** Context window per sequence in tokens; default min(model context, 4096). */
  contextSize: number | undefined;
  /** CPU threads; default chosen from the model size. */
  threads: number | undefined;
  /** Tokens per evaluation batch; long prompts are evaluated in chunks of this size. Default 512. */
  batchSize: number;
  /**
   * Most decode tokens (one per generating sequence) per evaluation batch; 0 or undefined = all
   * generating sequences together (measured fastest on CPU: bench/RESULTS.md).
   */
  decodeBatch?: number | undefined;
  /** Longest a decoding step may take with prompt tokens in it, in ms (chunked prefill); undefined = prompts fill the batch. */
  maxStepMs?: number | undefined;
  /** Fill CPU decode batches of 2, 3 or 7 rows to a block of 4 with idle sequences' rows; false = never; undefined = on CPUs. */
  padDecodeRows?: boolean | undefined;
  /** Bytes of lost sequence states kept for prompts that start with them (docs/ENGINE-NOTES.md "The prompt cache"); 0 or undefined = none. */
  promptCacheBytes?: number | undefined;
  /** llama.cpp's flash attention; undefined = llama.cpp's choice (docs/ENGINE-NOTES.md "Flash attention on the CPU"). */
  flashAttention?: boolean | undefined;
  /** Thread counts measured per batch shape at load and cached in `cacheDir`; undefined = fixed threads (`threads` or the default). */
  calibration?: { cacheDir: string | undefined } | undefined;
  /** `constrained` (default): json_object/json_schema enforced by grammar; `azure`: 422 parameter_not_supported. */
  jsonPolicy: "constrained" | "azure";
  /** `azure` (default): system messages translated into user messages where Azure does; `native`: the template's own system turn. */
  systemRole: "azure" | "native";
  /** Largest `n` (choices per request). Default 16. */
  maxChoices: number;
  /** Offer `tools` to models without native tool calling, by constrained JSON. Default false (422, as Azure). */
  toolEmulation: boolean;
  /**
   * Parse special-token text in message contents too (the behaviour before issue 10): a user's `<|end|>` then
   * closes their turn. Default false: only the template's own markers are special tokens.
   */
  parseSpecialInContent?: boolean | undefined;
  /** Vision models: HD crops per image; undefined = the catalog's (16, Azure's counting), else the export's own. */
  numCrops?: number | undefined;
  /** Content safety (docs/SAFETY.md); undefined = Azure's default policy with the built-in lexicon. */
  contentSafety?: ContentSafetySettings | undefined;
  /**
   * Served by OpenAI-compatible upstreams instead of a local engine (docs/REMOTE.md); `modelPath` is then
   * a catalog name. Undefined: a local model file.
   */
  upstream?: UpstreamSettings | undefined;
  /** USD per 1,000 prompt and completion tokens, for usage cost estimates; undefined = the server's default price. */
  price?: { promptPer1k: number; completionPer1k: number } | undefined;
  /** Rate limits for this deployment; undefined = the catalog's (Azure serverless: 1000 rpm, 200000 tpm). */
  quota: { requestsPerMinute?: number | undefined; tokensPerMinute?: number | undefined } | undefined;
}

/** One upstream replica of a remote deployment. */
export interface UpstreamReplica {
  /** OpenAI base URL, e.g. `http://gpu1:8000/v1` (`{url}/chat/completions`, `{url}/models`). */
  url: string;
  /** The credential sent to it (the value, read from the environment variable the config names); never logged. */
  apiKey?: string | undefined;
  /** `bearer` (default): `Authorization: Bearer KEY`; `api-key`: Azure's `api-key: KEY` header. */
  header?: "bearer" | "api-key" | undefined;
}

/** A remote deployment's upstreams and how they are balanced, checked and retried (docs/REMOTE.md). */
export interface UpstreamSettings {
  replicas: readonly UpstreamReplica[];
  /** The model name sent upstream; undefined = the first id the replica's `/models` lists. */
  model: string | undefined;
  /** Active health checks (`GET {url}/models`) this often, ms; 0 = only at start. Default 5 000. */
  healthCheckIntervalMs: number;
  /** No byte from an upstream for this long fails the attempt (retried elsewhere before the first token), ms. Default 60 000. */
  firstByteTimeoutMs: number;
  /** Replicas tried per request; undefined = every replica, at most 3. */
  maxAttempts: number | undefined;
  /** Failed attempts in a row that eject a replica. Default 3. */
  consecutiveFailures: number;
  /** First ejection's length, ms (doubling with each ejection). Default 10 000. */
  baseEjectionMs: number;
  /** Longest ejection, ms. Default 300 000. */
  maxEjectionMs: number;
}

export interface ServeConfig {
  host: string;
  port: number;
  /** Static API keys (`--api-key`, `PHISERVE_API_KEYS`); empty = none. */
  apiKeys: readonly string[];
  /** Usage and key store: `sqlite:PATH` or `postgres://…`; undefined = no store (logs and metrics only). */
  databaseUrl: string | undefined;
  /** Quota state in Redis (exact across replicas); undefined = in memory. */
  redisUrl: string | undefined;
  /** Entra-style bearer tokens; undefined = none. */
  jwt: { issuer: string; audience: string; jwksUri: string | undefined; adminRole?: string | undefined } | undefined;
  /** Static admin keys (`--admin-key`): they may call the admin API (docs/ADMIN-API.md); absent or empty = none. */
  adminKeys?: readonly string[] | undefined;
  /** USD per 1,000 tokens for deployments with no price of their own; absent = Azure's Phi-3.5-mini price (docs/ADMIN-API.md "Cost"). */
  defaultPrice?: { promptPer1k: number; completionPer1k: number } | undefined;
  /** Export GenAI spans over OTLP/HTTP (docs/ADMIN-API.md "Traces"); absent = no tracing. */
  tracing?: { tracesUrl: string; serviceName: string; headers: Readonly<Record<string, string>> } | undefined;
  gpu: GpuChoice;
  deployments: readonly DeploymentSettings[];
  /** Name of the deployment used when a request names none; default: the first. */
  defaultDeployment: string | undefined;
  /**
   * True for a single-model server (no config file): like Azure's serverless endpoints, the body's
   * `model` is then ignored instead of routing (an unknown name is not an error).
   */
  singleModel: boolean;
  /** Memory the loaded models may use together, bytes; default 75% of RAM. */
  memoryBudgetBytes: number | undefined;
  /** Unload a deployment idle this long, ms; 0 = never. */
  idleUnloadMs: number;
  /** Deadline of a chat request from arrival, ms; 0 = none. Default 300 000. */
  requestTimeoutMs: number;
  /** After SIGTERM, how long in-flight requests may finish, ms. Default 30 000. */
  drainTimeoutMs: number;
  /** Largest request body accepted, in bytes. Default 4 MiB. */
  bodyLimitBytes: number;
  /**
   * Longest a client may take to send a request (headers and body) from its first byte, ms; then
   * 408 and the connection closes. 0 = none. Default 30 000.
   */
  bodyTimeoutMs: number;
  /** Most connections one client address may hold open; further ones are closed at once. 0 = no cap. Default 64. */
  maxConnectionsPerClient: number;
  /** Images in chat requests (vision deployments; docs/VISION.md "Image limits", "Image URLs"). */
  images: ImageLimits;
  /** Serve HTTPS with this certificate (chain) and key, PEM files reloaded when they change; undefined = HTTP. */
  tls: { certPath: string; keyPath: string } | undefined;
  logLevel: string;
}

/** Limits on images in chat requests, for every vision deployment. */
export interface ImageLimits {
  /** Largest image in bytes (decoded from base64, or downloaded). Default 2 MiB: its base64 fits the default body limit. */
  maxBytes: number;
  /** Largest image in decoded pixels (width × height). Default 40 000 000. */
  maxPixels: number;
  /** Fetch `http(s)` image URLs (`--allow-image-urls`); default false: only data URLs. */
  allowUrls: boolean;
  /** Time allowed to download one image URL, ms. Default 10 000. */
  urlTimeoutMs: number;
  /** Let image URLs reach loopback/private/link-local addresses (a request-forgery hole; tests and closed networks only). Default false. */
  allowPrivateUrls: boolean;
}

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({
  maxBytes: 2 * 1024 * 1024,
  maxPixels: 40_000_000,
  allowUrls: false,
  urlTimeoutMs: 10_000,
  allowPrivateUrls: false,
});

/** A custom blocklist (Azure's shape): exact terms, or regular expressions. */
export interface BlocklistSettings {
  id: string;
  items: readonly { pattern: string; isRegex: boolean }[];
}

/** One classifier of a deployment's content filter (docs/SAFETY.md "Classifiers"). */
export type ClassifierSettings =
  /** Weighted keyword patterns per category and jailbreak phrases; `builtIn`: the small English default list. */
  | { kind: "lexicon"; builtIn: boolean; rules: readonly { pattern: string; isRegex?: boolean | undefined; category: HarmCategory | "jailbreak"; severity: number }[] }
  /** A local ONNX text-classification folder (transformers.js layout), its labels mapped to categories. */
  | { kind: "onnx"; folder: string; labels: Readonly<Record<string, HarmCategory | "jailbreak" | "ignore">> | undefined; cutPoints: readonly [number, number, number] | undefined }
  /** Another deployment of this server as the classifier: a Llama Guard model, or any chat model as a JSON judge. */
  | { kind: "guard"; deployment: string; format: "llama-guard" | "judge"; variant: "1b" | "8b" }
  /** Azure AI Content Safety (text analysis, Prompt Shields, its own blocklists); the key is read from the environment. */
  | { kind: "azure"; endpoint: string; keyEnv: string; promptShields: boolean; blocklistNames: readonly string[] };

/** A deployment's content safety: the policy, its custom blocklists and its classifiers. */
export interface ContentSafetySettings {
  policy: Omit<ContentSafetyPolicy, "blocklistIds">;
  blocklists: readonly BlocklistSettings[];
  classifiers: readonly ClassifierSettings[];
}
