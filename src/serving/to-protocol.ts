/** Maps service results to the wire shapes of spec §3 (one mapper for JSON, one for stream chunks). */
import type { ChatCompletionChunk, ChatCompletionResponse, WireLogprobs, WireUsage } from "../protocol/chat-completions.schema.ts";
import type { FinishReason, TokenLogprob } from "../engine/engine.ts";
import type { Usage } from "./chat-completions.service.ts";

export interface ResponseMeta {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

/** One finished choice of a non-streamed response. */
export interface CompletedChoice {
  content: string;
  finishReason: FinishReason;
  /** Present when logprobs were requested. */
  logprobs: TokenLogprob[] | undefined;
}

export function toWireUsage(usage: Usage): WireUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

export function toWireLogprobs(entries: readonly TokenLogprob[] | undefined): WireLogprobs | null {
  if (!entries) return null;
  return {
    content: entries.map((e) => ({
      token: e.token,
      logprob: e.logprob,
      bytes: e.bytes,
      top_logprobs: e.topLogprobs.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
    })),
  };
}

export function toCompletionResponse(meta: ResponseMeta, choices: readonly CompletedChoice[], usage: Usage): ChatCompletionResponse {
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: choices.map((c, index) => ({
      index,
      message: { role: "assistant", content: c.content, tool_calls: null },
      finish_reason: c.finishReason,
      logprobs: toWireLogprobs(c.logprobs),
    })),
    usage: toWireUsage(usage),
  };
}

/** A choice's first chunk: carries the role and empty content, as the service sends it. */
export function toRoleChunk(meta: ResponseMeta, index: number): ChatCompletionChunk {
  return chunk(meta, index, { role: "assistant", content: "" }, null, null);
}

export function toContentChunk(meta: ResponseMeta, index: number, text: string, logprobs: readonly TokenLogprob[] | undefined): ChatCompletionChunk {
  return chunk(meta, index, { content: text }, null, toWireLogprobs(logprobs));
}

/**
 * A choice's last chunk: its `finish_reason`, with non-empty choices (the Python client skips
 * empty ones). The request's last chunk also carries `usage`.
 */
export function toFinalChunk(meta: ResponseMeta, index: number, finishReason: FinishReason, usage: Usage | undefined): ChatCompletionChunk {
  const last = chunk(meta, index, { content: "" }, finishReason, null);
  return usage ? { ...last, usage: toWireUsage(usage) } : last;
}

function chunk(
  meta: ResponseMeta,
  index: number,
  delta: ChatCompletionChunk["choices"][number]["delta"],
  finishReason: FinishReason | null,
  logprobs: WireLogprobs | null,
): ChatCompletionChunk {
  return {
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    choices: [{ index, delta, finish_reason: finishReason, logprobs }],
  };
}
