/**
 * One deployment's generation step of the chat use case: render the prompt with the model's
 * template, check it fits the context window, run the engine for each of the `n` choices, apply
 * stop strings, and count usage exactly. The request's life around it (deployment, quota,
 * admission, metering) is `chat-completions.service.ts`.
 */
import type { ArrivalTicket, Engine, EngineImage, EngineModelInfo, GenerationRequest, PromptText, TextSpan, TokenLogprob } from "../engine/engine.ts";
import { checkLogitBiasIds } from "./decoding-options.ts";
import { AppError } from "../errors/app-error.ts";
import { renderChatPrompt, renderChatTemplate } from "../catalog/chat-templates.ts";
import type { ChatCommand } from "./chat-command.ts";
import { loadChatImage, type ImageSettings, type LoadedImage } from "./chat-images.ts";
import type { ServedModel } from "./served-model.ts";
import { ChoiceOutput, type ChoiceEvent, type ChoiceFinishReason } from "./choice-output.ts";
import { planPrompt, type PromptPlan } from "./prompt-plan.ts";
import type { ToolCall } from "./tools.ts";
import { Cancellation, toAbortSignal, type CancelSignal } from "../lib/cancellation.ts";
import type { ContentFilter } from "../safety/content-filter.ts";
import type { WireFilterResults } from "../safety/content-policy.ts";
import { CompletionGate } from "./completion-gate.ts";

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * Where a run delivers its output, per choice `index`: text (with its tokens' logprobs when
 * asked), tool calls, then one `end` per choice. The last `end` of the request carries the usage
 * of all choices. A call may return a promise (e.g. a full socket); the run waits for it.
 */
export interface GenerationSink {
  text(index: number, text: string, logprobs: TokenLogprob[] | undefined): void | Promise<void>;
  toolCalls(index: number, calls: ToolCall[]): void | Promise<void>;
  /** `filterResults`: the choice's content-filter annotation, when its completion was vetted. */
  end(index: number, finishReason: ChoiceFinishReason, usage: Usage | undefined, filterResults?: WireFilterResults): void | Promise<void>;
}

/** Completion filtering for a run (docs/SAFETY.md "Streaming"): each choice's text is vetted in windows before release. */
export interface CompletionSafety {
  filter: ContentFilter;
  windowChars: number;
}

/** What the choices of one run share. */
interface RunState {
  completionTokens: number;
  open: number;
  finishReasons: ChoiceFinishReason[];
  promptTokens: number;
  sink: GenerationSink;
  safety: CompletionSafety | undefined;
}

function deliver(state: RunState, index: number, event: ChoiceEvent, filterResults?: WireFilterResults): void | Promise<void> {
  if (event.type === "text") return state.sink.text(index, event.text, event.logprobs);
  if (event.type === "tool_calls") return state.sink.toolCalls(index, event.calls);
  state.finishReasons[index] = event.finishReason;
  state.open -= 1;
  // Usage counts the prompt once and sums the choices' completions (OpenAI's accounting for n).
  return state.sink.end(index, event.finishReason, state.open === 0 ? { promptTokens: state.promptTokens, completionTokens: state.completionTokens } : undefined, filterResults);
}

/** A request that passed every check that can be made before the first byte is sent. */
export interface PreparedChat {
  prompt: string;
  /** The message text in `prompt`, tokenized as plain text (none when the deployment parses special tokens everywhere). */
  literalSpans: readonly TextSpan[] | undefined;
  /** The request's image, preprocessed (`<|image_1|>` in the prompt); none for text-only requests. */
  images: readonly EngineImage[] | undefined;
  /** How long the image took to fetch, decode and preprocess (for the request log). */
  imageTimings: Pick<LoadedImage, "fetchMs" | "timings"> | undefined;
  promptTokens: number;
  maxTokens: number;
  command: ChatCommand;
  plan: PromptPlan;
  /**
   * The engine's ticket for this request, from the start of `prepare` until the first choice's `generate` takes it
   * over (`Engine.expectGeneration`); `run` leaves it in any case. Callers that do not `run` must leave it.
   */
  arrival: ArrivalTicket;
}

