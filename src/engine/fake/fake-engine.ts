/**
 * A scripted, deterministic engine for unit tests of the layers above the engine. It never
 * stands in for real inference in tests that are about inference.
 */
import type { Engine, EngineEvent, EngineModelInfo, GenerationRequest, PromptText, TokenCount, TokenLogprob } from "../engine.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";

export interface FakeEngineOptions {
  /** Token texts generated, in order; generation ends with `stop` after the last one. */
  tokens: readonly string[];
  contextLength?: number;
  /** Counts a prompt's tokens (its literal spans make no difference); default: one per character. */
  countTokens?: (prompt: string) => number;
  /** Sequences it reports it can run at once (`capacity().sequences`); default 1. */
  sequences?: number;
  /** Yield to the event loop (setImmediate) before each token, like a real engine; default true. */
  yieldBetweenTokens?: boolean;
  /** What `modelInfo().addBosToken` reports (the renderer then prepends `<s>`); default false. */
  addBosToken?: boolean;
}

export class FakeEngine implements Engine {
  private ready = false;
  /** Every request the engine was asked to generate, for assertions. */
  readonly requests: GenerationRequest[] = [];
  /** Tokens handed to consumers so far, over all requests. */
  private generatedTokens = 0;
  /** Prompt tokens of every generation started, counted as `countTokens` counts them. */
  private promptTokensEvaluated = 0;

  constructor(private readonly options: FakeEngineOptions) {}

  capacity() {
    return { sequences: this.options.sequences ?? 1, memoryBytes: 0 };
  }

  stats() {
    return { promptTokensEvaluated: this.promptTokensEvaluated, promptTokensReused: 0, generatedTokens: this.generatedTokens, decodeBatches: 0, decodeBatchTokens: 0, decodePaddingRows: 0 };
  }

  async load(): Promise<void> {
    this.ready = true;
  }

  isReady(): boolean {
    return this.ready;
  }

  modelInfo(): EngineModelInfo {
    return {
      contextLength: this.options.contextLength ?? 4096,
      bosToken: "<s>",
      eosToken: "<|endoftext|>",
      addBosToken: this.options.addBosToken ?? false,
      vocabSize: 32064,
    };
  }

  /** Always exact: the fake never refuses by size. */
  async countTokens(prompt: PromptText, _limitTokens: number): Promise<TokenCount> {
    return { tokens: this.count(prompt.prompt), exact: true };
  }

  private count(prompt: string): number {
    return this.options.countTokens ? this.options.countTokens(prompt) : prompt.length;
  }

  async prepareConstraint(): Promise<void> {}

  async *generate(request: GenerationRequest, signal: CancelSignal): AsyncGenerator<EngineEvent> {
    this.requests.push(request);
    if (signal.aborted) return;
    this.promptTokensEvaluated += this.count(request.prompt);
    let produced = 0;
    for (const text of this.options.tokens) {
      if (signal.aborted) return;
      if (this.options.yieldBetweenTokens !== false) await new Promise<void>((resolve) => setImmediate(resolve));
      this.generatedTokens += 1; // counted as it is handed over: a consumer may stop right after it
      yield request.topLogprobs === undefined ? { type: "token", text, tokenCount: 1 } : { type: "token", text, tokenCount: 1, logprobs: [scriptedLogprob(text, request.topLogprobs)] };
      produced += 1;
      if (produced >= request.maxTokens) {
        yield { type: "done", finishReason: "length" };
        return;
      }
    }
    yield { type: "done", finishReason: "stop" };
  }

  async close(): Promise<void> {
    this.ready = false;
  }
}

/** A scripted token is certain: logprob 0, and it is its own only alternative. */
function scriptedLogprob(text: string, top: number): TokenLogprob {
  const alternative = { token: text, logprob: 0, bytes: [...Buffer.from(text, "utf8")] };
  return { ...alternative, topLogprobs: top > 0 ? [alternative] : [] };
}
