/**
 * One chat completion on one upstream replica, over the OpenAI wire: the request body built from a
 * GenerationRequest, the SSE answer (parsed by eventsource-parser) mapped chunk by chunk into the
 * engine's events (docs/REMOTE.md "What is sent upstream"). Always streamed upstream, with
 * `stream_options.include_usage`, whatever the client asked: one code path, the first byte is
 * visible, and aborting the fetch stops the upstream's generation.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { FinishReason, GenerationRequest, TokenAlternative, TokenLogprob } from "../engine.ts";

/** The OpenAI request body for `request`. */
export function toUpstreamBody(request: GenerationRequest, model: string): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model,
    messages: request.messages,
    max_tokens: request.maxTokens,
    temperature: request.temperature,
    top_p: request.topP,
    presence_penalty: request.presencePenalty,
    frequency_penalty: request.frequencyPenalty,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (request.seed !== undefined) body.seed = request.seed;
  if (request.topLogprobs !== undefined) {
    body.logprobs = true;
    body.top_logprobs = request.topLogprobs;
  }
  if (request.logitBias && request.logitBias.size > 0) body.logit_bias = Object.fromEntries(request.logitBias);
  const constraint = request.constraint;
  if (constraint?.type === "json") body.response_format = { type: "json_object" };
  else if (constraint?.type === "json_schema") body.response_format = { type: "json_schema", json_schema: { name: "response", schema: constraint.schema, strict: true } };
  return body;
}

/** What one upstream SSE frame says, as the engine needs it. */
export type UpstreamFrame =
  | { type: "text"; text: string; tokenCount: number; logprobs: TokenLogprob[] | undefined }
  | { type: "finish"; finishReason: FinishReason }
  | { type: "usage"; promptTokens: number; completionTokens: number }
  /** The upstream's own error frame (a stream it could not finish), or a frame that is not JSON. */
  | { type: "error"; message: string }
  | { type: "end" };

interface WireLogprob {
  token?: unknown;
  logprob?: unknown;
  bytes?: unknown;
  top_logprobs?: unknown;
}

function toAlternative(entry: WireLogprob): TokenAlternative {
  const token = typeof entry.token === "string" ? entry.token : "";
  return {
    token,
    logprob: typeof entry.logprob === "number" ? entry.logprob : -Infinity,
    bytes: Array.isArray(entry.bytes) ? entry.bytes.filter((b): b is number => typeof b === "number") : [...Buffer.from(token)],
  };
}

function toLogprobs(value: unknown): TokenLogprob[] | undefined {
  const content = (value as { content?: unknown } | null | undefined)?.content;
  if (!Array.isArray(content)) return undefined;
  return content.map((entry: WireLogprob) => ({
    ...toAlternative(entry),
    topLogprobs: Array.isArray(entry.top_logprobs) ? entry.top_logprobs.map((t: WireLogprob) => toAlternative(t)) : [],
  }));
}

/**
 * OpenAI's finish reasons in the engine's two: `length` stays; `stop`, `tool_calls`, `function_call`
 * and `content_filter` (the upstream ended on its own) are `stop`.
 */
export function toFinishReason(reason: unknown): FinishReason {
  return reason === "length" ? "length" : "stop";
}

/** The frames of one SSE event's data. */
export function toFrames(event: EventSourceMessage): UpstreamFrame[] {
  if (event.data === "[DONE]") return [{ type: "end" }];
  let chunk: Record<string, unknown>;
  try {
    chunk = JSON.parse(event.data) as Record<string, unknown>;
  } catch {
    return [{ type: "error", message: "the upstream sent a frame that is not JSON" }];
  }
  if (chunk.error !== undefined && chunk.error !== null) {
    const message = (chunk.error as { message?: unknown }).message;
    return [{ type: "error", message: typeof message === "string" ? message : "the upstream reported an error" }];
  }
  const frames: UpstreamFrame[] = [];
  const choice = Array.isArray(chunk.choices) ? (chunk.choices[0] as Record<string, unknown> | undefined) : undefined;
  if (choice) {
    const delta = choice.delta as { content?: unknown } | undefined;
    const text = typeof delta?.content === "string" ? delta.content : "";
    const logprobs = toLogprobs(choice.logprobs);
    // One frame per token is what vLLM, llama-server and phiserve send; logprobs, when asked, count them exactly.
    if (text !== "" || (logprobs && logprobs.length > 0)) frames.push({ type: "text", text, tokenCount: logprobs?.length || 1, logprobs });
    if (choice.finish_reason !== undefined && choice.finish_reason !== null) frames.push({ type: "finish", finishReason: toFinishReason(choice.finish_reason) });
  }
  const usage = chunk.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | undefined | null;
  if (usage && typeof usage.prompt_tokens === "number" && typeof usage.completion_tokens === "number") {
    frames.push({ type: "usage", promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens });
  }
  return frames;
}

/**
 * The frames of an SSE body as they arrive. Reading stops (and the body is cancelled) when the
 * caller stops iterating; a body that breaks throws.
 */
export async function* readFrames(body: ReadableStream<Uint8Array>, onChunk: () => void): AsyncGenerator<UpstreamFrame> {
  const pending: UpstreamFrame[] = [];
  const parser = createParser({ onEvent: (event) => pending.push(...toFrames(event)) });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onChunk();
      parser.feed(decoder.decode(value, { stream: true }));
      while (pending.length > 0) yield pending.shift()!;
    }
    parser.feed(decoder.decode());
    while (pending.length > 0) yield pending.shift()!;
  } finally {
    reader.releaseLock();
  }
}