/** For engines without `expectGeneration`. */
const NO_ARRIVAL: ArrivalTicket = { idle: () => undefined, resume: () => undefined, leave: () => undefined };

/** What a request consumed, reported once per request, finished or not (bill what was generated). */
export interface UsageRecord extends Usage {
  /** False when the generation was cut short (client gone, deadline, shutdown). */
  completed: boolean;
  finishReasons: ChoiceFinishReason[];
}

export interface ChatGenerationDeps {
  engine: Engine;
  model: ServedModel;
  /**
   * Parse special-token text in message contents too (`--parse-special-in-content`), as phiserve did
   * before: `<|end|>` typed by a user then closes their turn. Default false: only the template's own
   * markers are special tokens (docs/ENGINE-NOTES.md "Special tokens in message content").
   */
  parseSpecialInContent?: boolean | undefined;
  /** How the deployment takes images; undefined for models without vision. */
  images?: ImageSettings | undefined;
}

/**
 * The prompt as llama.cpp's chat path would tokenize it: when the model file asks for a BOS
 * (`tokenizer.ggml.add_bos_token`), one is added unless the template already rendered it, so a
 * BOS is never doubled (docs/ENGINE-NOTES.md, "Tokenization and BOS").
 */
export function withBos(prompt: string, info: Pick<EngineModelInfo, "addBosToken" | "bosToken">): string {
  if (!info.addBosToken || info.bosToken === "" || prompt.startsWith(info.bosToken)) return prompt;
  return info.bosToken + prompt;
}

/** {@link withBos} on a prompt with literal spans: a prepended BOS shifts them. */
function withBosSpans(prompt: Required<Pick<PromptText, "prompt" | "literalSpans">>, info: Pick<EngineModelInfo, "addBosToken" | "bosToken">): Required<Pick<PromptText, "prompt" | "literalSpans">> {
  const text = withBos(prompt.prompt, info);
  const shift = text.length - prompt.prompt.length;
  if (shift === 0 || prompt.literalSpans === undefined) return { prompt: text, literalSpans: prompt.literalSpans };
  return { prompt: text, literalSpans: prompt.literalSpans.map((s) => ({ start: s.start + shift, end: s.end + shift })) };
}

/** Seconds a client is told to wait while the model is still loading. */
const LOADING_RETRY_AFTER_SECONDS = 5;

export class ChatGeneration {
  constructor(private readonly deps: ChatGenerationDeps) {}

  /**
   * Renders and measures the prompt (the request's image, if any, loaded and preprocessed first); throws the
   * errors that must precede any streamed byte. `chatTemplate`: render with this template instead of the
   * model's (a guard classifier's own prompt format).
   */
  async prepare(command: ChatCommand, signal?: CancelSignal, options: { chatTemplate?: string | undefined } = {}): Promise<PreparedChat> {
    const { engine } = this.deps;
    if (!engine.isReady()) {
      throw new AppError("ENGINE_UNAVAILABLE", "The model is loading; retry shortly.", {
        retryAfterSeconds: LOADING_RETRY_AFTER_SECONDS,
      });
    }
    const arrival = engine.expectGeneration?.() ?? NO_ARRIVAL;
    try {
      return { ...(await this.prepareChat(command, signal, options)), arrival };
    } catch (error) {
      arrival.leave();
      throw error;
    }
  }

