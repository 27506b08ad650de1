/**
 * GGUF text models through node-llama-cpp (the only importer of it, with its siblings here).
 * One model, one context with `parallel` sequences that llama.cpp evaluates together in shared
 * batches. Two decoding paths share the same sampling options:
 * - the fast path, `sequence.evaluate()`: native sampling, grammar-constrained when asked;
 * - the logprobs path, `sequence.controlledEvaluate()` one token at a time: the raw distribution
 *   (after logit_bias and penalties, before temperature and truncation) is read every step and,
 *   above temperature 0, the token is drawn here with a seeded sampler.
 * Both take part in the decode gate (decode-gate.ts): the decoding sequences are stepped together,
 * one token each per batch, in sequence order, so llama.cpp evaluates them in one pass.
 */
import { availableParallelism } from "node:os";
import { statSync } from "node:fs";
import { randomInt } from "node:crypto";
import {
  getLlama,
  LlamaGrammarEvaluationState,
  TokenBias,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { Logger } from "pino";
import type { Engine, EngineEvent, EngineModelInfo, EngineStats, GenerationRequest, OutputConstraint, TokenLogprob } from "../engine.ts";
import { AppError } from "../../errors/app-error.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";
import { SequencePool } from "./sequence-pool.ts";
import { DecodeGate, decodeFirstStrategy, type DecodeGateStats, type DecodeSlot } from "./decode-gate.ts";
import { createJsonGrammar } from "./json-grammar.ts";
import { TokenDescriber, TokenTextDecoder } from "./token-text.ts";
import { logSumExp, sampleToken, SeededRandom, toLogprob } from "../sampling.ts";

export type GpuChoice = "auto" | "cpu" | "cuda" | "vulkan" | "metal";

export interface LlamaCppEngineOptions {
  modelPath: string;
  /** Context window per sequence, in tokens. */
  contextSize: number;
  /** Sequences generating at once. */
  parallel: number;
  /** CPU threads for evaluation; default chosen by model size (see `defaultThreads`). */
  threads?: number | undefined;
  /**
   * Tokens per evaluation batch (all sequences together). A long prompt is evaluated in chunks of
   * at most this size, and every batch also carries the next token of each decoding sequence, so a
   * long prompt does not stall the streams.
   */
  batchSize: number;
  /**
   * Most decode tokens (one per generating sequence) in one evaluation batch; 0 = every decoding
   * sequence together. Decoding sequences are stepped in groups (see decode-gate.ts); a group larger
   * than this is evaluated as several batches back to back.
   */
  decodeBatch?: number | undefined;
  gpu: GpuChoice;
  /** Token texts that end a generation besides the model's own end-of-generation tokens (e.g. "<|assistant|>"). */
  extraStopTokens: readonly string[];
}

/**
 * Measured on 2-core machines (shared/spec/engine-notes.md): tiny models run ~150x faster on one
 * thread than on two (the ggml thread pool spins against Node's thread); models of real size
 * need every core.
 */
export function defaultThreads(modelBytes: number): number {
  return modelBytes < 256 * 1024 * 1024 ? 1 : Math.max(1, availableParallelism());
}

/** How the decode steps were batched since start (for tests, benchmarks and diagnostics). */
export interface DecodeBatchingStats extends DecodeGateStats {
  /** Native batches by the number of decode tokens they carried (batches of prompt tokens only are under 0). */
  decodeBatchSizes: Record<number, number>;
  /** Native batches that carried prompt tokens. */
  promptBatches: number;
  /**
   * Batches that could not be put in sequence order (node-llama-cpp's queue did not match its
   * items: only after a library upgrade). Should stay 0.
   */
  unorderedBatches: number;
}

/** Sampler settings that leave the distribution untouched (no truncation, no temperature). */
const RAW_DISTRIBUTION = { temperature: 0, topK: 0, topP: 1, minP: 0 } as const;

interface Loaded {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  pool: SequencePool<LlamaContextSequence>;
  /** Each sequence's place in creation order (= its sequence id in the context). */
  sequenceOrder: Map<LlamaContextSequence, number>;
  stopTokenIds: Set<Token>;
  describer: TokenDescriber;
  info: EngineModelInfo;
}

/** What the strategy needs of node-llama-cpp's queued decode (internal, pinned version). */
interface QueuedDecode {
  sequenceId: number;
  tokens: readonly Token[];
}

/** Everything one generation needs besides the sequence. */
interface Run {
  request: GenerationRequest;
  signal: CancelSignal;
  promptTokens: Token[];
  /** The part of the prompt the sequence does not hold yet: what is evaluated. */
  inputTokens: Token[];
  seed: number;
  tokenBias: TokenBias | undefined;
  decoder: TokenTextDecoder;
}

export class LlamaCppEngine implements Engine {
  private loaded: Loaded | undefined;
  private readonly counters = { promptTokensEvaluated: 0, promptTokensReused: 0, generatedTokens: 0 };
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  /**
   * KV-cache edits (erasing a sequence's stale tokens) need node-llama-cpp's context lock, which
   * its batch loop holds for as long as any sequence keeps queueing decodes: under continuous
   * load an edit would wait until every stream ends. So an edit is announced here, and generating
   * sequences hold their next step until it is done: the batch loop drains after the current
   * batch, the edit runs, and decoding resumes, costing the streams one step of delay, as a
   * llama-server slot update between batches does.
   */
  private maintenance: Promise<unknown> = Promise.resolve();
  private maintenancePending = 0;
  private readonly recentTokenizations = new Map<string, Token[]>();
  private readonly gate = new DecodeGate();
  private readonly decodeBatchSizes: Record<number, number> = {};
  private promptBatches = 0;
  private unorderedBatches = 0;

  constructor(
    private readonly options: LlamaCppEngineOptions,
    private readonly logger: Logger,
  ) {}

  async load(): Promise<void> {
    const { options, logger } = this;
    const llama = await getLlama({ gpu: options.gpu === "cpu" ? false : options.gpu, build: "never", logger: (level, message) => this.logLlama(level, message) });
    const model = await llama.loadModel({ modelPath: options.modelPath });
    const threads = options.threads ?? defaultThreads(statSync(options.modelPath).size);
    let queue: (() => readonly QueuedDecode[] | undefined) | undefined;
    const context = await model.createContext({
      contextSize: options.contextSize,
      sequences: options.parallel,
      threads,
      batchSize: Math.min(options.batchSize, options.contextSize),
      batching: {
        itemPrioritizationStrategy: decodeFirstStrategy(
          options.decodeBatch ?? 0,
          (decode, prompt, ordered) => {
            this.decodeBatchSizes[decode] = (this.decodeBatchSizes[decode] ?? 0) + 1;
            if (prompt > 0) this.promptBatches += 1;
            if (!ordered) this.unorderedBatches += 1;
          },
          // The strategy's items are built from the context's queue, in its order (node-llama-cpp 3.22.1).
          (item, index) => {
            const queued = queue?.()?.[index];
            return queued?.tokens === item.tokens ? queued.sequenceId : undefined;
          },
        ),
      },
    });
    queue = () => (context as unknown as { _queuedDecodes?: readonly QueuedDecode[] })._queuedDecodes;
    // Created in order, so their ids in the context are 0, 1, 2, … (the order kept here).
    const sequences = Array.from({ length: options.parallel }, () => context.getSequence());
    const sequenceOrder = new Map(sequences.map((sequence, index) => [sequence, index]));
    const pool = new SequencePool(sequences);
    const metadata = model.fileInfo.metadata as unknown as { general?: { name?: string }; tokenizer?: { chat_template?: string; ggml?: { model?: string; tokens?: string[] } } };
    const vocab = metadata.tokenizer?.ggml?.tokens ?? [];
    const special = (token: Token | null): string => (token === null ? "" : model.detokenize([token], true));
    const info: EngineModelInfo = {
      contextLength: context.contextSize,
      ...(metadata.tokenizer?.chat_template ? { chatTemplate: metadata.tokenizer.chat_template } : {}),
      ...(metadata.general?.name ? { fileModelName: metadata.general.name } : {}),
      bosToken: special(model.tokens.bos),
      eosToken: special(model.tokens.eos),
      vocabSize: vocab.length,
    };
    const stopTokenIds = new Set(options.extraStopTokens.flatMap((text) => {
      const tokens = model.tokenize(text, true);
      return tokens.length === 1 ? tokens : [];
    }));
    this.loaded = { llama, model, context, pool, sequenceOrder, stopTokenIds, describer: new TokenDescriber(vocab, metadata.tokenizer?.ggml?.model ?? "llama"), info };
    logger.info({ event: "engine.loaded", gpu: llama.gpu, threads, contextSize: info.contextLength, parallel: options.parallel, decodeBatch: options.decodeBatch ?? 0 }, "model loaded");
  }

  isReady(): boolean {
    return this.loaded !== undefined;
  }

  stats(): EngineStats {
    let decodeBatches = 0;
    let decodeBatchTokens = 0;
    for (const [size, count] of Object.entries(this.decodeBatchSizes)) {
      if (Number(size) === 0) continue; // batches of prompt tokens only
      decodeBatches += count;
      decodeBatchTokens += Number(size) * count;
    }
    return { ...this.counters, decodeBatches, decodeBatchTokens };
  }

  batchingStats(): DecodeBatchingStats {
    return { ...this.gate.stats, decodeBatchSizes: { ...this.decodeBatchSizes }, promptBatches: this.promptBatches, unorderedBatches: this.unorderedBatches };
  }

  modelInfo(): EngineModelInfo {
    return this.require().info;
  }

  countTokens(prompt: string): number {
    return this.tokenize(this.require(), prompt).length;
  }

  /** Tokenizes with a small cache: a request's prompt is counted at admission and evaluated moments later. */
  private tokenize(loaded: Loaded, prompt: string): Token[] {
    const cached = this.recentTokenizations.get(prompt);
    if (cached) return cached;
    const tokens = loaded.model.tokenize(prompt, true);
    if (this.recentTokenizations.size >= 32) this.recentTokenizations.delete(this.recentTokenizations.keys().next().value!);
    this.recentTokenizations.set(prompt, tokens);
    return tokens;
  }

  async prepareConstraint(constraint: OutputConstraint): Promise<void> {
    try {
      await this.grammarFor(this.require(), constraint);
    } catch (error) {
      throw new AppError("INVALID_REQUEST", `The JSON schema cannot be enforced: ${error instanceof Error ? error.message : String(error)}`, {
        param: "response_format",
        details: [{ type: "value_error", loc: ["body", "response_format"], msg: "schema not enforceable by constrained decoding" }],
        cause: error,
      });
    }
  }

  async *generate(request: GenerationRequest, signal: CancelSignal): AsyncGenerator<EngineEvent> {
    const loaded = this.require();
    const grammar = request.constraint ? await this.grammarFor(loaded, request.constraint) : undefined;
    const promptTokens = this.tokenize(loaded, request.prompt);
    // The longest cached prefix first; among equals the lowest sequence id, which keeps the decoding
    // sequences' ids consecutive (one micro-batch per decode step: see decodeFirstStrategy).
    const tieBreak = 1 / (this.options.parallel + 1);
    const sequence = await loaded.pool.acquire(signal, (candidate) => commonPrefixLength(candidate.contextTokens, promptTokens) + (this.options.parallel - loaded.sequenceOrder.get(candidate)!) * tieBreak);
    try {
      const inputTokens = await this.reusePrefix(sequence, promptTokens);
      const run: Run = {
        request,
        signal,
        promptTokens,
        inputTokens,
        // node-llama-cpp would default to the current second; a random seed keeps unseeded requests independent.
        seed: request.seed === undefined ? randomInt(2 ** 31) : Number(BigInt.asUintN(32, BigInt(Math.trunc(request.seed)))),
        tokenBias: createTokenBias(loaded.model, withSuppressed(loaded.model, request)),
        decoder: new TokenTextDecoder(loaded.model, promptTokens),
      };
      try {
        if (request.topLogprobs === undefined) yield* this.generateFast(loaded, sequence, run, grammar);
        else yield* this.generateWithLogprobs(loaded, sequence, run);
      } finally {
        this.counters.generatedTokens += run.decoder.tokens.length;
      }
    } finally {
      loaded.pool.release(sequence);
    }
  }

  /**
   * Keeps the tokens the sequence already holds that match the start of the new prompt (same
   * system prompt, a continued conversation) and erases the rest; returns what is left to
   * evaluate. At least the last prompt token is always evaluated, for its logits.
   */
  private async reusePrefix(sequence: LlamaContextSequence, promptTokens: Token[]): Promise<Token[]> {
    const keep = Math.min(commonPrefixLength(sequence.contextTokens, promptTokens), promptTokens.length - 1);
    if (keep < sequence.nextTokenIndex) await this.maintain(() => sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]));
    this.counters.promptTokensReused += keep;
    this.counters.promptTokensEvaluated += promptTokens.length - keep;
    return promptTokens.slice(keep);
  }

  private async maintain<T>(edit: () => Promise<T>): Promise<T> {
    this.maintenancePending += 1;
    const result = this.maintenance.then(edit);
    this.maintenance = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      this.maintenancePending -= 1;
    }
  }

  /** Called by generating sequences before each step: waits while a KV-cache edit is pending. */
  private async yieldToMaintenance(): Promise<void> {
    while (this.maintenancePending > 0) await this.maintenance;
  }

  async close(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = undefined;
    if (!loaded) return;
    this.logger.info({ event: "engine.batching", ...this.batchingStats() }, "decode batching since load");
    await loaded.context.dispose();
    await loaded.model.dispose();
    await loaded.llama.dispose();
  }

  /**
   * Native sampling. Runs in up to two phases: free (or constrained) generation, then, when the
   * `constrainAfter` token appears, a constrained continuation on the same sequence.
   */
  private async *generateFast(loaded: Loaded, sequence: LlamaContextSequence, run: Run, grammar: LlamaGrammar | undefined): AsyncGenerator<EngineEvent> {
    const { request, decoder } = run;
    const trigger = request.constrainAfter ? singleToken(loaded.model, request.constrainAfter.token) : undefined;
    let input: Token[] = run.inputTokens;
    let active = grammar;
    let json = grammar ? new JsonCloseDetector() : undefined;
    for (;;) {
      let switchTo: Token | undefined;
      const evaluation = sequence.evaluate(input, {
        temperature: request.temperature,
        topP: request.topP,
        topK: 0,
        minP: 0,
        seed: run.seed,
        ...(run.tokenBias ? { tokenBias: run.tokenBias } : {}),
        repeatPenalty: repeatPenalty(request, decoder),
        ...(active ? { grammarEvaluationState: new LlamaGrammarEvaluationState({ model: loaded.model, grammar: active }) } : {}),
      });
      for await (const token of this.steps(evaluation)) {
        if (run.signal.aborted) return;
        if (loaded.stopTokenIds.has(token)) break;
        if (!active && trigger !== undefined && token === trigger) {
          switchTo = token;
          break;
        }
        const isLast = decoder.tokens.length + 1 >= request.maxTokens;
        const text = decoder.push(token, isLast);
        yield { type: "token", text, tokenCount: 1 };
        if (json?.push(text)) break; // the constrained JSON closed: done, whatever padding the grammar allows
        if (isLast) {
          yield { type: "done", finishReason: "length" };
          return;
        }
      }
      if (switchTo === undefined || !request.constrainAfter) break;
      // The trigger token counts as generated; it is evaluated as the first input of the constrained phase.
      decoder.skip(switchTo);
      yield { type: "constrained", tokenCount: 1 };
      if (decoder.tokens.length >= request.maxTokens) {
        yield { type: "done", finishReason: "length" };
        return;
      }
      active = await this.grammarFor(loaded, request.constrainAfter.constraint);
      json = new JsonCloseDetector();
      input = [switchTo];
    }
    if (!run.signal.aborted) yield { type: "done", finishReason: "stop" };
  }

  private async *generateWithLogprobs(loaded: Loaded, sequence: LlamaContextSequence, run: Run): AsyncGenerator<EngineEvent> {
    const { request, decoder } = run;
    const top = request.topLogprobs ?? 0;
    const greedy = request.temperature <= 0;
    const random = new SeededRandom(run.seed);
    let input: Token[] = run.inputTokens;
    // Joins the decode gate after the prompt step, as the fast path does (see steps()).
    let slot: DecodeSlot | undefined;
    try {
      while (!run.signal.aborted) {
        const last = input[input.length - 1]!;
        const results = await this.step(slot, () => sequence.controlledEvaluate([
          ...input.slice(0, -1),
          [last, { generateNext: {
            token: greedy,
            // Greedy: the native pick plus the top list and the normaliser; sampling needs every logit.
            logits: greedy ? { filter: { tokens: [], includeTop: Math.max(1, top), includeSelected: true } } : true,
            totalLogitWeight: true,
            options: { ...RAW_DISTRIBUTION, ...(run.tokenBias ? { tokenBias: run.tokenBias } : {}), repeatPenalty: repeatPenalty(request, decoder) },
          } }],
        ]));
        slot ??= this.gate.join();
        const next = results[results.length - 1]?.next;
        const logits = next?.logits;
        if (!next || !logits || logits.size === 0) break;
        const stats = greedy ? { max: logits.values().next().value!, logSum: Math.log(next.totalLogitWeight ?? 1) } : logSumExp([...logits.values()]);
        const token = greedy ? next.token : (sampleToken([...logits.entries()], request.temperature, request.topP, random) as Token);
        if (token === null || token === undefined || loaded.model.isEogToken(token) || loaded.stopTokenIds.has(token)) break;
        const logprob = toLogprob(logits.get(token) ?? -Infinity, stats);
        const entry: TokenLogprob = {
          ...loaded.describer.describe(token, logprob),
          topLogprobs: topEntries(logits, top).map(([t, l]) => loaded.describer.describe(t, toLogprob(l, stats))),
        };
        const isLast = decoder.tokens.length + 1 >= request.maxTokens;
        yield { type: "token", text: decoder.push(token, isLast), tokenCount: 1, logprobs: [entry] };
        if (isLast) {
          yield { type: "done", finishReason: "length" };
          return;
        }
        input = [token];
      }
    } finally {
      slot?.leave();
    }
    if (!run.signal.aborted) yield { type: "done", finishReason: "stop" };
  }

  /**
   * Iterates an evaluation. The first step evaluates the input (the prompt); after it the sequence
   * is decoding and takes part in the decode gate, which steps decoding sequences in groups. Each
   * step is also held while a KV-cache edit is pending.
   */
  private async *steps(evaluation: AsyncGenerator<Token, void, void | Token | Token[]>): AsyncGenerator<Token> {
    let slot: DecodeSlot | undefined;
    try {
      for (;;) {
        const step = await this.step(slot, () => evaluation.next());
        if (step.done) return;
        slot ??= this.gate.join();
        yield step.value;
      }
    } finally {
      slot?.leave();
      await evaluation.return();
    }
  }

  /**
   * One evaluation step: waits for the decode gate when the sequence is decoding (`slot`), then
   * while a KV-cache edit is pending, then runs it.
   */
  private async step<T>(slot: DecodeSlot | undefined, run: () => Promise<T>): Promise<T> {
    const gated = slot?.ready();
    if (gated) await gated;
    try {
      if (this.maintenancePending > 0) await this.yieldToMaintenance();
      return await run();
    } finally {
      slot?.returned();
    }
  }

  private grammarFor(loaded: Loaded, constraint: OutputConstraint): Promise<LlamaGrammar> {
    const key = constraint.type === "json" ? "json" : JSON.stringify(constraint.schema);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = createJsonGrammar(loaded.llama, constraint);
      if (this.grammars.size > 64) this.grammars.clear();
      this.grammars.set(key, grammar);
      grammar.catch(() => this.grammars.delete(key));
    }
    return grammar;
  }

  private require(): Loaded {
    if (!this.loaded) throw new AppError("ENGINE_UNAVAILABLE", "The model is not loaded.", { retryAfterSeconds: 5 });
    return this.loaded;
  }

  private logLlama(level: string, message: string): void {
    const text = message.trim();
    if (!text) return;
    if (level === "error" || level === "fatal") this.logger.error({ event: "llama.log" }, text);
    else if (level === "warn") this.logger.warn({ event: "llama.log" }, text);
    else this.logger.debug({ event: "llama.log" }, text);
  }
}

