/**
 * The public API as the pages call it: same origin, the key in the `api-key` header. Errors come back in the
 * server's envelope (docs/ERRORS.md) and are raised as ApiError with its code and message.
 */
import { createParser } from "eventsource-parser";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

export interface Deployment {
  /** The name requests route by (`model` in the body). */
  id: string;
  /** The model's Azure name, from /info?model=. */
  modelName: string;
  /** Whether it reads images (the Phi vision models). */
  isVision: boolean;
}

export function authHeaders(apiKey: string): Record<string, string> {
  return apiKey ? { "api-key": apiKey } : {};
}

async function toApiError(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; param?: unknown } };
    const error = body.error ?? {};
    const param = typeof error.param === "string" ? error.param : undefined;
    return new ApiError(response.status, String(error.code ?? response.status), String(error.message ?? response.statusText), param);
  } catch {
    return new ApiError(response.status, String(response.status), text || response.statusText);
  }
}

export async function getJson<T>(path: string, apiKey: string, signal?: AbortSignal): Promise<T> {
  const response = await fetch(path, { headers: { accept: "application/json", ...authHeaders(apiKey) }, ...(signal ? { signal } : {}) });
  if (!response.ok) throw await toApiError(response);
  return (await response.json()) as T;
}

export async function sendJson<T>(method: string, path: string, apiKey: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }), ...authHeaders(apiKey) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) throw await toApiError(response);
  return (response.status === 204 ? undefined : await response.json()) as T;
}

/** Deployments the key may use (GET /v1/models), each described by GET /info?model=. */
export async function listDeployments(apiKey: string): Promise<Deployment[]> {
  const models = await getJson<{ data: { id: string }[] }>("/v1/models", apiKey);
  return Promise.all(
    models.data.map(async ({ id }) => {
      const info = await getJson<{ model_name: string }>(`/info?model=${encodeURIComponent(id)}`, apiKey).catch(() => ({ model_name: id }));
      return { id, modelName: info.model_name, isVision: /vision/i.test(info.model_name) };
    }),
  );
}

export interface StreamHandlers {
  /** Every parsed chunk, in order. */
  onChunk(chunk: ChatChunk): void;
}

/** The parts of a stream chunk the playground reads (docs/AZURE-API.md "Streaming"). */
export interface ChatChunk {
  choices?: {
    index: number;
    delta?: { content?: string | null };
    finish_reason?: string | null;
    logprobs?: { content?: TokenLogprob[] | null } | null;
    content_filter_results?: Record<string, unknown>;
  }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  prompt_filter_results?: { prompt_index: number; content_filter_results: Record<string, unknown> }[];
  error?: { code?: string; message?: string };
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  top_logprobs?: { token: string; logprob: number }[];
}

/**
 * POST /chat/completions with `stream: true`, parsing the SSE body as it arrives. Aborting `signal` closes the
 * connection, which the server takes as cancellation and frees the sequence (docs/PLAYGROUND.md "Stop").
 */
export async function streamChat(body: Record<string, unknown>, headers: Record<string, string>, signal: AbortSignal, handlers: StreamHandlers): Promise<void> {
  const response = await fetch("/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", ...headers },
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw await toApiError(response);
  if (!response.body) throw new ApiError(0, "no_body", "The server sent no body.");
  let done = false;
  let failure: ApiError | undefined;
  const parser = createParser({
    onEvent(event) {
      if (event.data === "[DONE]") {
        done = true;
        return;
      }
      const chunk = JSON.parse(event.data) as ChatChunk;
      if (chunk.error) failure = new ApiError(response.status, chunk.error.code ?? "error", chunk.error.message ?? "The stream failed.");
      else handlers.onChunk(chunk);
    },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    parser.feed(value);
  }
  if (failure) throw failure;
  if (!done) throw new ApiError(0, "stream_cut", "The stream ended before [DONE].");
}
