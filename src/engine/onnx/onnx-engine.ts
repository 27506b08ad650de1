/**
 * Phi-3/3.5-vision over onnxruntime-node (docs/VISION.md "ONNX engine"). A generation runs the
 * vision encoder once per image, the embedding graph once over the whole prompt (image positions
 * filled with the image features), the decoder over the prompt in chunks of `batchSize`
 * positions, then one embedding + decoder run per generated token with the sequence's KV cache.
 * Tokens are chosen in TypeScript (onnx-sampler.ts) with the llama.cpp engine's semantics.
 *
 * The sessions and the KV caches live on the engine's graph thread (onnx-graph-thread.ts), so no
 * graph run holds the event loop; the event loop tokenizes, samples and streams. In the thread every
 * graph run goes through one first-come-first-served queue: generations running side by side take
 * turns step by step. Decode steps of different sequences are not batched into one decoder run
 * (docs/ENGINE-NOTES.md "ONNX engine batching").
 *
 * Large prompts are tokenized on the engine's tokenizer thread (onnx-tokenizer-thread.ts, started on
 * the first one), small ones on the event loop (onnx-tokenizer.ts `INLINE_CHARS`).
 */
import { randomInt } from "node:crypto";
import type { Logger } from "pino";
import type { Engine, EngineCapacity, EngineEvent, EngineModelInfo, EngineStats, GenerationRequest, OutputConstraint, PromptText, TokenCount, TokenLogprob } from "../engine.ts";
import { AppError } from "../../errors/app-error.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";
import { OnnxGraphThread, type GraphSequence, type PrefillTimings } from "./onnx-graph-thread.ts";
import type { OnnxModelFolder } from "./onnx-model-folder.ts";
import { LogitSampler, type Choice } from "./onnx-sampler.ts";
import { TokenTextStream, TokenVocabulary } from "./onnx-token-text.ts";
import { OnnxTokenizer } from "./onnx-tokenizer.ts";
import { OnnxTokenizerThread } from "./onnx-tokenizer-thread.ts";
import { SlotPool } from "./run-queue.ts";

export interface OnnxEngineOptions {
  model: OnnxModelFolder;
  /** Context window per sequence, in tokens. */
  contextSize: number;
  /** Sequences generating at once. */
  parallel: number;
  /** onnxruntime intra-op threads. */
  threads: number;
  /** Prompt positions per decoder run while evaluating a prompt. */
  batchSize: number;
  /** Token texts that end a generation besides the model's EOS ids. */
  extraStopTokens: readonly string[];
  /** Estimated resident bytes (weights + KV caches). */
  memoryBytes: number;
}

interface Loaded {
  /** Runs the graphs and holds the KV caches. */
  graphs: OnnxGraphThread;
  tokenizer: OnnxTokenizer;
  /** Encodes the text of large prompts; started on the first. */
  thread: OnnxTokenizerThread;
  vocabulary: TokenVocabulary;
  info: EngineModelInfo;
  stopTokenIds: ReadonlySet<number>;
}

export class OnnxEngine implements Engine {
  private loaded: Loaded | undefined;
  private readonly slots: SlotPool;
  private readonly counters: EngineStats = { promptTokensEvaluated: 0, promptTokensReused: 0, generatedTokens: 0, decodeBatches: 0, decodeBatchTokens: 0, decodePaddingRows: 0 };

  constructor(
    private readonly options: OnnxEngineOptions,
    private readonly logger: Logger,
  ) {
    this.slots = new SlotPool(options.parallel);
  }

