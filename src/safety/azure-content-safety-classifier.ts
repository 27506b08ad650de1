/**
 * Azure AI Content Safety as a classifier, for teams that have a resource (docs/SAFETY.md "Azure AI
 * Content Safety"). Through the official REST client `@azure-rest/ai-content-safety`:
 * - `text:analyze` with `outputType: "EightSeverityLevels"`, so the service's 0–7 severities are
 *   ours unchanged (Hate→hate, SelfHarm→self_harm, Sexual→sexual, Violence→violence), and the
 *   resource's blocklists named in the options (a match → one BlocklistHit per blocklist name);
 * - Prompt Shields `text:shieldPrompt` on prompts, when enabled (an attack → `jailbreak`).
 * Text over the service's 10,000-character limit (Unicode code points) is split and each part sent
 * on its own; the highest severity per category and every hit are kept. Retries are off: a call
 * either answers within `timeoutMs` or the classification rejects with an error that names the
 * status and code, and the policy then annotates `content_filter_error`. Neither the text nor the
 * key is ever logged or put into an error.
 */
import ContentSafetyClient, { isUnexpected, type ContentSafetyClient as Client } from "@azure-rest/ai-content-safety";
import { AzureKeyCredential } from "@azure/core-auth";
import { isLoopbackHost } from "../lib/loopback.ts";
import { HARM_CATEGORIES, type BlocklistHit, type Classification, type HarmCategory, type TextClassifier, type TextRole } from "./classifier.ts";

export interface AzureContentSafetyClassifierOptions {
  /** The resource endpoint, e.g. `https://<resource>.cognitiveservices.azure.com` (plain http only on loopback). */
  endpoint: string;
  /** A key of the resource (sent as `Ocp-Apim-Subscription-Key`). */
  key: string;
  /** The resource's blocklists to match (names as created on the resource). */
  blocklistNames?: readonly string[];
  /** Run Prompt Shields on prompts (→ `jailbreak`). */
  promptShields: boolean;
  /** Bound on one classification, every call included. */
  timeoutMs: number;
  /** Default AZURE_CONTENT_SAFETY_API_VERSION. */
  apiVersion?: string;
}

/** The GA version that has both text:analyze and text:shieldPrompt. */
export const AZURE_CONTENT_SAFETY_API_VERSION = "2024-09-01";
/** Most text per call, in Unicode code points (text:analyze's `text`; Prompt Shields' `userPrompt`). */
export const AZURE_MAX_TEXT_CODE_POINTS = 10_000;
/** Calls in flight at once for one long text. */
const MAX_CONCURRENT_CALLS = 4;
/** A part boundary moves back to the last whitespace within this many code points, so words are not cut. */
const BOUNDARY_LOOKBACK = 200;

const CATEGORY_OF: Readonly<Record<string, HarmCategory>> = { Hate: "hate", SelfHarm: "self_harm", Sexual: "sexual", Violence: "violence" };
const SERVICE_CATEGORIES = ["Hate", "SelfHarm", "Sexual", "Violence"];

