/**
 * The engine boundary: everything above this file works with rendered prompt text and
 * token events; only engine implementations touch an inference library.
 */
import type { CancelSignal } from "../lib/cancellation.ts";

/** Why a generation ended. `stop`: an end-of-generation token or stop string; `length`: max tokens or context. */
export type FinishReason = "stop" | "length";

/** A half-open range [start, end) of UTF-16 offsets into a prompt. */
export interface TextSpan {
  start: number;
  end: number;
}

/**
 * A rendered prompt as the engine evaluates it. Special-token text (`<|end|>`, `<|assistant|>`) is
 * parsed into control tokens only outside `literalSpans`: the template's own markers are control
 * tokens, while message contents are plain text, so a user cannot close their turn and forge another
 * (docs/ENGINE-NOTES.md "Special tokens in message content").
 */
export interface PromptText {
  /** The fully rendered prompt (chat template applied). */
  prompt: string;
  /** Sorted, non-overlapping spans of `prompt` tokenized as plain text (message contents); none: special tokens are parsed everywhere. */
  literalSpans?: readonly TextSpan[] | undefined;
  /**
   * Images for a vision engine: `<|image_N|>` in the prompt's template text (outside `literalSpans`)
   * stands for `images[N − 1]`, which takes `tokens` positions (docs/VISION.md "Prompt format").
   * Engines without vision refuse a prompt that carries images.
   */
  images?: readonly EngineImage[] | undefined;
}

/**
 * One image, preprocessed for the Phi-3/3.5-vision encoder (docs/VISION.md "Preprocessing"): the
 * global 336×336 view and the HD image's 336×336 tiles, CLIP-normalised, zero-padded to `crops`.
 */
export interface EngineImage {
  /** Row-major `[crops, 3, 336, 336]` float32 (`pixel_values` of one image). */
  pixelValues: Float32Array;
  /** 1 + num_crops: the crop dimension of `pixelValues`. */
  crops: number;
  /** `[height, width]` of the padded HD image (multiples of 336): the encoder's `image_sizes` row. */
  imageSize: readonly [number, number];
  /** Prompt positions the image takes (the token formula; the encoder emits exactly this many feature rows). */
  tokens: number;
}

/** A prompt's size in tokens: exact, or (when its size alone shows it cannot fit the limit asked about) a lower bound. */
export interface TokenCount {
  tokens: number;
  /** False: the prompt has at least `tokens` tokens, more than the limit; it was not tokenized. */
  exact: boolean;
}

/**
 * One chat turn as the deployment planned it (system-role rule and tool rendering applied), for an
 * engine that renders the prompt on the far side: a remote upstream takes chat messages, not a
 * rendered prompt (docs/ARCHITECTURE.md "Remote engines").
 */
export interface ChatTurn {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
}

/** Sampling and limits for one generation. Token counts are exact, from the model's tokenizer. */
export interface GenerationRequest extends PromptText {
  /**
   * The turns `prompt` was rendered from. Local engines evaluate `prompt` and ignore them; a remote
   * engine sends them (its upstream applies the same chat template) and never sees `prompt` leave the process.
   */
  messages?: readonly ChatTurn[] | undefined;
  /** The ticket `expectGeneration` gave when this request arrived: the engine carries it on (and leaves it). */
  arrival?: ArrivalTicket | undefined;
  /** Hard cap on generated tokens (already clamped by the caller to the context window). */
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number | undefined;
  presencePenalty: number;
  frequencyPenalty: number;
  /** OpenAI `logit_bias`: token id → bias added to its logit (−100 bans the token outright). */
  logitBias?: ReadonlyMap<number, number> | undefined;
  /** When set, report logprobs with this many top alternatives (0–20) for every generated token. */
  topLogprobs?: number | undefined;
  /** Constrained decoding: the output must match this. */
  constraint?: OutputConstraint | undefined;
  /**
   * Free generation until the model emits `token` (e.g. Phi-4-mini's `<|tool_call|>`), then the
   * rest must match `constraint`. The engine reports the switch with a `constrained` event.
   */
  constrainAfter?: { token: string; constraint: OutputConstraint } | undefined;
  /** Token texts that must never be generated (e.g. `<|tool_call|>` when tool_choice is "none"). */
  suppressTokens?: readonly string[] | undefined;
}

/** What constrained decoding enforces. `json_schema` schemas must use the supported subset (docs/DECODING.md). */
export type OutputConstraint = { type: "json" } | { type: "json_schema"; schema: Record<string, unknown> };

/** One alternative in a logprobs list (OpenAI shape, camelCase). */
export interface TokenAlternative {
  token: string;
  logprob: number;
  /** UTF-8 bytes of the token (a byte-fallback token gives its single byte). */
  bytes: number[];
}

/** The logprob of one generated token and its top alternatives, sorted by logprob, highest first. */
export interface TokenLogprob extends TokenAlternative {
  topLogprobs: TokenAlternative[];
}

