/**
 * The chat-completions use case: render the prompt with the model's template, check it fits the
 * context window, run the engine, apply stop strings, and count usage exactly. No HTTP here.
 */
import type { Engine, FinishReason } from "../engine/engine.ts";
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

/** What a generation yields: text to deliver, then exactly one `end`. */
export type GenerationEvent =
  | { type: "text"; text: string }
  | { type: "end"; finishReason: FinishReason; usage: Usage };

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
  prepare(command: ChatCommand): PreparedChat {
    const { engine, model } = this.deps;
    if (!engine.isReady()) {
      throw new AppError("ENGINE_UNAVAILABLE", "The model is loading; retry shortly.", {
        retryAfterSeconds: LOADING_RETRY_AFTER_SECONDS,
      });
    }
    const info = engine.modelInfo();
    const messages = model.supportsSystemRole ? command.messages : foldSystemIntoUser(command.messages);
    const prompt = renderChatTemplate(model.chatTemplate, messages, { bosToken: info.bosToken, eosToken: info.eosToken });
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
    return { prompt, promptTokens, maxTokens, command };
  }

  /** Runs a prepared request. Aborting `signal` ends the iteration early (no `end` event). */
  async *generate(prepared: PreparedChat, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    const { command, promptTokens, maxTokens } = prepared;
    let completionTokens = 0;
    let finishReason: FinishReason = "length";
    const stops = new StopSequenceMatcher(command.stop);
    if (maxTokens > 0) {
      const events = this.deps.engine.generate(
        {
          prompt: prepared.prompt,
          maxTokens,
          temperature: command.temperature,
          topP: command.topP,
          presencePenalty: command.presencePenalty,
          frequencyPenalty: command.frequencyPenalty,
          ...(command.seed === undefined ? {} : { seed: command.seed }),
        },
        signal,
      );
      for await (const event of events) {
        if (event.type === "done") {
          finishReason = event.finishReason;
          break;
        }
        completionTokens += event.tokenCount;
        const { emit, stopped } = stops.push(event.text);
        if (emit) yield { type: "text", text: emit };
        if (stopped) {
          finishReason = "stop";
          break;
        }
      }
      if (signal.aborted) return;
    }
    const rest = stops.flush();
    if (rest) yield { type: "text", text: rest };
    yield { type: "end", finishReason, usage: { promptTokens, completionTokens } };
  }
}
