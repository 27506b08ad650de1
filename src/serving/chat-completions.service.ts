/**
 * The chat-completions use case: render the prompt with the model's template, check it fits the
 * context window, run the engine, apply stop strings, and count usage exactly. No HTTP here.
 */
import type { Engine, GenerationRequest, TokenLogprob } from "../engine/engine.ts";
import { mergeAsync } from "../lib/merge-async.ts";
import { checkLogitBiasIds } from "./decoding-options.ts";
import { AppError } from "../errors/app-error.ts";
import { renderChatTemplate } from "../catalog/chat-templates.ts";
import type { ChatCommand, ModelCapabilities } from "./chat-command.ts";
import { ChoiceOutput, type ChoiceEvent, type ChoiceFinishReason } from "./choice-output.ts";
import { planPrompt, type PromptPlan } from "./prompt-plan.ts";
import type { ToolCall } from "./tools.ts";

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
  | { type: "tool_calls"; index: number; calls: ToolCall[] }
  | { type: "end"; index: number; finishReason: ChoiceFinishReason; usage?: Usage };

/** A request that passed every check that can be made before the first byte is sent. */
export interface PreparedChat {
  prompt: string;
  promptTokens: number;
  maxTokens: number;
  command: ChatCommand;
  plan: PromptPlan;
}

/** What a request consumed, reported once per request, finished or not (bill what was generated). */
export interface UsageRecord extends Usage {
  /** False when the generation was cut short (client gone, deadline, shutdown). */
  completed: boolean;
  finishReasons: ChoiceFinishReason[];
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
    const plan = planPrompt(command, model);
    const prompt = renderChatTemplate(model.chatTemplate, plan.messages, { bosToken: info.bosToken, eosToken: info.eosToken }) + plan.promptSuffix;
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
    for (const constraint of [plan.constraint, plan.constrainAfter?.constraint]) if (constraint) await engine.prepareConstraint(constraint);
    return { prompt, promptTokens, maxTokens, command, plan };
  }

  /**
   * Runs a prepared request: `n` choices in parallel sequences. Aborting `signal` ends the
   * iteration early (no final `end`). `recordUsage` is called exactly once, finished or not.
   */
  async *generate(prepared: PreparedChat, signal: AbortSignal, recordUsage: (record: UsageRecord) => void): AsyncGenerator<GenerationEvent> {
    const { command, promptTokens } = prepared;
    const tally = { completionTokens: 0 };
    const choices = Array.from({ length: command.n }, (_, index) => this.generateChoice(prepared, index, signal, tally));
    const finishReasons: ChoiceFinishReason[] = [];
    let open = command.n;
    try {
      // One choice (the common case) needs no interleaving.
      for await (const event of choices.length === 1 ? choices[0]! : mergeAsync(choices)) {
        if (event.type !== "end") {
          yield event;
          continue;
        }
        finishReasons[event.index] = event.finishReason;
        open -= 1;
        const end: GenerationEvent = { type: "end", index: event.index, finishReason: event.finishReason };
        // Usage counts the prompt once and sums the choices' completions (OpenAI's accounting for n).
        yield open === 0 ? { ...end, usage: { promptTokens, completionTokens: tally.completionTokens } } : end;
      }
    } finally {
      recordUsage({ promptTokens, completionTokens: tally.completionTokens, completed: open === 0, finishReasons });
    }
  }

  private async *generateChoice(prepared: PreparedChat, index: number, signal: AbortSignal, tally: { completionTokens: number }): AsyncGenerator<ChoiceEvent & { index: number }> {
    const { command, plan } = prepared;
    const output = new ChoiceOutput(plan.reading, command.stop, plan.constraint !== undefined, command.topLogprobs !== undefined);
    let engineReason: "stop" | "length" = "length";
    if (prepared.maxTokens > 0) {
      for await (const event of this.deps.engine.generate(this.toEngineRequest(prepared, index), signal)) {
        if (event.type === "done") {
          engineReason = event.finishReason;
          break;
        }
        tally.completionTokens += event.tokenCount;
        const { events, stopped } = output.accept(event);
        for (const e of events) yield { ...e, index };
        if (stopped) break;
      }
      if (signal.aborted) return;
    }
    for (const e of output.finish(engineReason)) yield { ...e, index };
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
      ...(prepared.plan.constraint ? { constraint: prepared.plan.constraint } : {}),
      ...(prepared.plan.constrainAfter ? { constrainAfter: prepared.plan.constrainAfter } : {}),
      ...(prepared.plan.suppressTokens.length > 0 ? { suppressTokens: prepared.plan.suppressTokens } : {}),
    };
  }
}
