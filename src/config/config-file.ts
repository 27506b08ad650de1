/**
 * `--config phiserve.yaml`: the deployments one process serves, validated at start with errors
 * that name the offending path. Schema in TypeBox (types and JSON Schema from one source).
 *
 * ```yaml
 * defaultDeployment: phi35          # optional: the first deployment otherwise
 * memoryBudget: 12GiB               # models load on first use within it (default: 75% of RAM)
 * idleUnloadSeconds: 900            # unload a deployment idle this long (0 = never)
 * bodyTimeoutSeconds: 30            # a request's headers and body must arrive within this (408 otherwise)
 * maxConnectionsPerClient: 64       # open connections per client address (0 = no cap)
 * tls: { cert: server.pem, key: server.key }   # serve HTTPS (reloaded when the files change)
 * deployments:
 *   - name: phi35
 *     model: phi-3.5-mini-instruct  # catalog name or a .gguf path
 *     parallel: 2
 *     quota: { requestsPerMinute: 1000, tokensPerMinute: 200000 }
 *   - name: phi4mini
 *     model: /models/Phi-4-mini-instruct-Q4_K_M.gguf
 *     modelName: phi-4-mini-instruct
 *     json: azure                   # Azure's 422 for JSON response formats
 *   - name: phi3small                 # served by OpenAI-compatible upstreams (docs/REMOTE.md)
 *     model: phi-3-small-8k-instruct
 *     upstream:
 *       replicas: [http://gpu1:8000/v1, { url: http://gpu2:8000/v1, apiKeyEnv: VLLM_KEY }]
 * ```
 */
import { readFile } from "node:fs/promises";
import { Type, type Static } from "@sinclair/typebox";
import { Ajv } from "ajv";
import { parse } from "yaml";

const Positive = (description: string) => Type.Integer({ minimum: 1, description });
/** A size such as 12GiB, 512MB or 1024 (bytes): `parseByteSize` reads it. */
const ByteSize = (description?: string) => Type.String({ pattern: "^\\d+(\\.\\d+)?\\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$", ...(description ? { description } : {}) });

const ThresholdSchema = Type.Union([Type.Literal("low"), Type.Literal("medium"), Type.Literal("high"), Type.Literal("off")]);
const CategoryName = Type.Union([Type.Literal("hate"), Type.Literal("sexual"), Type.Literal("violence"), Type.Literal("self_harm")]);
const Thresholds = (description: string) =>
  Type.Optional(
    Type.Object(
      { hate: Type.Optional(ThresholdSchema), sexual: Type.Optional(ThresholdSchema), violence: Type.Optional(ThresholdSchema), self_harm: Type.Optional(ThresholdSchema) },
      { additionalProperties: false, description },
    ),
  );

/** One classifier of a content filter (docs/SAFETY.md "Classifiers"). */
const ClassifierSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal("lexicon"),
      builtIn: Type.Optional(Type.Boolean({ description: "Include the small built-in English lexicon (default true)." })),
      rules: Type.Optional(
        Type.Array(
          Type.Object(
            {
              pattern: Type.String({ minLength: 1 }),
              isRegex: Type.Optional(Type.Boolean()),
              category: Type.Union([CategoryName, Type.Literal("jailbreak")]),
              severity: Type.Integer({ minimum: 0, maximum: 7 }),
            },
            { additionalProperties: false },
          ),
        ),
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal("onnx"),
      folder: Type.String({ minLength: 1, description: "A local text-classification folder (config.json, tokenizer.json, model.onnx)." }),
      labels: Type.Optional(Type.Record(Type.String(), Type.Union([CategoryName, Type.Literal("jailbreak"), Type.Literal("ignore")]))),
      cutPoints: Type.Optional(Type.Tuple([Type.Number({ minimum: 0, maximum: 1 }), Type.Number({ minimum: 0, maximum: 1 }), Type.Number({ minimum: 0, maximum: 1 })])),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal("guard"),
      deployment: Type.String({ minLength: 1, description: "Another deployment of this file that runs the guard model or judge." }),
      format: Type.Optional(Type.Union([Type.Literal("llama-guard"), Type.Literal("judge")])),
      variant: Type.Optional(Type.Union([Type.Literal("1b"), Type.Literal("8b")], { description: "Which Llama Guard 3 the deployment serves (default 8b; 1b has no S14)." })),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal("azure"),
      endpoint: Type.String({ minLength: 1 }),
      keyEnv: Type.Optional(Type.String({ minLength: 1, description: "Environment variable holding the key (default CONTENT_SAFETY_KEY)." })),
      promptShields: Type.Optional(Type.Boolean()),
      blocklistNames: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    },
    { additionalProperties: false },
  ),
]);