export function commonPrefixLength(a: readonly Token[], b: readonly Token[]): number {
  const max = Math.min(a.length, b.length);
  let i = 0;
  while (i < max && a[i] === b[i]) i++;
  return i;
}

/** The id of a token text that is exactly one token, else undefined. */
function singleToken(model: LlamaModel, text: string): Token | undefined {
  const tokens = model.tokenize(text, true);
  return tokens.length === 1 ? tokens[0] : undefined;
}

/**
 * Ends constrained JSON generation as soon as the top-level object or array closes, instead of
 * waiting for the model to choose an end token (the grammar allows padding after it).
 */
class JsonCloseDetector {
  private text = "";

  /** Adds generated text; true once it is a complete JSON object or array. */
  push(piece: string): boolean {
    this.text += piece;
    const trimmed = this.text.trimEnd();
    if (!trimmed.endsWith("}") && !trimmed.endsWith("]")) return false;
    try {
      JSON.parse(trimmed);
      return true;
    } catch {
      return false;
    }
  }
}

/** OpenAI penalties over the generated tokens (not the prompt), as llama.cpp's penalties sampler applies them. */
function repeatPenalty(request: GenerationRequest, decoder: TokenTextDecoder) {
  return {
    punishTokens: () => decoder.tokens as Token[],
    maxPunishTokens: Math.max(64, Math.min(request.maxTokens, 4096)),
    penalty: 1,
    frequencyPenalty: request.frequencyPenalty,
    presencePenalty: request.presencePenalty,
  };
}

