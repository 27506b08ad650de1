/**
 * A local stand-in for the Azure AI Content Safety REST API (docs/SAFETY.md "Azure AI Content
 * Safety"): `POST {endpoint}/contentsafety/text:analyze` and `…/text:shieldPrompt`, with the
 * documented request and response shapes, the `Ocp-Apim-Subscription-Key` header and the
 * `api-version` query parameter checked. What it finds is scripted by the test; it can be told to
 * fail (any status, e.g. 500 or 429) or to hang, and it records every request it received.
 *
 * It is stricter than the service on one point: a request body with a field the API does not define
 * is refused (400), so a client that sends something undocumented fails its tests.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { once } from "node:events";
import { createHash, randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";

/** The API's category names (`categoriesAnalysis[].category`). */
export type ContentSafetyCategory = "Hate" | "SelfHarm" | "Sexual" | "Violence";
export const CONTENT_SAFETY_CATEGORIES: readonly ContentSafetyCategory[] = ["Hate", "SelfHarm", "Sexual", "Violence"];

/** The operations the stand-in serves (the path after `/contentsafety/`). */
export type ContentSafetyOperation = "text:analyze" | "text:shieldPrompt";

/** API versions the stand-in accepts, per operation (Prompt Shields is GA from 2024-09-01). */
export const STANDIN_API_VERSIONS: Readonly<Record<ContentSafetyOperation, readonly string[]>> = {
  "text:analyze": ["2023-10-01", "2024-09-01"],
  "text:shieldPrompt": ["2024-02-15-preview", "2024-09-01"],
};

/** Maximum text per call, in Unicode code points (text:analyze's text; shieldPrompt's userPrompt and documents in total). */
export const STANDIN_MAX_TEXT_CODE_POINTS = 10_000;
/** Prompt Shields accepts up to five documents. */
export const STANDIN_MAX_DOCUMENTS = 5;

/** How the stand-in answers one request instead of its normal answer. */
export type ContentSafetyFailure =
  | { status: number; code?: string; message?: string; retryAfterSeconds?: number }
  /** Accept the request and never answer it (until close()). */
  | "hang";

/** One request as received (recorded before any check, so refused requests are in the list too). */
export interface RecordedContentSafetyRequest {
  method: string;
  /** The path after `/contentsafety/`, e.g. "text:analyze"; the whole path when it is elsewhere. */
  operation: string;
  apiVersion: string | null;
  /** The `Ocp-Apim-Subscription-Key` header as sent (undefined when absent). */
  subscriptionKey: string | undefined;
  contentType: string | undefined;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: unknown;
}

/** What the stand-in finds. Every member is read per request, so a test may change it at any time. */
export interface ContentSafetyScript {
  /** Severities 0–7 for one analyzed text; categories left out are 0. Default: all 0. */
  analyze?: (text: string) => Partial<Record<ContentSafetyCategory, number>>;
  /** The resource's blocklists: name → item texts, matched as case-insensitive substrings. */
  blocklists?: Record<string, readonly string[]>;
  /** Whether a user prompt (or a document) is an attack. Default: never. */
  shieldPrompt?: (text: string) => boolean;
  /** Answer this instead (after the request was recorded); undefined → the normal answer. */
  failure?: (request: RecordedContentSafetyRequest) => ContentSafetyFailure | undefined;
}