  private async prepareChat(command: ChatCommand, signal: CancelSignal | undefined, options: { chatTemplate?: string | undefined }): Promise<Omit<PreparedChat, "arrival">> {
    const { engine, model } = this.deps;
    const info = engine.modelInfo();
    const plan = planPrompt(command, model);
    const { prompt, literalSpans } = withBosSpans(this.render(plan, info, options.chatTemplate ?? this.deps.model.chatTemplate), info);
    checkLogitBiasIds(command.logitBias, info.vocabSize);
    const requested = command.maxTokens ?? 0;
    // The prompt must leave room for the completion asked for, and at least one token.
    const limit = Math.min(info.contextLength - requested, info.contextLength - 1);
    const loaded = await this.loadImage(command, signal);
    const images = loaded ? [loaded] : undefined;
    const count = await engine.countTokens({ prompt, literalSpans, images }, limit);
    if (count.tokens > limit) {
      const atLeast = count.exact ? "" : "at least ";
      throw new AppError(
        "CONTEXT_LENGTH_EXCEEDED",
        `This model's maximum context length is ${info.contextLength} tokens. However, you requested ` +
          `${atLeast}${count.tokens + requested} tokens (${atLeast}${count.tokens} in the messages, ${requested} in the completion). ` +
          "Please reduce the length of the messages or completion.",
        { param: "messages" },
      );
    }
    const promptTokens = count.tokens;
    const maxTokens = command.maxTokens ?? info.contextLength - promptTokens;
    for (const constraint of [plan.constraint, plan.constrainAfter?.constraint]) if (constraint) await engine.prepareConstraint(constraint);
    const imageTimings = loaded ? { fetchMs: loaded.fetchMs, timings: loaded.timings } : undefined;
    return { prompt, literalSpans, images, imageTimings, promptTokens, maxTokens, command, plan };
  }

  /** The request's image (only the last one is kept: chat-command.ts), ready for the engine. */
  private async loadImage(command: ChatCommand, signal: CancelSignal | undefined): Promise<LoadedImage | undefined> {
    const image = [...command.messages].reverse().find((m) => m.image)?.image;
    if (!image) return undefined;
    const settings = this.deps.images;
    if (!settings) throw new AppError("PARAMETER_NOT_SUPPORTED", "This model doesn't support image input.", { param: "messages" });
    return loadChatImage(image, settings, signal);
  }

  /** The template applied to the plan's messages; the suffix (e.g. `<|tool_call|>`) is template text. */
  private render(plan: PromptPlan, info: EngineModelInfo, template: string): Required<Pick<PromptText, "prompt" | "literalSpans">> {
    const { parseSpecialInContent } = this.deps;
    const options = { bosToken: info.bosToken, eosToken: info.eosToken };
    if (parseSpecialInContent) return { prompt: renderChatTemplate(template, plan.messages, options) + plan.promptSuffix, literalSpans: undefined };
    const rendered = renderChatPrompt(template, plan.messages, options);
    return { prompt: rendered.prompt + plan.promptSuffix, literalSpans: rendered.literalSpans };
  }

  /**
   * Runs a prepared request: `n` choices in parallel sequences, delivered to `sink` as they come
   * (a sink call may return a promise to apply backpressure). Aborting `signal` ends the run early
   * (no final `end`). `recordUsage` is called exactly once, finished or not.
   */
  async run(prepared: PreparedChat, signal: CancelSignal, sink: GenerationSink, recordUsage: (record: UsageRecord) => void, safety?: CompletionSafety): Promise<void> {
    const { command, promptTokens } = prepared;
    const state: RunState = { completionTokens: 0, open: command.n, finishReasons: [], promptTokens, sink, safety };
    try {
      // One choice (the common case) needs no coordination.
      if (command.n === 1) await this.runChoice(prepared, 0, signal, state);
      else await this.runChoices(prepared, signal, state);
    } finally {
      prepared.arrival.leave();
      recordUsage({ promptTokens: state.promptTokens, completionTokens: state.completionTokens, completed: state.open === 0, finishReasons: state.finishReasons });
    }
  }