/**
 * OpenAI `logit_bias` as a node-llama-cpp TokenBias: the bias is added to the logit; −100 bans.
 * TokenBias.set() skips end-of-generation tokens, but OpenAI lets clients bias those too, so
 * their entries go into the same map directly.
 */
function createTokenBias(model: LlamaModel, logitBias: ReadonlyMap<number, number> | undefined): TokenBias | undefined {
  if (!logitBias || logitBias.size === 0) return undefined;
  const bias = new TokenBias(model.tokenizer);
  const entries = (bias as unknown as { _biases: Map<Token, number> })._biases;
  for (const [id, value] of logitBias) entries.set(id as Token, value <= -100 ? -Infinity : value);
  return bias;
}

/** `logit_bias` plus a ban on every suppressed token. */
function withSuppressed(model: LlamaModel, request: GenerationRequest): ReadonlyMap<number, number> | undefined {
  if (!request.suppressTokens?.length) return request.logitBias;
  const bias = new Map(request.logitBias);
  for (const text of request.suppressTokens) {
    const token = singleToken(model, text);
    if (token !== undefined) bias.set(token, -100);
  }
  return bias;
}

/** The `count` highest finite logits (the map comes sorted from the addon, but order is not relied on). */
function topEntries(logits: Map<Token, number>, count: number): [Token, number][] {
  if (count === 0) return [];
  const best: [Token, number][] = [];
  for (const [token, logit] of logits) {
    if (logit === -Infinity) continue;
    if (best.length < count) best.push([token, logit]);
    else if (logit > best[best.length - 1]![1]) best[best.length - 1] = [token, logit];
    else continue;
    best.sort((a, b) => b[1] - a[1]);
  }
  return best;
}