export interface ContentSafetyStandIn {
  /** The resource endpoint to configure (`http://127.0.0.1:<port>`, without `/contentsafety`). */
  url: string;
  /** The subscription key it accepts. */
  key: string;
  /** The script in use; assign its members to change what the stand-in answers. */
  script: ContentSafetyScript;
  /** Every request received, oldest first. */
  requests: RecordedContentSafetyRequest[];
  /** Stops the server, ending hanging requests. */
  close(): Promise<void>;
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const ANALYZE_FIELDS = new Set(["text", "categories", "blocklistNames", "haltOnBlocklistHit", "outputType"]);
const SHIELD_FIELDS = new Set(["userPrompt", "documents"]);
const BLOCKLIST_NAME = /^[0-9A-Za-z\-._~]+$/;

export async function startContentSafetyStandIn(script: ContentSafetyScript = {}): Promise<ContentSafetyStandIn> {
  const key = randomBytes(16).toString("hex");
  const requests: RecordedContentSafetyRequest[] = [];
  const standIn = { script, requests };

  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, new RequestError(500, "InternalServerError", String(error)));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://stand-in");
    const raw = await readBody(req);
    const recorded: RecordedContentSafetyRequest = {
      method: req.method ?? "",
      operation: url.pathname.startsWith("/contentsafety/") ? url.pathname.slice("/contentsafety/".length) : url.pathname,
      apiVersion: url.searchParams.get("api-version"),
      subscriptionKey: headerValue(req, "ocp-apim-subscription-key"),
      contentType: headerValue(req, "content-type"),
      body: parseJson(raw),
    };
    requests.push(recorded);

    const failure = standIn.script.failure?.(recorded);
    if (failure === "hang") return; // never answered; close() ends the socket
    if (failure) {
      const headers = failure.retryAfterSeconds === undefined ? {} : { "retry-after": String(failure.retryAfterSeconds) };
      sendError(res, new RequestError(failure.status, failure.code ?? String(failure.status), failure.message ?? "Scripted failure."), headers);
      return;
    }
    try {
      sendJson(res, 200, answer(recorded, standIn.script));
    } catch (error) {
      if (error instanceof RequestError) sendError(res, error);
      else throw error;
    }
  }

  function answer(request: RecordedContentSafetyRequest, current: ContentSafetyScript): unknown {
    if (request.subscriptionKey !== key) {
      // The Cognitive Services gateway's answer to a missing or wrong key.
      throw new RequestError(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
      );
    }
    const operation = request.operation as ContentSafetyOperation;
    const versions = STANDIN_API_VERSIONS[operation];
    if (request.method !== "POST" || versions === undefined) throw new RequestError(404, "404", "Resource not found");
    if (request.apiVersion === null || !versions.includes(request.apiVersion)) {
      throw new RequestError(
        404,
        "UnsupportedApiVersion",
        `The HTTP resource that matches the request URI is not supported with api-version '${request.apiVersion ?? ""}'.`,
      );
    }
    if (!request.contentType?.toLowerCase().startsWith("application/json")) {
      throw new RequestError(415, "UnsupportedMediaType", "The content type must be application/json.");
    }
    if (!isRecord(request.body)) throw new RequestError(400, "InvalidRequestBody", "The request body must be a JSON object.");
    return operation === "text:analyze" ? analyze(request.body, current) : shieldPrompt(request.body, current);
  }

  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    key,
    get script() {
      return standIn.script;
    },
    set script(next: ContentSafetyScript) {
      standIn.script = next;
    },
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `POST /contentsafety/text:analyze`: body `{text, categories?, blocklistNames?, haltOnBlocklistHit?, outputType?}`. */
function analyze(body: Record<string, unknown>, script: ContentSafetyScript): unknown {
  refuseUnknownFields(body, ANALYZE_FIELDS);
  const text = body["text"];
  if (typeof text !== "string" || text.length === 0) throw invalidBody("'text' must be a non-empty string.");
  if (codePoints(text) > STANDIN_MAX_TEXT_CODE_POINTS) {
    throw invalidBody(`'text' exceeds the maximum length of ${STANDIN_MAX_TEXT_CODE_POINTS} characters.`);
  }
  const categories = optionalStringArray(body, "categories") ?? CONTENT_SAFETY_CATEGORIES;
  for (const category of categories) {
    if (!CONTENT_SAFETY_CATEGORIES.includes(category as ContentSafetyCategory)) throw invalidBody(`Unknown category '${category}'.`);
  }
  const blocklistNames = optionalStringArray(body, "blocklistNames") ?? [];
  for (const name of blocklistNames) {
    if (!BLOCKLIST_NAME.test(name)) throw invalidBody(`Invalid blocklist name '${name}'.`);
    if (script.blocklists?.[name] === undefined) throw new RequestError(404, "NotFound", `The blocklist '${name}' does not exist.`);
  }
  const halt = body["haltOnBlocklistHit"];
  if (halt !== undefined && typeof halt !== "boolean") throw invalidBody("'haltOnBlocklistHit' must be a boolean.");
  const outputType = body["outputType"] ?? "FourSeverityLevels";
  if (outputType !== "FourSeverityLevels" && outputType !== "EightSeverityLevels") {
    throw invalidBody("'outputType' must be 'FourSeverityLevels' or 'EightSeverityLevels'.");
  }

  const lower = text.toLowerCase();
  const blocklistsMatch = blocklistNames.flatMap((name) =>
    (script.blocklists?.[name] ?? [])
      .filter((item) => lower.includes(item.toLowerCase()))
      .map((item) => ({ blocklistName: name, blocklistItemId: itemId(name, item), blocklistItemText: item })),
  );
  if (halt === true && blocklistsMatch.length > 0) return { blocklistsMatch, categoriesAnalysis: [] };
  const found = script.analyze?.(text) ?? {};
  const categoriesAnalysis = categories.map((category) => {
    const severity = found[category as ContentSafetyCategory] ?? 0;
    // FourSeverityLevels is the trimmed scale: [0,1]→0, [2,3]→2, [4,5]→4, [6,7]→6.
    return { category, severity: outputType === "FourSeverityLevels" ? severity - (severity % 2) : severity };
  });
  return { blocklistsMatch, categoriesAnalysis };
}