  /** `n` > 1: the choices run side by side; the first failure stops the others before it is rethrown. */
  private async runChoices(prepared: PreparedChat, signal: CancelSignal, state: RunState): Promise<void> {
    const controller = new Cancellation();
    const forward = () => controller.abort(signal.reason);
    if (signal.aborted) forward();
    else signal.addEventListener("abort", forward, { once: true });
    try {
      const results = await Promise.allSettled(Array.from({ length: prepared.command.n }, async (_, index) => {
        try {
          await this.runChoice(prepared, index, controller, state);
        } catch (error) {
          controller.abort(error);
          throw error;
        }
      }));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    } finally {
      signal.removeEventListener("abort", forward);
    }
  }

  private async runChoice(prepared: PreparedChat, index: number, signal: CancelSignal, state: RunState): Promise<void> {
    const { command, plan } = prepared;
    const output = new ChoiceOutput(plan.reading, command.stop, plan.constraint !== undefined, command.topLogprobs !== undefined);
    const gate = state.safety ? new CompletionGate(state.safety.filter, state.safety.windowChars) : undefined;
    const abort = gate ? toAbortSignal(signal) : undefined;
    /** Delivers one event through the gate: text waits for a whole window, anything else releases what is held first. */
    const emit = async (e: ChoiceEvent): Promise<boolean> => {
      if (gate && abort) {
        if (e.type === "text") {
          gate.push(e.text, e.logprobs);
          if (!gate.full) return true;
        }
        const released = await gate.release(abort.signal);
        if (!released) return false;
        if (released.text !== "" || released.logprobs) await deliver(state, index, { type: "text", text: released.text, ...(released.logprobs ? { logprobs: released.logprobs } : {}) });
        if (e.type === "text") return true;
        await deliver(state, index, e, e.type === "end" ? gate.results : undefined);
        return true;
      }
      await deliver(state, index, e);
      return true;
    };
    try {
      let engineReason: "stop" | "length" = "length";
      let blocked = false;
      if (prepared.maxTokens > 0) {
        generation: for await (const event of this.deps.engine.generate(this.toEngineRequest(prepared, index), signal)) {
          if (event.type === "done") {
            engineReason = event.finishReason;
            // A remote engine bills the prompt as its upstream rendered it (docs/REMOTE.md "Token accounting").
            if (event.promptTokens !== undefined) state.promptTokens = event.promptTokens;
            break;
          }
          state.completionTokens += event.tokenCount;
          const { events, stopped } = output.accept(event);
          for (const e of events) {
            if (!(await emit(e))) {
              blocked = true;
              break generation;
            }
          }
          if (stopped) break;
        }
        if (signal.aborted) return;
      }
      if (!blocked) {
        for (const e of output.finish(engineReason)) {
          if (!(await emit(e))) {
            blocked = true;
            break;
          }
        }
      }
      // The filter blocked this choice: it ends here, and only here (the others of `n` go on).
      if (blocked) await deliver(state, index, { type: "end", finishReason: "content_filter" }, gate?.results);
    } finally {
      abort?.dispose();
    }
  }

  private toEngineRequest(prepared: PreparedChat, index: number): GenerationRequest {
    const { command } = prepared;
    return {
      prompt: prepared.prompt,
      literalSpans: prepared.literalSpans,
      messages: prepared.plan.messages.map((m) => ({ role: m.role, content: m.content })),
      images: prepared.images,
      // The first choice's generation carries the request's ticket on; the others enter on their own.
      ...(index === 0 ? { arrival: prepared.arrival } : {}),
      maxTokens: prepared.maxTokens,
      temperature: command.temperature,
      topP: command.topP,
      presencePenalty: command.presencePenalty,
      frequencyPenalty: command.frequencyPenalty,
      // Choices differ by seed; a given seed still reproduces every choice.
      seed: command.seed === undefined ? undefined : command.seed + index,
      logitBias: command.logitBias.size > 0 ? command.logitBias : undefined,
      topLogprobs: command.topLogprobs,
      constraint: prepared.plan.constraint,
      constrainAfter: prepared.plan.constrainAfter,
      suppressTokens: prepared.plan.suppressTokens.length > 0 ? prepared.plan.suppressTokens : undefined,
    };
  }
}
