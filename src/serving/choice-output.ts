/**
 * Reads one choice's engine events into what the client receives: content through the stop
 * strings (with logprobs kept in step), and tool calls parsed from the constrained JSON.
 */
import type { EngineEvent, FinishReason, TokenLogprob } from "../engine/engine.ts";
import type { OutputReading } from "./prompt-plan.ts";
import { StopSequenceMatcher } from "./stop-sequences.ts";
import { toToolCalls, type ToolCall } from "./tools.ts";

/** `content_filter`: the completion filter blocked the choice (docs/SAFETY.md "Streaming"). */
export type ChoiceFinishReason = FinishReason | "tool_calls" | "content_filter";

export type ChoiceEvent =
  | { type: "text"; text: string; logprobs?: TokenLogprob[] }
  | { type: "tool_calls"; calls: ToolCall[] }
  | { type: "end"; finishReason: ChoiceFinishReason };

export class ChoiceOutput {
  private readonly stops: StopSequenceMatcher;
  private readonly logprobs = new LogprobQueue();
  /** Text of the constrained JSON (tool calls), gathered rather than delivered. */
  private json = "";
  private inCall: boolean;
  private stopped = false;

  constructor(
    private readonly reading: OutputReading,
    stop: readonly string[],
    trimTrailingWhitespace: boolean,
    private readonly withLogprobs: boolean,
  ) {
    this.stops = new StopSequenceMatcher(stop, trimTrailingWhitespace);
    this.inCall = reading === "native-forced" || reading === "emulated";
  }

  /** Handles one engine event; returns what to deliver now. `stopped` ends the generation early. */
  accept(event: Exclude<EngineEvent, { type: "done" }>): { events: ChoiceEvent[]; stopped: boolean } {
    if (event.type === "constrained") {
      this.inCall = true;
      return { events: this.flushText(), stopped: false };
    }
    if (this.inCall) {
      this.json += event.text;
      return { events: [], stopped: false };
    }
    this.logprobs.add(event.text.length, event.logprobs);
    const { emit, stopped } = this.stops.push(event.text);
    this.stopped = stopped;
    return { events: emit ? [this.textEvent(emit)] : [], stopped };
  }

  /** The closing events once the engine is done (or a stop string ended it). */
  finish(engineReason: FinishReason): ChoiceEvent[] {
    const events = this.flushText();
    let reason: ChoiceFinishReason = this.stopped ? "stop" : engineReason;
    const parsed = this.json ? tryParse(this.json) : undefined;
    if (this.reading === "emulated" && parsed && typeof parsed === "object") {
      const answer = parsed as { content?: unknown; tool_calls?: unknown };
      if (typeof answer.content === "string" && answer.content) events.push({ type: "text", text: answer.content });
      if (Array.isArray(answer.tool_calls)) events.push({ type: "tool_calls", calls: toToolCalls(answer.tool_calls) });
    } else if (Array.isArray(parsed)) {
      events.push({ type: "tool_calls", calls: toToolCalls(parsed) });
    }
    if (events.some((e) => e.type === "tool_calls") && reason === "stop") reason = "tool_calls";
    events.push({ type: "end", finishReason: reason });
    return events;
  }

  private flushText(): ChoiceEvent[] {
    const rest = this.stops.flush();
    return rest ? [this.textEvent(rest)] : [];
  }

  private textEvent(text: string): ChoiceEvent {
    return { type: "text", text, ...this.logprobs.release(text.length, this.withLogprobs) };
  }
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Keeps logprob entries in step with the text actually delivered: entries of text held back for
 * a possible stop string wait, and entries of text cut by a stop string are never sent.
 */
class LogprobQueue {
  private readonly queue: { length: number; entries: TokenLogprob[] }[] = [];
  private emittedText = 0;
  private releasedText = 0;

  add(textLength: number, entries: TokenLogprob[] | undefined): void {
    this.queue.push({ length: textLength, entries: entries ?? [] });
  }

  /** Entries whose text lies within everything delivered so far, after `emitted` more characters. */
  release(emitted: number, enabled: boolean): { logprobs?: TokenLogprob[] } {
    this.emittedText += emitted;
    const out: TokenLogprob[] = [];
    while (this.queue.length > 0 && this.releasedText + this.queue[0]!.length <= this.emittedText) {
      const item = this.queue.shift()!;
      this.releasedText += item.length;
      out.push(...item.entries);
    }
    return enabled ? { logprobs: out } : {};
  }
}
