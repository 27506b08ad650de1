/**
 * The engine boundary: everything above this file works with rendered prompt text and
 * token events; only engine implementations touch an inference library.
 */

/** Why a generation ended. `stop`: an end-of-generation token or stop string; `length`: max tokens or context. */
export type FinishReason = "stop" | "length";

/** Sampling and limits for one generation. Token counts are exact, from the model's tokenizer. */
export interface GenerationRequest {
  /** The fully rendered prompt (chat template applied); special tokens in it are parsed as such. */
  prompt: string;
  /** Hard cap on generated tokens (already clamped by the caller to the context window). */
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
  presencePenalty: number;
  frequencyPenalty: number;
}

/** One step of a generation as the engine reports it. */
export type EngineEvent =
  /** Text of one or more generated tokens (may be "" when a token completes no character yet). */
  | { type: "token"; text: string; tokenCount: number }
  /** The end: the engine stopped on its own (EOG token) or hit maxTokens. */
  | { type: "done"; finishReason: FinishReason };

/** Static facts about the loaded model. */
export interface EngineModelInfo {
  /** Context window per sequence, in tokens. */
  contextLength: number;
  /** `tokenizer.chat_template` from the model file, when it has one. */
  chatTemplate?: string;
  /** `general.name` from the model file. */
  fileModelName?: string;
  bosToken: string;
  eosToken: string;
}

export interface Engine {
  /** Loads the model and allocates contexts; resolves when ready to serve. */
  load(): Promise<void>;
  isReady(): boolean;
  modelInfo(): EngineModelInfo;
  /** Exact token count of a rendered prompt, as `generate` would evaluate it. */
  countTokens(prompt: string): number;
  /**
   * Generates a completion. Aborting `signal` stops generation within one token step and
   * frees the sequence; the iterator then ends without a `done` event.
   */
  generate(request: GenerationRequest, signal: AbortSignal): AsyncIterable<EngineEvent>;
  close(): Promise<void>;
}
