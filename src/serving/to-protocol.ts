/**
 * Maps service results to the wire shapes of docs/AZURE-API.md "Response" and "Streaming" (one mapper
 * for JSON, one for stream chunks).
 */
import type { ChatCompletionChunk, ChatCompletionResponse, WireContentFilterResults, WireLogprobs, WireToolCall, WireUsage } from "../protocol/chat-completions.schema.ts";
import type { TokenLogprob } from "../engine/engine.ts";
import type { Usage } from "./chat-generation.ts";
import type { ChoiceFinishReason } from "./choice-output.ts";
import type { ToolCall } from "./tools.ts";

export interface ResponseMeta {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

/** One finished choice of a non-streamed response. */
export interface CompletedChoice {
  content: string;
  finishReason: ChoiceFinishReason;
  toolCalls: ToolCall[] | undefined;
  /** Present when logprobs were requested. */
  logprobs: TokenLogprob[] | undefined;
  /** The choice's content-filter annotation, when annotations are on. */
  contentFilterResults?: WireContentFilterResults | undefined;
}

export function toWireUsage(usage: Usage): WireUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

export function toWireToolCall(call: ToolCall): WireToolCall {
  return { id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } };
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

/**
 * The whole response. `promptFilterResults`: the prompt's annotation when annotations are on (then each
 * choice carries its own `content_filter_results`; docs/SAFETY.md "Annotations").
 */
export function toCompletionResponse(meta: ResponseMeta, choices: readonly CompletedChoice[], usage: Usage, promptFilterResults?: WireContentFilterResults): ChatCompletionResponse {
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    ...(promptFilterResults ? { prompt_filter_results: [{ prompt_index: 0, content_filter_results: promptFilterResults }] } : {}),
    choices: choices.map((c, index) => ({
      index,
      message: {
        role: "assistant",
        // With tool calls and no text, content is null (OpenAI); otherwise the text.
        content: c.toolCalls && c.content === "" ? null : c.content,
        tool_calls: c.toolCalls ? c.toolCalls.map(toWireToolCall) : null,
      },
      finish_reason: c.finishReason,
      logprobs: toWireLogprobs(c.logprobs),
      ...(c.contentFilterResults ? { content_filter_results: c.contentFilterResults } : {}),
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

/** A choice's tool calls, as one delta (each call whole: its arguments are known when the JSON closes). */
export function toToolCallsChunk(meta: ResponseMeta, index: number, calls: readonly ToolCall[]): ChatCompletionChunk {
  return chunk(meta, index, { tool_calls: calls.map((c, i) => ({ index: i, ...toWireToolCall(c) })) }, null, null);
}

/**
 * A choice's last chunk: its `finish_reason`, with non-empty choices (the Python client skips
 * empty ones). The request's last chunk also carries `usage`.
 */
export function toFinalChunk(meta: ResponseMeta, index: number, finishReason: ChoiceFinishReason, usage: Usage | undefined): ChatCompletionChunk {
  const last = chunk(meta, index, { content: "" }, finishReason, null);
  return usage ? { ...last, usage: toWireUsage(usage) } : last;
}

/**
 * Where a stream's usage goes. `finish-chunk`: Azure's documented shape, on the request's last
 * finish chunk (docs/AZURE-API.md "Streaming"). `usage-chunk`: OpenAI's `stream_options.include_usage`,
 * `usage: null` on every chunk, then one extra chunk with `choices: []` and the usage. `none`:
 * OpenAI without it: no usage at all (docs/AZURE-API.md "OpenAI route").
 */
export type StreamUsage = "finish-chunk" | "usage-chunk" | "none";

/** The chunks of one streamed response, shaped for its route's usage rule. */
export class StreamChunks {
  constructor(
    private readonly meta: ResponseMeta,
    private readonly usage: StreamUsage,
  ) {}

  role(index: number): ChatCompletionChunk {
    return this.mark(toRoleChunk(this.meta, index));
  }

  content(index: number, text: string, logprobs: readonly TokenLogprob[] | undefined): ChatCompletionChunk {
    return this.mark(toContentChunk(this.meta, index, text, logprobs));
  }

  toolCalls(index: number, calls: readonly ToolCall[]): ChatCompletionChunk {
    return this.mark(toToolCallsChunk(this.meta, index, calls));
  }

  /**
   * Azure's first chunk of an annotated stream: empty id, object and model, the prompt's annotation, no
   * choices (docs/SAFETY.md "Annotations").
   */
  promptAnnotation(results: WireContentFilterResults): ChatCompletionChunk {
    return { id: "", object: "", created: 0, model: "", prompt_filter_results: [{ prompt_index: 0, content_filter_results: results }], choices: [], usage: null };
  }

  /**
   * A choice's finish chunk (with its content-filter annotation when given); with the request's usage
   * (on its last choice), the usage as its rule places it.
   */
  end(index: number, finishReason: ChoiceFinishReason, usage: Usage | undefined, filterResults?: WireContentFilterResults): ChatCompletionChunk[] {
    const annotate = (c: ChatCompletionChunk): ChatCompletionChunk =>
      filterResults ? { ...c, choices: c.choices.map((choice) => ({ ...choice, content_filter_results: filterResults })) } : c;
    if (this.usage === "finish-chunk") return [annotate(toFinalChunk(this.meta, index, finishReason, usage))];
    const last = this.mark(annotate(toFinalChunk(this.meta, index, finishReason, undefined)));
    if (!usage || this.usage === "none") return [last];
    const { choices: _, ...head } = last;
    return [last, { ...head, choices: [], usage: toWireUsage(usage) }];
  }

  private mark(chunk: ChatCompletionChunk): ChatCompletionChunk {
    return this.usage === "usage-chunk" ? { ...chunk, usage: null } : chunk;
  }
}

function chunk(
  meta: ResponseMeta,
  index: number,
  delta: ChatCompletionChunk["choices"][number]["delta"],
  finishReason: ChoiceFinishReason | null,
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