/** Why Azure AI Content Safety could not classify a text. */
export class AzureContentSafetyError extends Error {
  override readonly name = "AzureContentSafetyError";
  constructor(
    message: string,
    /** HTTP status of the service's answer, when there was one. */
    readonly status?: number,
    /** The service's error code (`error.code` or `x-ms-error-code`), or a local one: "timeout", "aborted", "network", "bad_response". */
    readonly code?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function createAzureContentSafetyClassifier(options: AzureContentSafetyClassifierOptions): TextClassifier {
  const endpoint = checkEndpoint(options.endpoint);
  if (options.key === "") throw new Error("Azure AI Content Safety: the key is empty.");
  if (!(options.timeoutMs > 0)) throw new Error("Azure AI Content Safety: timeoutMs must be positive.");
  const client = ContentSafetyClient(endpoint.href.replace(/\/+$/, ""), new AzureKeyCredential(options.key), {
    apiVersion: options.apiVersion ?? AZURE_CONTENT_SAFETY_API_VERSION,
    retryOptions: { maxRetries: 0 },
    allowInsecureConnection: endpoint.protocol === "http:",
  });
  const blocklistNames = [...(options.blocklistNames ?? [])];

  return {
    name: "azure-content-safety",
    async classify(text: string, role: TextRole, signal: AbortSignal): Promise<Classification> {
      const severities: Partial<Record<HarmCategory, number>> = {};
      if (text.length === 0) {
        for (const category of HARM_CATEGORIES) severities[category] = 0;
        return { severities, ...(role === "prompt" && options.promptShields ? { jailbreak: false } : {}) };
      }
      const { combined, stop } = deadline(signal, options.timeoutMs);
      try {
        const parts = splitText(text, AZURE_MAX_TEXT_CODE_POINTS);
        const shield = role === "prompt" && options.promptShields;
        const tasks: (() => Promise<PartResult>)[] = [
          ...parts.map((part) => () => analyzePart(client, part, blocklistNames, combined)),
          ...(shield ? parts.map((part) => () => shieldPart(client, part, combined)) : []),
        ];
        const results = await runBounded(tasks, MAX_CONCURRENT_CALLS, combined);
        const hits: BlocklistHit[] = [];
        let jailbreak = false;
        for (const result of results) {
          for (const [category, severity] of Object.entries(result.severities) as [HarmCategory, number][]) {
            severities[category] = Math.max(severities[category] ?? 0, severity);
          }
          for (const name of result.blocklists) if (!hits.some((h) => h.blocklistId === name)) hits.push({ blocklistId: name });
          jailbreak ||= result.attack;
        }
        return { severities, blocklistHits: hits, ...(shield ? { jailbreak } : {}) };
      } catch (error) {
        throw explain(error, signal, combined);
      } finally {
        stop();
      }
    },
  };
}

interface PartResult {
  severities: Partial<Record<HarmCategory, number>>;
  blocklists: string[];
  attack: boolean;
}

async function analyzePart(client: Client, text: string, blocklistNames: string[], signal: AbortSignal): Promise<PartResult> {
  const response = await client.path("/text:analyze").post({
    body: {
      text,
      categories: SERVICE_CATEGORIES,
      ...(blocklistNames.length > 0 ? { blocklistNames, haltOnBlocklistHit: false } : {}),
      outputType: "EightSeverityLevels",
    },
    abortSignal: signal,
  });
  if (isUnexpected(response)) throw serviceError("text:analyze", response.status, response.body, response.headers);
  const body: unknown = response.body;
  if (!isRecord(body) || !Array.isArray(body["categoriesAnalysis"])) throw badResponse("text:analyze");
  const severities: Partial<Record<HarmCategory, number>> = {};
  for (const entry of body["categoriesAnalysis"] as unknown[]) {
    if (!isRecord(entry)) throw badResponse("text:analyze");
    const category = CATEGORY_OF[String(entry["category"])];
    const severity = entry["severity"];
    if (category === undefined || severity === undefined) continue; // a category we do not map, or not assessed
    if (typeof severity !== "number" || !Number.isInteger(severity) || severity < 0 || severity > 7) throw badResponse("text:analyze");
    severities[category] = severity;
  }
  const matches = body["blocklistsMatch"] ?? [];
  if (!Array.isArray(matches)) throw badResponse("text:analyze");
  const blocklists = matches.map((m: unknown) => {
    if (!isRecord(m) || typeof m["blocklistName"] !== "string") throw badResponse("text:analyze");
    return m["blocklistName"];
  });
  return { severities, blocklists, attack: false };
}

/** Prompt Shields; version 1.0.1 of the client has no typed route for it, so it goes through `pathUnchecked` (same pipeline). */
async function shieldPart(client: Client, userPrompt: string, signal: AbortSignal): Promise<PartResult> {
  const response = await client.pathUnchecked("/text:shieldPrompt").post({ body: { userPrompt, documents: [] }, abortSignal: signal });
  if (response.status !== "200") throw serviceError("text:shieldPrompt", response.status, response.body, response.headers);
  const body: unknown = response.body;
  const analysis = isRecord(body) ? body["userPromptAnalysis"] : undefined;
  if (!isRecord(analysis) || typeof analysis["attackDetected"] !== "boolean") throw badResponse("text:shieldPrompt");
  return { severities: {}, blocklists: [], attack: analysis["attackDetected"] };
}

/**
 * `text` in parts of at most `maxCodePoints` Unicode code points (surrogate pairs kept whole); a
 * boundary moves back to just after the last whitespace in the part's final 200 code points, if any.
 */
export function splitText(text: string, maxCodePoints: number): string[] {
  const points = Array.from(text);
  if (points.length <= maxCodePoints) return [text];
  const parts: string[] = [];
  let start = 0;
  while (start < points.length) {
    let end = Math.min(start + maxCodePoints, points.length);
    if (end < points.length) {
      for (let i = end; i > end - BOUNDARY_LOOKBACK && i > start + 1; i--) {
        if (/\s/u.test(points[i - 1]!)) {
          end = i;
          break;
        }
      }
    }
    parts.push(points.slice(start, end).join(""));
    start = end;
  }
  return parts;
}

/** Runs `tasks` with at most `limit` at once; the first failure aborts the rest (through `signal`'s owner) and rejects. */
async function runBounded<T>(tasks: readonly (() => Promise<T>)[], limit: number, signal: AbortSignal): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      signal.throwIfAborted();
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** The caller's signal and our own timeout, as one signal; `stop()` releases the timer. */
function deadline(signal: AbortSignal, timeoutMs: number): { combined: AbortSignal; stop: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new AzureContentSafetyError(`Azure AI Content Safety timed out after ${timeoutMs} ms.`, undefined, "timeout")), timeoutMs);
  const onAbort = (): void => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return {
    combined: controller.signal,
    stop: () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      // Calls still in flight after a failure are cancelled.
      if (!controller.signal.aborted) controller.abort(new AzureContentSafetyError("Azure AI Content Safety call cancelled.", undefined, "aborted"));
    },
  };
}