/** A deployment's content safety (docs/SAFETY.md "Policy"). */
export const ContentSafetySchema = Type.Object(
  {
    mode: Type.Optional(Type.Union([Type.Literal("filter"), Type.Literal("annotate"), Type.Literal("off")], { description: "filter (default), annotate only, or off." })),
    annotations: Type.Optional(Type.Boolean({ description: "Annotations in responses (prompt_filter_results, content_filter_results); default false." })),
    prompt: Thresholds("Per-category thresholds for prompts (default medium)."),
    completion: Thresholds("Per-category thresholds for completions (default medium)."),
    jailbreak: Type.Optional(Type.Boolean({ description: "Filter jailbreak attempts in prompts (default true)." })),
    profanity: Type.Optional(Type.Boolean({ description: "Filter profanity (default false)." })),
    blocklists: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Type.String({ minLength: 1, maxLength: 64 }),
            items: Type.Array(Type.Object({ pattern: Type.String({ minLength: 1, maxLength: 1000 }), isRegex: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), { minItems: 1 }),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    classifiers: Type.Optional(Type.Array(ClassifierSchema, { description: "Default: the built-in lexicon." })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: "Per classifier call (default 2000)." })),
    streamWindowChars: Type.Optional(Type.Integer({ minimum: 1, description: "Completion text vetted per window before release (default 128)." })),
  },
  { additionalProperties: false },
);

/** A remote deployment's upstreams (docs/CONFIG.md "Remote deployments", docs/REMOTE.md). */
export const UpstreamSchema = Type.Object(
  {
    replicas: Type.Array(
      Type.Union([
        Type.String({ minLength: 1, description: "An OpenAI base URL, e.g. http://gpu1:8000/v1." }),
        Type.Object(
          {
            url: Type.String({ minLength: 1, description: "An OpenAI base URL, e.g. http://gpu1:8000/v1." }),
            apiKeyEnv: Type.Optional(Type.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]*$", description: "Environment variable holding the key sent to this upstream." })),
            header: Type.Optional(Type.Union([Type.Literal("bearer"), Type.Literal("api-key")], { description: "bearer (default): Authorization: Bearer KEY; api-key: Azure's api-key header." })),
          },
          { additionalProperties: false },
        ),
      ]),
      { minItems: 1 },
    ),
    model: Type.Optional(Type.String({ minLength: 1, description: "Model name sent upstream (default: the first id of the upstream's /models)." })),
    healthCheckSeconds: Type.Optional(Type.Number({ minimum: 0, description: "GET {url}/models this often (default 5; 0 = only at start)." })),
    timeoutSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: "No byte from the upstream for this long fails the attempt (default 60)." })),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, description: "Replicas tried per request (default: all, at most 3)." })),
    ejection: Type.Optional(
      Type.Object(
        {
          consecutiveFailures: Type.Optional(Positive("Failed attempts in a row that eject a replica (default 3).")),
          baseSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: "First ejection's length, doubled with each ejection (default 10)." })),
          maxSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: "Longest ejection (default 300)." })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const DeploymentSchema = Type.Object(
  {
    name: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description: "Deployment name: `model` in requests, `azureml-model-deployment` header." }),
    model: Type.String({ minLength: 1, description: "Catalog name (downloaded on first use) or a .gguf path." }),
    modelName: Type.Optional(Type.String({ description: "Catalog model a local file is (template, system role, Azure name)." })),
    parallel: Type.Optional(Positive("Sequences generating at once (default: from KV size and memory).")),
    maxQueue: Type.Optional(Type.Integer({ minimum: 0, description: "Requests allowed to wait (default: max(16, 8 × parallel))." })),
    context: Type.Optional(Type.Integer({ minimum: 16, description: "Context window per sequence (default: min(model, 4096))." })),
    threads: Type.Optional(Positive("CPU threads (default: by model size).")),
    batchSize: Type.Optional(Type.Integer({ minimum: 16, description: "Tokens per evaluation batch (default 512)." })),
    decodeBatch: Type.Optional(Type.Integer({ minimum: 0, description: "Most decode tokens per evaluation batch; 0 (default) = all generating sequences together." })),
    maxStepMs: Type.Optional(Positive("Chunked prefill: while streams decode, a step takes only as many prompt tokens as fit this many ms (default: --max-step-ms, else none).")),
    promptCache: Type.Optional(ByteSize("Prompt cache: bytes of sequence states kept for prompts that start with them, e.g. 2GiB (default: --prompt-cache, else 0: off).")),
    flashAttention: Type.Optional(Type.Boolean({ description: "llama.cpp's flash attention (default: --flash-attention, else llama.cpp's choice); false: faster on CPUs at long contexts, not batch-independent." })),
    padDecodeRows: Type.Optional(Type.Boolean({ description: "Fill decode batches of 2, 3 or 7 rows to a block of 4 with idle sequences' rows; default: on CPUs unless --no-pad-decode-rows." })),
    quota: Type.Optional(
      Type.Object(
        { requestsPerMinute: Type.Optional(Positive("Default: the catalog's (Azure: 1000).")), tokensPerMinute: Type.Optional(Positive("Default: the catalog's (Azure: 200000).")) },
        { additionalProperties: false },
      ),
    ),
    json: Type.Optional(Type.Union([Type.Literal("constrained"), Type.Literal("azure")], { description: "JSON response formats: grammar-constrained (default) or Azure's 422." })),
    systemRole: Type.Optional(Type.Union([Type.Literal("azure"), Type.Literal("native")], { description: "azure (default): translate system messages into user messages where Azure does; native: use the template's system turn when it has one." })),
    toolEmulation: Type.Optional(Type.Boolean({ description: "Offer tools to models without native tool calling." })),
    parseSpecialInContent: Type.Optional(Type.Boolean({ description: "Parse special-token text in message contents too (lets users forge turns); default false." })),
    maxN: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: "Largest n (default 16)." })),
    numCrops: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: "Vision models: HD crops per image (default 16, Azure's counting)." })),
    contentSafety: Type.Optional(ContentSafetySchema),
    price: Type.Optional(
      Type.Object(
        {
          promptPer1k: Type.Number({ minimum: 0, description: "USD per 1,000 prompt tokens." }),
          completionPer1k: Type.Number({ minimum: 0, description: "USD per 1,000 completion tokens." }),
        },
        { additionalProperties: false, description: "Usage cost estimates (docs/ADMIN-API.md \"Cost\"); default: the server's --price-prompt / --price-completion." },
      ),
    ),
    upstream: Type.Optional(UpstreamSchema),
  },
  { additionalProperties: false },
);

