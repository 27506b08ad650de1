/** Maps service results to the wire shapes of spec §3 (one mapper for JSON, one for stream chunks). */
import type { ChatCompletionChunk, ChatCompletionResponse, WireUsage } from "../protocol/chat-completions.schema.ts";
import type { FinishReason } from "../engine/engine.ts";
import type { Usage } from "./chat-completions.service.ts";

export interface ResponseMeta {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

export function toWireUsage(usage: Usage): WireUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

export function toCompletionResponse(meta: ResponseMeta, content: string, finishReason: FinishReason, usage: Usage): ChatCompletionResponse {
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message: { role: "assistant", content, tool_calls: null }, finish_reason: finishReason, logprobs: null }],
    usage: toWireUsage(usage),
  };
}

/** First chunk: carries the role and empty content, as the service sends it. */
export function toRoleChunk(meta: ResponseMeta): ChatCompletionChunk {
  return chunk(meta, { role: "assistant", content: "" }, null);
}

export function toContentChunk(meta: ResponseMeta, text: string): ChatCompletionChunk {
  return chunk(meta, { content: text }, null);
}

/** Last chunk: `finish_reason` and `usage` together, with non-empty choices (the Python client skips empty ones). */
export function toFinalChunk(meta: ResponseMeta, finishReason: FinishReason, usage: Usage): ChatCompletionChunk {
  return { ...chunk(meta, { content: "" }, finishReason), usage: toWireUsage(usage) };
}

function chunk(meta: ResponseMeta, delta: ChatCompletionChunk["choices"][number]["delta"], finishReason: FinishReason | null): ChatCompletionChunk {
  return {
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
  };
}