  async load(): Promise<void> {
    const { model } = this.options;
    const { contextSize, threads, batchSize } = this.options;
    const spec = { graphs: model.graphs, numKeyValueHeads: model.numKeyValueHeads, headSize: model.headSize, hiddenSize: model.hiddenSize };
    // The thread loads the graphs while the event loop builds the tokenizer.
    const graphs = new OnnxGraphThread({ model: spec, threads, contextSize, batchSize }, (error) => this.died(graphs, error));
    let tokenizer: OnnxTokenizer;
    let facts: Awaited<ReturnType<OnnxGraphThread["ready"]>>;
    try {
      tokenizer = new OnnxTokenizer(model.tokenizerJson, model.tokenizerConfig);
      facts = await graphs.ready();
    } catch (error) {
      await graphs.close();
      throw error;
    }
    const vocabSize = facts.logitsSize ?? model.vocabSize ?? tokenizer.full.get_vocab(true).size;
    const stopTokenIds = new Set(model.eosTokenIds);
    for (const text of this.options.extraStopTokens) {
      const id = tokenizer.tokenId(text);
      if (id !== undefined) stopTokenIds.add(id);
    }
    const config = model.tokenizerConfig;
    this.loaded = {
      graphs,
      tokenizer,
      thread: new OnnxTokenizerThread({ tokenizerJson: model.tokenizerJson, tokenizerConfig: model.tokenizerConfig }),
      vocabulary: new TokenVocabulary(tokenizer),
      stopTokenIds,
      info: {
        contextLength: this.options.contextSize,
        bosToken: tokenText(config.bos_token) ?? "<s>",
        eosToken: tokenText(config.eos_token) ?? tokenizer.full.id_to_token(model.eosTokenIds[0] ?? -1) ?? "",
        // LlamaTokenizer (Phi-3's tokenizer_class) adds BOS unless the config says otherwise.
        addBosToken: typeof config.add_bos_token === "boolean" ? config.add_bos_token : String(config.tokenizer_class ?? "").startsWith("Llama"),
        vocabSize,
      },
    };
    this.logger.info({ event: "engine.loaded", layout: model.layout, threads, contextSize, parallel: this.options.parallel, layers: facts.layers }, "ONNX model loaded");
  }

  capacity(): EngineCapacity {
    return { sequences: this.options.parallel, memoryBytes: this.options.memoryBytes };
  }

  stats(): EngineStats {
    return { ...this.counters };
  }

  isReady(): boolean {
    return this.loaded !== undefined;
  }

  modelInfo(): EngineModelInfo {
    return this.require().info;
  }

  async countTokens(prompt: PromptText, limitTokens: number): Promise<TokenCount> {
    const loaded = this.require();
    return this.unlessClosed(loaded.tokenizer.countAsync(prompt, limitTokens, loaded.thread.encodeRuns));
  }

  async prepareConstraint(_constraint: OutputConstraint): Promise<void> {
    throw constraintUnsupported();
  }

  async *generate(request: GenerationRequest, signal: CancelSignal): AsyncGenerator<EngineEvent> {
    const loaded = this.require();
    if (request.constraint || request.constrainAfter) throw constraintUnsupported();
    if (signal.aborted) return;
    const ids = await this.unlessClosed(loaded.tokenizer.encodeAsync(request, loaded.thread.encodeRuns));
    if (signal.aborted) return;
    if (ids.length >= this.options.contextSize) {
      throw new AppError("CONTEXT_LENGTH_EXCEEDED", `The prompt has ${ids.length} tokens; this deployment's context window is ${this.options.contextSize}.`, { param: "messages" });
    }
    if (!(await this.slots.acquire(signal))) return;
    try {
      yield* this.run(loaded, request, ids, signal);
    } finally {
      this.slots.release();
    }
  }

  private async *run(loaded: Loaded, request: GenerationRequest, ids: number[], signal: CancelSignal): AsyncGenerator<EngineEvent> {
    const { graphs } = loaded;
    const seq = graphs.open(loaded.info.vocabSize);
    try {
      // Images in prompt order (the embedding graph fills the negative positions in order).
      const images = imagesInPromptOrder(ids).map((image) => request.images![image]!);
      const timings = await graphs.prefill(seq, ids, images, signal);
      if (!timings) return;
      this.counters.promptTokensEvaluated += ids.length;
      this.logger.debug({ event: "engine.prefill", tokens: ids.length, images: images.length, ...roundedMs(timings) }, "prompt evaluated");
      yield* this.decode(loaded, request, seq, ids.length, signal);
    } finally {
      graphs.free(seq);
    }
  }