export const ConfigFileSchema = Type.Object(
  {
    defaultDeployment: Type.Optional(Type.String()),
    memoryBudget: Type.Optional(ByteSize()),
    idleUnloadSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
    bodyTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, description: "Longest a client may take to send a request's headers and body; then 408 and close (default 30; 0 = none)." })),
    maxConnectionsPerClient: Type.Optional(Type.Integer({ minimum: 0, description: "Most open connections from one client address (default 64; 0 = no cap)." })),
    tls: Type.Optional(
      Type.Object(
        { cert: Type.String({ minLength: 1, description: "PEM certificate (chain) file." }), key: Type.String({ minLength: 1, description: "PEM private key file." }) },
        { additionalProperties: false, description: "Serve HTTPS; the files are reloaded when they change." },
      ),
    ),
    deployments: Type.Array(DeploymentSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export type DeploymentConfig = Static<typeof DeploymentSchema>;
export type ContentSafetyConfig = Static<typeof ContentSafetySchema>;
export type UpstreamConfig = Static<typeof UpstreamSchema>;
export type ConfigFile = Static<typeof ConfigFileSchema>;

const validate = new Ajv({ allErrors: true, strict: false }).compile<ConfigFile>(ConfigFileSchema);

/** Reads and validates a config file; throws an Error listing every problem with its path. */
export async function loadConfigFile(path: string): Promise<ConfigFile> {
  let data: unknown;
  try {
    data = parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new Error(`${path}: cannot read YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!validate(data)) {
    const problems = (validate.errors ?? []).map((e) => `  ${e.instancePath || "/"}: ${e.message}${e.keyword === "additionalProperties" ? ` ('${String(e.params.additionalProperty)}')` : ""}`);
    throw new Error(`${path} is not a valid phiserve config:\n${problems.join("\n")}`);
  }
  const names = data.deployments.map((d) => d.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) throw new Error(`${path}: deployment '${duplicate}' is declared twice`);
  if (data.defaultDeployment && !names.includes(data.defaultDeployment)) {
    throw new Error(`${path}: defaultDeployment '${data.defaultDeployment}' is not one of the deployments (${names.join(", ")})`);
  }
  return data;
}

const UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };

/** "12GiB" → bytes. */
export function parseByteSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  const unit = UNITS[(match?.[2] || "B").toUpperCase()];
  if (!match || unit === undefined) throw new Error(`not a size: ${text}`);
  return Number(match[1]) * unit;
}
