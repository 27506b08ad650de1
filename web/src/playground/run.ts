/**
 * One answer, streamed: sends a pane's request, folds the chunks into an assistant message (text, usage,
 * finish reason, logprobs, content-filter annotations) and measures time to first token and tokens/s in
 * the browser. Updates are handed on at most every UPDATE_INTERVAL_MS, in an animation frame, so a fast
 * stream costs a render per interval, not one per token (docs/PLAYGROUND.md "Streaming").
 */
import { ApiError, streamChat, type ChatChunk } from "../lib/api.ts";
import type { Message } from "../lib/conversation.ts";

/** How often a streaming answer is re-rendered: 20 times a second (bench/RESULTS.md "Playground"). */
export const UPDATE_INTERVAL_MS = 50;

export interface RunOptions {
  body: Record<string, unknown>;
  headers: Record<string, string>;
  signal: AbortSignal;
  /** Called with the answer so far (a fresh object each time), at most once per frame, and once at the end. */
  onUpdate(message: Message): void;
}

export async function runAnswer({ body, headers, signal, onUpdate }: RunOptions): Promise<Message> {
  const answer: Message = { role: "assistant", content: "", stats: {} };
  const sentAt = performance.now();
  let firstTokenAt: number | undefined;
  let frame = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let flushedAt = 0;
  const flush = () => {
    frame = 0;
    timer = undefined;
    flushedAt = performance.now();
    onUpdate({ ...answer, stats: { ...answer.stats }, ...(answer.logprobs ? { logprobs: [...answer.logprobs] } : {}) });
  };
  // At most one update per UPDATE_INTERVAL_MS, in an animation frame: the frames between stay cheap.
  const schedule = () => {
    if (frame !== 0 || timer !== undefined) return;
    const wait = UPDATE_INTERVAL_MS - (performance.now() - flushedAt);
    if (wait <= 0) frame = requestAnimationFrame(flush);
    else timer = setTimeout(() => ((timer = undefined), (frame = requestAnimationFrame(flush))), wait);
  };
  const onChunk = (chunk: ChatChunk) => {
    const filter = chunk.prompt_filter_results?.[0]?.content_filter_results;
    if (filter) answer.promptFilter = filter;
    const choice = chunk.choices?.find((c) => c.index === 0);
    const text = choice?.delta?.content;
    if (text) {
      firstTokenAt ??= performance.now();
      answer.content += text;
    }
    const tokens = choice?.logprobs?.content;
    if (tokens && tokens.length > 0) answer.logprobs = [...(answer.logprobs ?? []), ...tokens];
    if (choice?.content_filter_results) answer.contentFilter = choice.content_filter_results;
    if (choice?.finish_reason) answer.stats!.finishReason = choice.finish_reason;
    if (chunk.usage) {
      answer.stats!.promptTokens = chunk.usage.prompt_tokens;
      answer.stats!.completionTokens = chunk.usage.completion_tokens;
    }
    schedule();
  };
  try {
    await streamChat(body, headers, signal, { onChunk });
  } catch (error) {
    if (signal.aborted) answer.stats!.finishReason = "stopped";
    else answer.error = error instanceof ApiError ? `${error.message} (${error.code})` : String((error as Error).message ?? error);
  } finally {
    if (frame !== 0) cancelAnimationFrame(frame);
    if (timer !== undefined) clearTimeout(timer);
  }
  const endedAt = performance.now();
  if (firstTokenAt !== undefined) {
    answer.stats!.ttftMs = Math.round(firstTokenAt - sentAt);
    const tokens = answer.stats!.completionTokens;
    if (tokens !== undefined && tokens > 1 && endedAt > firstTokenAt) answer.stats!.tokensPerSecond = Math.round(((tokens - 1) / (endedAt - firstTokenAt)) * 10_000) / 10;
  }
  flush();
  return answer;
}