/** One step of a generation as the engine reports it. */
export type EngineEvent =
  /** Text of one or more generated tokens (may be "" when a token completes no character yet). */
  | { type: "token"; text: string; tokenCount: number; logprobs?: TokenLogprob[] }
  /** The `constrainAfter` token was generated: what follows obeys its constraint. */
  | { type: "constrained"; tokenCount: number }
  /** The end: the engine stopped on its own (EOG token, or the constrained JSON closed) or hit maxTokens. */
  | {
      type: "done";
      finishReason: FinishReason;
      /**
       * The prompt tokens the engine itself billed, when it rendered and counted the prompt on its own (a
       * remote upstream's `usage.prompt_tokens`): usage and quota reconcile to it. Absent: the count of
       * `countTokens` stands.
       */
      promptTokens?: number | undefined;
    };

/** Static facts about the loaded model. */
export interface EngineModelInfo {
  /** Context window per sequence, in tokens. */
  contextLength: number;
  bosToken: string;
  eosToken: string;
  /**
   * Whether the model's prompts start with BOS (GGUF `tokenizer.ggml.add_bos_token`; when absent,
   * llama.cpp's default: true for SPM "llama" vocabularies, false for BPE "gpt2" ones). Engines
   * never add it themselves: the prompt is evaluated exactly as rendered, so the renderer prepends
   * `bosToken` when this is true and the template has not already (docs/ENGINE-NOTES.md
   * "Tokenization and BOS").
   */
  addBosToken: boolean;
  /** Number of token ids (valid `logit_bias` keys are 0 … vocabSize − 1). */
  vocabSize: number;
}

/** Running totals since start, for metrics and tests (prefix reuse is asserted through these). */
export interface EngineStats {
  /** Prompt tokens actually evaluated. */
  promptTokensEvaluated: number;
  /** Prompt tokens skipped because the sequence already held them (shared prefix). */
  promptTokensReused: number;
  generatedTokens: number;
  /** Evaluation batches that carried decode tokens (one per generating sequence and step). */
  decodeBatches: number;
  /** Decode tokens those batches carried: divided by `decodeBatches`, how many streams shared a batch. */
  decodeBatchTokens: number;
  /**
   * Rows of idle sequences added to decode batches to fill a block of four (CPU only, not counted in
   * `decodeBatchTokens`: docs/ENGINE-NOTES.md "Decode rows in blocks of four"); 0 for engines that do not pad.
   */
  decodePaddingRows: number;
}

/** What an engine can run at once and holds in memory, known before it loads (for admission and memory budgets). */
export interface EngineCapacity {
  /** Sequences that generate at once (a request takes one per choice). */
  sequences: number;
  /** Estimated resident memory once loaded (weights + caches), in bytes; 0 when it lives elsewhere. */
  memoryBytes: number;
}

/**
 * A generation on its way to an engine (the request is being rendered, measured, checked): see
 * `Engine.expectGeneration`.
 */
export interface ArrivalTicket {
  /** Waiting for something that does not concern the engine (the scheduler's queue): not on its way meanwhile. */
  idle(): void;
  resume(): void;
  /** Reached `generate`, or dropped; idempotent. */
  leave(): void;
}

export interface Engine {
  capacity(): EngineCapacity;
  stats(): EngineStats;
  /** Loads the model and allocates contexts; resolves when ready to serve. */
  load(): Promise<void>;
  isReady(): boolean;
  modelInfo(): EngineModelInfo;
  /**
   * The prompt's exact token count, as `generate` evaluates it, without holding the event loop
   * (large prompts are tokenized on another thread). When the prompt's size alone shows it has more
   * than `limitTokens` tokens it is not tokenized at all, and the count is that lower bound with
   * `exact: false`. A prompt within the limit may be kept tokenized for the `generate` that follows;
   * one over it leaves nothing behind.
   */
  countTokens(prompt: PromptText, limitTokens: number): Promise<TokenCount>;
  /**
   * Prepares constrained decoding ahead of the first streamed byte (compiles and caches the
   * grammar); throws an INVALID_REQUEST AppError when the constraint cannot be enforced.
   */
  prepareConstraint(constraint: OutputConstraint): Promise<void>;
  /**
   * Generates a completion. Aborting `signal` stops generation within one token step and
   * frees the sequence; the iterator then ends without a `done` event.
   */
  generate(request: GenerationRequest, signal: CancelSignal): AsyncIterable<EngineEvent>;
  /**
   * Optional: a request for `generate` has arrived and is being prepared. An engine that batches may
   * hold a prompt that is ready for a moment while others are on their way, so prompts that arrive
   * together are evaluated together (docs/ENGINE-NOTES.md "Prompts that arrive together").
   */
  expectGeneration?(): ArrivalTicket;
  close(): Promise<void>;
}
