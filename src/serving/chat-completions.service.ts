/**
 * The chat-completions use case: render the prompt with the model's template, check it fits the
 * context window, run the engine, apply stop strings, and count usage exactly. No HTTP here.
 */
import type { Engine, FinishReason, GenerationRequest, TokenLogprob } from "../engine/engine.ts";
import { mergeAsync } from "../lib/merge-async.ts";
import { checkLogitBiasIds } from "./decoding-options.ts";
import { AppError } from "../errors/app-error.ts";
import { foldSystemIntoUser, renderChatTemplate } from "../catalog/chat-templates.ts";
import type { ChatCommand, ModelCapabilities } from "./chat-command.ts";
import { StopSequenceMatcher } from "./stop-sequences.ts";

/** The model a deployment serves, resolved at start-up. */
export interface ServedModel {
  deploymentName: string;
  /** `model_name` in /info and `model` in responses, e.g. "Phi-3.5-Mini-Instruct". */
  azureName: string;
  chatTemplate: string;
  /** False: system messages are translated into user messages (Azure behaviour). */
  supportsSystemRole: boolean;
  capabilities: ModelCapabilities;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * What a generation yields, per choice `index`: text (with its tokens' logprobs when asked), then
 * one `end` per choice. The last `end` of the request carries the usage of all choices.
 */
export type GenerationEvent =
  | { type: "text"; index: number; text: string; logprobs?: TokenLogprob[] }
  | { type: "end"; index: number; finishReason: FinishReason; usage?: Usage };

/** A request that passed every check that can be made before the first byte is sent. */
export interface PreparedChat {
  prompt: string;
  promptTokens: number;
  maxTokens: number;
  command: ChatCommand;
}

export interface ChatCompletionsServiceDeps {
  engine: Engine;
  model: ServedModel;
}

/** Seconds a client is told to wait while the model is still loading. */
const LOADING_RETRY_AFTER_SECONDS = 5;

export class ChatCompletionsService {
  constructor(private readonly deps: ChatCompletionsServiceDeps) {}

  /** Renders and measures the prompt; throws the errors that must precede any streamed byte. */
  async prepare(command: ChatCommand): Promise<PreparedChat> {
    const { engine, model } = this.deps;
    if (!engine.isReady()) {
      throw new AppError("ENGINE_UNAVAILABLE", "The model is loading; retry shortly.", {
        retryAfterSeconds: LOADING_RETRY_AFTER_SECONDS,
      });
    }
    const info = engine.modelInfo();
    const messages = model.supportsSystemRole ? command.messages : foldSystemIntoUser(command.messages);
    const prompt = renderChatTemplate(model.chatTemplate, messages, { bosToken: info.bosToken, eosToken: info.eosToken });
    checkLogitBiasIds(command.logitBias, info.vocabSize);
    const promptTokens = engine.countTokens(prompt);
    const requested = command.maxTokens ?? 0;
    if (promptTokens + requested > info.contextLength || promptTokens >= info.contextLength) {
      throw new AppError(
        "CONTEXT_LENGTH_EXCEEDED",
        `This model's maximum context length is ${info.contextLength} tokens. However, you requested ` +
          `${promptTokens + requested} tokens (${promptTokens} in the messages, ${requested} in the completion). ` +
          "Please reduce the length of the messages or completion.",
        { param: "messages" },
      );
    }
    const maxTokens = command.maxTokens ?? info.contextLength - promptTokens;
    if (command.constraint) await engine.prepareConstraint(command.constraint);
    return { prompt, promptTokens, maxTokens, command };
  }

  /** Runs a prepared request: `n` choices in parallel sequences. Aborting `signal` ends the iteration early (no final `end`). */
  async *generate(prepared: PreparedChat, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    const { command, promptTokens } = prepared;
    const choices = Array.from({ length: command.n }, (_, index) => this.generateChoice(prepared, index, signal));
    let completionTokens = 0;
    let open = command.n;
    for await (const event of mergeAsync(choices)) {
      if (event.type === "text") {
        yield event;
        continue;
      }
      completionTokens += event.completionTokens;
      open -= 1;
      const end: GenerationEvent = { type: "end", index: event.index, finishReason: event.finishReason };
      // Usage counts the prompt once and sums the choices' completions (OpenAI's accounting for n).
      yield open === 0 ? { ...end, usage: { promptTokens, completionTokens } } : end;
    }
  }

  private async *generateChoice(prepared: PreparedChat, index: number, signal: AbortSignal): AsyncGenerator<ChoiceEvent> {
    const { command, maxTokens } = prepared;
    let completionTokens = 0;
    let finishReason: FinishReason = "length";
    const stops = new StopSequenceMatcher(command.stop, command.constraint !== undefined);
    const logprobs = new LogprobQueue();
    if (maxTokens > 0) {
      for await (const event of this.deps.engine.generate(this.toEngineRequest(prepared, index), signal)) {
        if (event.type === "done") {
          finishReason = event.finishReason;
          break;
        }
        completionTokens += event.tokenCount;
        logprobs.add(event.text.length, event.logprobs);
        const { emit, stopped } = stops.push(event.text);
        if (emit) yield { type: "text", index, text: emit, ...logprobs.release(emit.length, command.topLogprobs !== undefined) };
        if (stopped) {
          finishReason = "stop";
          break;
        }
      }
      if (signal.aborted) return;
    }
    const rest = stops.flush();
    if (rest) yield { type: "text", index, text: rest, ...logprobs.release(rest.length, command.topLogprobs !== undefined) };
    yield { type: "end", index, finishReason, completionTokens };
  }

  private toEngineRequest(prepared: PreparedChat, index: number): GenerationRequest {
    const { command } = prepared;
    return {
      prompt: prepared.prompt,
      maxTokens: prepared.maxTokens,
      temperature: command.temperature,
      topP: command.topP,
      presencePenalty: command.presencePenalty,
      frequencyPenalty: command.frequencyPenalty,
      // Choices differ by seed; a given seed still reproduces every choice.
      ...(command.seed === undefined ? {} : { seed: command.seed + index }),
      ...(command.logitBias.size > 0 ? { logitBias: command.logitBias } : {}),
      ...(command.topLogprobs === undefined ? {} : { topLogprobs: command.topLogprobs }),
      ...(command.constraint ? { constraint: command.constraint } : {}),
    };
  }
}

type ChoiceEvent =
  | { type: "text"; index: number; text: string; logprobs?: TokenLogprob[] }
  | { type: "end"; index: number; finishReason: FinishReason; completionTokens: number };

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
