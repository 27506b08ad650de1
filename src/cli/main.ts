/**
 * `phiserve` command line: argv → config → app APIs. With src/cli/commands, the only code that
 * reads process.env or calls process.exit.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { runServe } from "./commands/serve.ts";
import { runTestModel } from "./commands/test-model.ts";
import { runModels, runPull } from "./commands/models.ts";
import { KEY_CONTENT_SAFETY_EXPECTED, runKeysCreate, runKeysList, runKeysRevoke, toKeyContentSafety } from "./commands/keys.ts";
import { runUsage } from "./commands/usage.ts";
import { runEngineBuild, runEngineInfo } from "./commands/engine.ts";
import { GPU_CHOICES } from "../config/serve-config.ts";
import { parseByteSize } from "../config/config-file.ts";

const integer = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
  return n;
};
const byteSize = (value: string): number => {
  try {
    return parseByteSize(value);
  } catch {
    throw new InvalidArgumentError("expected a size such as 2GiB, 512MiB or 0");
  }
};
const collect = (value: string, previous: string[]): string[] => [...previous, value];
const contentSafetyMode = (value: string): "filter" | "annotate" | "off" => {
  if (value === "filter" || value === "annotate" || value === "off") return value;
  throw new InvalidArgumentError("expected filter, annotate or off");
};
const keyContentSafety = (value: string): "annotate" | "off" => {
  const mode = toKeyContentSafety(value);
  if (mode === undefined) throw new InvalidArgumentError(KEY_CONTENT_SAFETY_EXPECTED);
  return mode;
};

const program = new Command("phiserve").description("Serve Microsoft Phi models behind the Azure AI Model Inference API").showHelpAfterError();

program
  .command("serve")
  .description("start the server")
  .option("-c, --config <phiserve.yaml>", "deployments to serve (several models, quotas, policies); see docs/CONFIG.md")
  .option("-m, --model <file.gguf|catalog name>", "model file or catalog name (default: phi-3.5-mini-instruct)")
  .option("--model-name <catalog name>", "catalog model a local file is (template, system-role rule, Azure name); default: guessed from the file")
  .option("--host <host>", "address to bind", "127.0.0.1")
  .option("--port <port>", "port to bind (0 = any free port)", integer(0), 8080)
  .option("--api-key <key>", "accepted API key (repeatable); also PHISERVE_API_KEYS=k1,k2", collect, [])
  .option("--db <url>", "usage and key store: sqlite:PATH (default: under the data folder) or postgres://…; also PHISERVE_DB_URL")
  .option("--redis <url>", "keep quota state in Redis so replicas share one limit; also PHISERVE_REDIS_URL")
  .option("--jwt-issuer <url>", "accept Entra-style bearer tokens from this issuer")
  .option("--jwt-audience <aud>", "audience the tokens must carry")
  .option("--jwks-uri <url>", "signing keys (default: the issuer's OpenID discovery document)")
  .option("--jwt-admin-role <role>", "app role (in a token's roles claim) that grants the admin API (default: phiserve.admin)")
  .option("--admin-key <key>", "API key that may also call the admin API, /admin/* (repeatable); also PHISERVE_ADMIN_KEYS=k1,k2", collect, [])
  .option("--price-prompt <usd>", "usage cost: USD per 1,000 prompt tokens for deployments without a price of their own (default: Azure's Phi-3.5-mini price)", Number)
  .option("--price-completion <usd>", "usage cost: USD per 1,000 completion tokens (same default)", Number)
  .option("--otlp-endpoint <url>", "export OpenTelemetry GenAI spans over OTLP/HTTP to this base URL (…/v1/traces); also OTEL_EXPORTER_OTLP_ENDPOINT")
  .option("--rpm <n>", "requests per minute of the deployment (default: the catalog's, Azure 1000)", integer(1))
  .option("--tpm <n>", "tokens per minute of the deployment (default: the catalog's, Azure 200000)", integer(1))
  .option("--no-auth", "allow serving without keys on a non-loopback address")
  .option("--deployment <name>", "deployment name (as listed by /v1/models)")
  .option("--parallel <n>", "sequences generated at once (default: as many KV caches as fit a quarter of memory, 1–8)", integer(1))
  .option("--max-queue <n>", "requests allowed to wait for a sequence; more get 503 + retry-after (default: max(16, 8 × parallel))", integer(0))
  .option("--request-timeout <seconds>", "deadline of a chat request; 504 before the first byte, an error frame after it (0 = none)", integer(0), 300)
  .option("--drain-timeout <seconds>", "after SIGTERM, how long in-flight requests may finish", integer(0), 30)
  .option("--context <n>", "context window per sequence, in tokens (default: min(model, 4096))", integer(16))
  .option("--threads <n>", "CPU threads (default: 1 for tiny models, all cores otherwise)", integer(1))
  .option("--batch-size <n>", "tokens per evaluation batch; long prompts are evaluated in chunks of this size", integer(16), 512)
  .option("--decode-batch <n>", "most decode tokens (one per generating sequence) per evaluation batch; 0 = all generating sequences together", integer(0), 0)
  .option("--max-step-ms <ms>", "chunked prefill: while streams decode, a step takes only as many prompt tokens as fit this many ms (default: prompts fill the batch)", integer(1))
  .option("--no-pad-decode-rows", "on CPUs, decode batches of 2, 3 or 7 rows are filled to a block of 4 with rows of idle sequences (ggml multiplies rows in blocks of 4: faster); this turns it off")
  .option("--prompt-cache <size>", "keep up to this much of the KV states that sequences lose to other prompts (files in the temporary folder), and restore one for a prompt that starts with it: more conversations than sequences then skip re-evaluating theirs (e.g. 2GiB; default 0: off)", byteSize)
  .addOption(new Option("--flash-attention <mode>", "llama.cpp's flash attention (default: llama.cpp's choice, on where the backend has it); off: on CPUs, up to 2.3x faster decoding at long contexts, but a token's numbers then depend on how its prompt was batched").choices(["on", "off"]))
  .option("--no-calibrate", "skip measuring the best thread count per batch shape at load (cached per model, binary and machine); --threads also skips it")
  .addOption(new Option("--gpu <kind>", "compute backend").choices(GPU_CHOICES).default("auto"))
  .addOption(new Option("--json-policy <policy>", "constrained: JSON response formats are guaranteed by grammar; azure: 422 as Azure does for Phi").choices(["constrained", "azure"]).default("constrained"))
  .option("--max-n <n>", "largest n (choices per request)", integer(1), 16)
  .option("--tool-emulation", "offer tools to models without native tool calling (constrained JSON); default: 422 as Azure", false)
  .option("--parse-special-in-content", "also parse special-token text (<|end|>, <|assistant|>) in message contents, as phiserve once did: lets users forge turns; default: only the template's markers are special tokens", false)
  .option("--body-limit <bytes>", "largest request body accepted", integer(1024), 4 * 1024 * 1024)
  .option("--body-timeout <seconds>", "longest a client may take to send a request's headers and body; then 408 and close (0 = none; default 30)", integer(0))
  .option("--max-connections-per-client <n>", "most open connections from one client address; more are closed at once (0 = no cap; default 64)", integer(0))
  .option("--tls-cert <file.pem>", "serve HTTPS with this certificate (chain), reloaded when the file changes; with --tls-key")
  .option("--tls-key <file.pem>", "private key of --tls-cert")
  .option("--num-crops <n>", "vision models: HD crops per image (default 16, which matches Azure's usage counts)", integer(1))
  .option("--max-image-bytes <bytes>", "largest image in a chat request, decoded (default 2 MiB; its base64 must fit --body-limit)", integer(1))
  .option("--max-image-pixels <n>", "largest image in decoded pixels, width × height (default 40000000)", integer(1))
  .option("--allow-image-urls", "fetch http(s) image URLs in chat requests (off: data URLs only); public addresses only, size- and time-limited", false)
  .option("--allow-private-image-urls", "let image URLs reach loopback/private/link-local addresses too (request forgery: closed networks only)", false)
  .option("--image-url-timeout <seconds>", "time allowed to download one image URL (default 10)", integer(1))
  .option("--content-safety <mode>", "content filter of every deployment: filter (Azure's default policy), annotate (report only) or off; default: filter, or the config file's", contentSafetyMode)
  .option("--content-annotations", "add Azure's content-filter annotations to responses (prompt_filter_results, content_filter_results)", false)
  .option("--upstream <url>", "serve --model (a catalog name) through this OpenAI-compatible upstream (vLLM, SGLang, TGI, llama-server, Ollama /v1), e.g. http://gpu1:8000/v1; repeat for replicas (docs/REMOTE.md)", collect, [])
  .option("--upstream-key-env <name>", "environment variable holding the key sent to the upstreams (Authorization: Bearer)")
  .option("--upstream-model <name>", "model name sent upstream (default: the first id of the upstream's /models)")
  .option("--log-level <level>", "pino log level", "info")
  .action(runServe);

program
  .command("test-model")
  .description("write a seeded random-weight Phi model with the real Phi vocabulary (for tests and benchmarks)")
  .addOption(new Option("--family <family>", "model family (phi3v: Phi-3-vision as an ONNX Runtime GenAI folder)").choices(["phi3", "phi4", "phi4-mini", "phimoe", "phi3v"]).default("phi3"))
  .requiredOption("--out <path>", "output GGUF path (a folder for phi3v)")
  .addOption(new Option("--shape <shape>", "start from a preset: tiny (default, a few MB) or phi3-mini (3072 x 32 layers, q4_0, ~2.2 GB, for benchmarks)").choices(["tiny", "phi3-mini"]).default("tiny"))
  .option("--layers <n>", "transformer blocks", integer(1))
  .option("--embd <n>", "embedding width (multiple of 32)", integer(32))
  .option("--ff <n>", "feed-forward width", integer(32))
  .option("--heads <n>", "attention heads", integer(1))
  .option("--heads-kv <n>", "key/value heads (GQA)", integer(1))
  .option("--ctx <n>", "context length", integer(16))
  .addOption(new Option("--quant <type>", "weight type").choices(["f16", "q8_0", "q4_0"]))
  .option("--seed <n>", "PRNG seed", integer(0))
  .action(runTestModel);

const keys = program.command("keys").description("manage stored API keys (hashed in the database)");
keys
  .command("create")
  .requiredOption("--name <name>", "a label for the key")
  .option("--deployments <a,b>", "deployments the key may use (default: all)")
  .option("--rpm <n>", "requests per minute for this key", integer(1))
  .option("--tpm <n>", "tokens per minute for this key", integer(1))
  .option("--content-safety <annotate|off>", "a trusted tenant's override of the deployments' content filter: annotate (report only) or off; default: the deployment's policy", keyContentSafety)
  .option("--admin", "the key may also call the admin API (/admin/*: keys, usage, deployments)")
  .option("--db <url>", "database URL (default: PHISERVE_DB_URL or sqlite under the data folder)")
  .option("--server <url>", "work through a running server's admin API instead of the database (docs/ADMIN-API.md)")
  .option("--admin-key <key>", "admin credential for --server (default: PHISERVE_ADMIN_KEY)")
  .option("--json", "JSON output (the only time the key is shown)")
  .action(runKeysCreate);
keys
  .command("list")
  .option("--db <url>", "database URL")
  .option("--server <url>", "list through a running server's admin API")
  .option("--admin-key <key>", "admin credential for --server (default: PHISERVE_ADMIN_KEY)")
  .option("--json", "JSON output")
  .action(runKeysList);
keys
  .command("revoke")
  .argument("<id>", "key id")
  .option("--db <url>", "database URL")
  .option("--server <url>", "revoke through a running server's admin API")
  .option("--admin-key <key>", "admin credential for --server (default: PHISERVE_ADMIN_KEY)")
  .option("--json", "JSON output")
  .action(runKeysRevoke);

program
  .command("usage")
  .description("usage report: requests, tokens and an estimated cost")
  .option("--db <url>", "database URL")
  .option("--since <when>", "from: YYYY-MM-DD (UTC), an ISO time, or a span back from now such as 7d, 24h, 30m")
  .option("--until <when>", "until (exclusive; a bare date includes that whole day); same forms as --since")
  .addOption(new Option("--by <grouping>", "group by").choices(["key", "deployment", "day", "hour"]).default("deployment"))
  .option("--json", "JSON output")
  .option("--csv", "CSV output")
  .option("--price-prompt <usd>", "price per 1k prompt tokens (local reports)", Number)
  .option("--price-completion <usd>", "price per 1k completion tokens (local reports)", Number)
  .option("--server <url>", "ask a running server's admin API (GET /admin/usage) instead of the database")
  .option("--admin-key <key>", "admin credential for --server (default: PHISERVE_ADMIN_KEY)")
  .action(runUsage);

const engine = program.command("engine").description("the llama.cpp binary that serves GGUF models");
engine
  .command("info")
  .description("which binary is loaded: prebuilt or local build, OpenMP, CPU features")
  .addOption(new Option("--gpu <kind>", "backend to look for, as `serve --gpu`").choices(GPU_CHOICES).default("auto"))
  .option("--json", "JSON output")
  .action(runEngineInfo);
engine
  .command("build")
  .description("compile node-llama-cpp's bundled llama.cpp source for this machine (needs cmake and a C++ compiler; offline)")
  .addOption(new Option("--gpu <kind>", "backend to build").choices(GPU_CHOICES).default("cpu"))
  .action(runEngineBuild);

program.command("pull").description("download a catalog model into the cache").argument("<name>", "catalog name").action(runPull);
program.command("models").description("list the catalog and what is cached locally").option("--json", "JSON output").action(runModels);

await program.parseAsync(process.argv);