/** `POST /contentsafety/text:shieldPrompt`: body `{userPrompt, documents}`. */
function shieldPrompt(body: Record<string, unknown>, script: ContentSafetyScript): unknown {
  refuseUnknownFields(body, SHIELD_FIELDS);
  const userPrompt = body["userPrompt"];
  if (typeof userPrompt !== "string") throw invalidBody("'userPrompt' must be a string.");
  if (codePoints(userPrompt) > STANDIN_MAX_TEXT_CODE_POINTS) {
    throw invalidBody(`'userPrompt' exceeds the maximum length of ${STANDIN_MAX_TEXT_CODE_POINTS} characters.`);
  }
  const documents = optionalStringArray(body, "documents");
  if (documents === undefined) throw invalidBody("'documents' must be an array of strings.");
  if (documents.length > STANDIN_MAX_DOCUMENTS) throw invalidBody(`At most ${STANDIN_MAX_DOCUMENTS} documents are allowed.`);
  if (documents.reduce((sum, d) => sum + codePoints(d), 0) > STANDIN_MAX_TEXT_CODE_POINTS) {
    throw invalidBody(`The documents exceed the maximum total length of ${STANDIN_MAX_TEXT_CODE_POINTS} characters.`);
  }
  const isAttack = (text: string): boolean => script.shieldPrompt?.(text) ?? false;
  return {
    userPromptAnalysis: { attackDetected: isAttack(userPrompt) },
    documentsAnalysis: documents.map((document) => ({ attackDetected: isAttack(document) })),
  };
}

function refuseUnknownFields(body: Record<string, unknown>, known: ReadonlySet<string>): void {
  for (const field of Object.keys(body)) if (!known.has(field)) throw invalidBody(`Unknown field '${field}'.`);
}

function optionalStringArray(body: Record<string, unknown>, field: string): readonly string[] | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === "string")) {
    throw invalidBody(`'${field}' must be an array of strings.`);
  }
  return value;
}

function invalidBody(message: string): RequestError {
  return new RequestError(400, "InvalidRequestBody", message);
}

/** A stable, UUID-shaped id per blocklist item. */
function itemId(blocklistName: string, item: string): string {
  const hex = createHash("sha256").update(`${blocklistName}\u0000${item}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(raw: string): unknown {
  try {
    return raw === "" ? undefined : (JSON.parse(raw) as unknown);
  } catch {
    return undefined;
  }
}

/** Errors in the Azure core shape `{error: {code, message}}`, with the `x-ms-error-code` header. */
function sendError(res: ServerResponse, error: RequestError, headers: Record<string, string> = {}): void {
  sendJson(res, error.status, { error: { code: error.code, message: error.message } }, { "x-ms-error-code": error.code, ...headers });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(payload), ...headers });
  res.end(payload);
}