/** One error for every way a classification fails: timeout, abort, network, or the service's own answer. */
function explain(error: unknown, signal: AbortSignal, combined: AbortSignal): AzureContentSafetyError {
  // Our own timeout fired: say so, whatever the client made of the abort.
  if (combined.reason instanceof AzureContentSafetyError && combined.reason.code === "timeout") return combined.reason;
  if (signal.aborted) return new AzureContentSafetyError("Azure AI Content Safety call aborted.", undefined, "aborted", { cause: error });
  if (error instanceof AzureContentSafetyError) return error;
  const code = isRecord(error) && typeof error["code"] === "string" ? error["code"] : undefined;
  return new AzureContentSafetyError(
    `Azure AI Content Safety could not be reached${code ? ` (${code})` : ""}.`,
    undefined,
    "network",
    { cause: error },
  );
}

function serviceError(operation: string, status: string, body: unknown, headers: Record<string, string>): AzureContentSafetyError {
  const error = isRecord(body) && isRecord(body["error"]) ? body["error"] : {};
  const code = typeof error["code"] === "string" ? error["code"] : headers["x-ms-error-code"];
  // The service's message names the problem (a wrong key, an unknown blocklist); it never quotes the text.
  const detail = typeof error["message"] === "string" ? `: ${error["message"].slice(0, 200)}` : "";
  return new AzureContentSafetyError(
    `Azure AI Content Safety ${operation} answered HTTP ${status}${code ? ` (${code})` : ""}${detail}`,
    Number(status),
    code,
  );
}

function badResponse(operation: string): AzureContentSafetyError {
  return new AzureContentSafetyError(`Azure AI Content Safety ${operation} answered with an unexpected body.`, 200, "bad_response");
}

function checkEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`Azure AI Content Safety: the endpoint '${endpoint}' is not a URL.`);
  }
  if (url.protocol === "https:") return url;
  if (url.protocol === "http:" && isLoopbackHost(url.hostname)) return url;
  throw new Error("Azure AI Content Safety: the endpoint must be https (plain http only on loopback, so the key never travels unencrypted).");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