  /** Samples from the sequence's logits, streams each token and evaluates it, until a stop, `maxTokens` or the context's end. */
  private async *decode(loaded: Loaded, request: GenerationRequest, seq: GraphSequence, promptTokens: number, signal: CancelSignal): AsyncGenerator<EngineEvent> {
    const sampler = new LogitSampler({
      vocabSize: loaded.info.vocabSize,
      temperature: request.temperature,
      topP: request.topP,
      presencePenalty: request.presencePenalty,
      frequencyPenalty: request.frequencyPenalty,
      bias: requestBias(loaded.tokenizer, request),
      topLogprobs: request.topLogprobs,
      // A random seed keeps unseeded requests independent; a given one is taken as a uint32 (as the llama.cpp engine does).
      seed: request.seed === undefined ? randomInt(2 ** 31) : Number(BigInt.asUintN(32, BigInt(Math.trunc(request.seed)))),
    });
    const text = new TokenTextStream(loaded.vocabulary);
    let positions = promptTokens;
    let generated = 0;
    for (;;) {
      const choice = sampler.choose(seq.logits);
      if (choice.token < 0 || loaded.stopTokenIds.has(choice.token)) {
        yield { type: "done", finishReason: "stop" };
        return;
      }
      sampler.accept(choice.token);
      generated++;
      this.counters.generatedTokens++;
      // The next step would need one more position than the context holds: this token is the last.
      const isLast = generated >= request.maxTokens || positions + 1 >= this.options.contextSize;
      // The thread evaluates the token while the caller streams it (the logits were read: the buffer is free).
      const next = isLast ? undefined : loaded.graphs.step(seq, choice.token, signal);
      next?.catch(() => undefined); // awaited below, unless the caller stops iterating first
      const piece = text.push(choice.token, isLast);
      yield request.topLogprobs === undefined
        ? { type: "token", text: piece, tokenCount: 1 }
        : { type: "token", text: piece, tokenCount: 1, logprobs: [this.logprobOf(loaded, choice)] };
      if (!next) {
        yield { type: "done", finishReason: "length" };
        return;
      }
      if (!(await next)) return;
      positions++;
      this.counters.decodeBatches++;
      this.counters.decodeBatchTokens++;
    }
  }

  private logprobOf(loaded: Loaded, choice: Choice): TokenLogprob {
    return {
      ...loaded.vocabulary.describe(choice.token, choice.logprob),
      topLogprobs: choice.top.map(([id, logprob]) => loaded.vocabulary.describe(id, logprob)),
    };
  }

  async close(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = undefined;
    if (!loaded) return;
    // Generations waiting on the graph thread fail with ENGINE_UNAVAILABLE; the run in progress finishes first.
    await Promise.all([loaded.graphs.close(), loaded.thread.close()]);
  }

  /** The graph thread stopped on its own: the engine is not ready until loaded again (the next request does). */
  private died(graphs: OnnxGraphThread, error: Error): void {
    const loaded = this.loaded;
    if (loaded?.graphs !== graphs) return;
    this.loaded = undefined;
    this.logger.error({ event: "engine.failed", error: error.message }, "the ONNX Runtime thread stopped; the model will be loaded again on the next request");
    void loaded.thread.close();
  }

  /** A tokenization cut short by close() fails as any call on a closed engine does. */
  private async unlessClosed<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      this.require();
      throw error;
    }
  }

  private require(): Loaded {
    if (!this.loaded) throw new AppError("ENGINE_UNAVAILABLE", "The model is not loaded.", { retryAfterSeconds: 5 });
    return this.loaded;
  }
}

function constraintUnsupported(): AppError {
  return new AppError("INVALID_REQUEST", "JSON output (response_format) is not supported by the ONNX vision engine", { param: "response_format" });
}

/** `logit_bias` (−100 or less bans) plus a ban on each suppressed token text that is one token. */
function requestBias(tokenizer: OnnxTokenizer, request: GenerationRequest): Map<number, number> {
  const bias = new Map<number, number>();
  for (const [id, value] of request.logitBias ?? []) bias.set(id, value <= -100 ? -Infinity : value);
  for (const text of request.suppressTokens ?? []) {
    const id = tokenizer.tokenId(text);
    if (id !== undefined) bias.set(id, -Infinity);
  }
  return bias;
}

/** Image indices (N − 1) in the order their positions (−N) first appear. */
function imagesInPromptOrder(ids: readonly number[]): number[] {
  const order: number[] = [];
  let last = 0;
  for (const id of ids) {
    if (id < 0 && id !== last && !order.includes(-id - 1)) order.push(-id - 1);
    last = id;
  }
  return order;
}

function roundedMs(timings: PrefillTimings): Record<string, number> {
  return Object.fromEntries(Object.entries(timings).map(([name, ms]) => [name, Math.round(ms * 10) / 10]));
}

/** A special token's text in tokenizer_config.json: a string or `{ content }`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") return (value as { content: string }).content;
  return undefined;
}
