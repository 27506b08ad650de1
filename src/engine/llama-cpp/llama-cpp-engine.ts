/**
 * GGUF text models through node-llama-cpp (the only importer of it, with its siblings here).
 * One model, one context with `parallel` sequences that llama.cpp evaluates together in shared
 * batches. This class loads the model, leases a sequence per generation (reusing the prefix it
 * already holds) and hands the run to one of two decoding paths, which share the same sampling
 * options:
 * - the fast path (fast-decode.ts), `sequence.evaluate()`: native sampling, grammar-constrained when asked;
 * - the logprobs path (logprob-decode.ts), `sequence.controlledEvaluate()` one token at a time: the raw
 *   distribution (after logit_bias and penalties, before temperature and truncation) is read every
 *   step and, above temperature 0, the token is drawn here with a seeded sampler.
 * Both take part in the decode gate (decode-gate.ts, through decode-steps.ts): the decoding
 * sequences are stepped together, one token each per batch, in sequence order, so llama.cpp
 * evaluates them in one pass. node-llama-cpp's private fields are read only in
 * node-llama-cpp-internals.ts, which checks the installed version at load.
 */
import { statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { randomInt } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaContextSequence, TokenBias, type Llama, type LlamaContext, type LlamaGrammar, type LlamaModel, type Token } from "node-llama-cpp";
import type { Logger } from "pino";
import type { ArrivalTicket, Engine, EngineCapacity, EngineEvent, EngineModelInfo, EngineStats, GenerationRequest, OutputConstraint, PromptText, TokenCount } from "../engine.ts";
import { AppError } from "../../errors/app-error.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";
import { BatchHistogram, type DecodeBatchingStats } from "./batch-stats.ts";
import { DecodeGate, decodeFirstStrategy } from "./decode-gate.ts";
import { describeBinary } from "./engine-binary.ts";
import { DecodeSteps, type DecodeTools, type Run } from "./decode-steps.ts";
import { generateFast } from "./fast-decode.ts";
import { JsonGrammarCache } from "./json-grammar.ts";
import { KvMaintenance } from "./kv-maintenance.ts";
import { generateWithLogprobs } from "./logprob-decode.ts";
import { gatherWindowMs, PromptAdmission } from "./prompt-admission.ts";
import { defaultThreads, type LlamaCppEngineOptions } from "./llama-cpp-options.ts";
import { readModelFacts } from "./model-info.ts";
import { batchItemSequenceIds, checkNodeLlamaCppVersion, hookQueuedDecodes, checkNoTopK, LogitSteps, instrumentNativeBatches, padDecodeRows, tokenBiasEntries, type QueueView } from "./node-llama-cpp-internals.ts";
import { decodeRowPadding } from "./decode-row-padding.ts";
import { StepBudget } from "./step-budget.ts";
import { StepHandoff } from "./step-handoff.ts";
import { calibrateThreads, decodeSizes, ThreadPlan, threadCandidates, type ThreadPlanData } from "./thread-plan.ts";
import { readThreadPlan, threadPlanFile, writeThreadPlan } from "./thread-plan-cache.ts";
import { availableParallelism } from "node:os";
import { PromptTokenizer } from "./prompt-tokenizer.ts";
import { commonPrefixLength, PromptCache, type PromptCacheStats } from "./prompt-cache.ts";
import { SequencePool } from "./sequence-pool.ts";
import { TokenizerThread } from "./tokenizer-thread.ts";
import { readVocabularyFacts } from "./vocabulary-facts.ts";
import { requestTokenBias } from "./token-bias.ts";
import { TokenTextDecoder } from "./token-text.ts";

export type { DecodeBatchingStats } from "./batch-stats.ts";
export { defaultThreads, type GpuChoice, type LlamaCppEngineOptions } from "./llama-cpp-options.ts";

interface Loaded {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  pool: SequencePool<LlamaContextSequence>;
  /** Each sequence's place in creation order (= its sequence id in the context). */
  sequenceOrder: Map<LlamaContextSequence, number>;
  tools: DecodeTools;
  info: EngineModelInfo;
  tokenizer: PromptTokenizer;
  thread: TokenizerThread;
  /** Saved states of overwritten sequences and their folder (removed at close); undefined without `promptCacheBytes`. */
  promptCache: { cache: PromptCache<LlamaContextSequence>; dir: string } | undefined;
}

export class LlamaCppEngine implements Engine {
  private loaded: Loaded | undefined;
  private readonly counters = { promptTokensEvaluated: 0, promptTokensReused: 0, generatedTokens: 0 };
  private readonly grammars = new JsonGrammarCache();
  /** KV-cache edits wait for a pause in decoding, and decoding pauses for them (see kv-maintenance.ts). */
  private readonly maintenance = new KvMaintenance(() => (this.queue?.().prompts ?? 0) > 0);
  /** The context's queue of evaluations (node-llama-cpp-internals.ts); set with the context. */
  private queue: (() => QueueView) | undefined;
  private readonly gate = new DecodeGate({ expected: () => this.firstTokenPending.size });
  private readonly admission = new PromptAdmission();
  private readonly generations = new RunningCount();
  // A sequence whose first token is back is a gate participant from then on, no longer pending.
  private readonly steps = new DecodeSteps(
    this.gate,
    this.maintenance,
    (id) => this.firstTokenPending.delete(id),
    (id) => this.handoff?.ended(id),
  );
  /** The batch loop's wait for the decoding sequences' next steps (step-handoff.ts); set with the context. */
  private handoff: StepHandoff | undefined;
  private readonly batches = new BatchHistogram();
  private readonly budget: StepBudget;
  /** Sequences whose prompt's last chunk went into a batch and whose first token is not back yet (ids in the context). */
  private readonly firstTokenPending = new Set<number>();
  /** What the batch strategy put in the native batch about to run (for its thread count and timing). */
  private readonly nextBatch = { decode: 0, prompt: 0, decodeRows: 0 };
  private threadPlan: ThreadPlan | undefined;
  /** Decode batches filled to a block of rows, the rows added, and batches that could not be (too few idle sequences). */
  private readonly rowPadding = { batches: 0, rows: 0, short: 0 };
  /** During calibration: the thread count every batch runs with, and the native time spent. */
  private calibrating: { threads: number; nativeMs: number } | undefined;

  constructor(
    private readonly options: LlamaCppEngineOptions,
    private readonly logger: Logger,
  ) {
    this.budget = new StepBudget(options.maxStepMs);
  }

  async load(): Promise<void> {
    const { options, logger } = this;
    checkNodeLlamaCppVersion(); // before anything loads: the private fields read here are version-bound
    const llama = await getLlama({ gpu: options.gpu === "cpu" ? false : options.gpu, build: "never", logger: (level, message) => this.logLlama(level, message) });
    const model = await llama.loadModel({ modelPath: options.modelPath });
    const threads = options.threads ?? defaultThreads(statSync(options.modelPath).size);
    // On a CPU, decode batches of 2, 3 or 7 rows cost more than the block of 4 or 8 they fall short of (decode-row-padding.ts).
    const padRows = options.padDecodeRows ?? llama.gpu === false;
    // llama.cpp's own choice unless told: off is faster on CPUs at long contexts, but not batch-independent (llama-cpp-options.ts).
    const flashAttention = options.flashAttention ?? "auto";
    const context = await this.createContext(model, threads, padRows, flashAttention);
    tokenBiasEntries(new TokenBias(model.tokenizer)); // fails the load now, not the first logit_bias request
    checkNoTopK(LlamaContextSequence.prototype); // the same: before the first request samples
    // Created in order, so their ids in the context are 0, 1, 2, … (the order kept here).
    const sequences = Array.from({ length: options.parallel }, () => context.getSequence());
    const sequenceOrder = new Map(sequences.map((sequence, index) => [sequence, index]));
    new LogitSteps(sequences[0]!); // the logprobs path's private fields: fails the load now, not the first logprobs request
    const { info, stopTokenIds, describer } = readModelFacts(model, context.contextSize, options.extraStopTokens);
    const tools: DecodeTools = { model, stopTokenIds, describer, steps: this.steps };
    // The thread loads the vocabulary in the background; a large prompt that comes first waits for it.
    const thread = new TokenizerThread({ modelPath: options.modelPath, log: (level, message) => this.logLlama(level === "warn" ? "debug" : level, message) });
    thread.start().catch((error: unknown) => logger.error({ event: "engine.tokenizer_thread_failed", err: error }, "the tokenizer thread failed to start"));
    const tokenizer = new PromptTokenizer(model, thread, readVocabularyFacts(model));
    const promptCache = options.promptCacheBytes ? await createPromptCache(options.promptCacheBytes) : undefined;
    this.loaded = { llama, model, context, pool: new SequencePool(sequences), sequenceOrder, tools, info, tokenizer, thread, promptCache };
    const binary = describeBinary(llama);
    if (options.threads === undefined && options.calibration) {
      await this.planThreads(llama, model, context, sequences, options.calibration.cacheDir);
    }
    if (binary.buildType === "prebuilt" && binary.gpu === false) {
      logger.info({ event: "engine.prebuilt_binary" }, "serving with node-llama-cpp's prebuilt CPU binary (no OpenMP); `phiserve engine build` compiles a faster native one");
    }
    logger.info({ event: "engine.loaded", binary, gpu: llama.gpu, threads: this.threadPlan ? { decode: this.threadPlan.data.decode, prompt: this.threadPlan.data.prompt } : threads, maxStepMs: options.maxStepMs ?? null, padDecodeRows: padRows, flashAttention: context.flashAttention, promptCacheBytes: options.promptCacheBytes ?? 0, contextSize: info.contextLength, parallel: options.parallel, decodeBatch: options.decodeBatch ?? 0 }, "model loaded");
  }

  /** One context for every sequence; its batches are built by `decodeFirstStrategy` (decode-gate.ts). */
  private async createContext(model: LlamaModel, threads: number, padRows: boolean, flashAttention: boolean | "auto"): Promise<LlamaContext> {
    const { options } = this;
    let sequenceOf: ReturnType<typeof batchItemSequenceIds> | undefined;
    const context = await model.createContext({
      contextSize: options.contextSize,
      sequences: options.parallel,
      threads,
      flashAttention,
      batchSize: Math.min(options.batchSize, options.contextSize),
      batching: {
        itemPrioritizationStrategy: decodeFirstStrategy(
          options.decodeBatch ?? 0,
          (decode, prompt, ordered, decodeRows) => {
            this.nextBatch.decode = decode;
            this.nextBatch.prompt = prompt;
            this.nextBatch.decodeRows = decodeRows;
            this.batches.record(decode, prompt, ordered, decodeRows);
          },
          (item, index) => sequenceOf?.(item, index),
          // Streams that are decoding count even when their next tokens are not queued yet (their consumers are
          // still busy), and so do sequences whose prompt just finished (their first token is being sampled, they
          // join the gate after it): a batch that took a whole prompt now would stall them at their next step.
          (decode) => this.budget.promptTokens(Math.max(decode, this.gate.participants + this.firstTokenPending.size)),
          (id, promptDone) => (promptDone ? this.firstTokenPending.add(id) : this.firstTokenPending.delete(id)),
        ),
      },
    });
    sequenceOf = batchItemSequenceIds(context);
    const handoff = new StepHandoff({ queue: () => queue(), capMs: () => this.gate.graceWindowMs(), paused: () => this.maintenance.isPending });
    const queue = hookQueuedDecodes(context, {
      queued: (id, tokens) => {
        handoff.queued(id);
        // A prompt queued keeps the batch loop busy: sequences paused for an edit need not wait any more.
        if (tokens > 1) this.maintenance.recheck();
      },
      afterBatch: (id) => handoff.afterBatch(id),
    });
    this.queue = queue;
    this.handoff = handoff;
    instrumentNativeBatches(context, {
      threads: () => this.calibrating?.threads ?? this.threadPlan?.threadsFor(this.nextBatch.decode, this.nextBatch.prompt),
      done: (ms) => {
        if (this.calibrating) this.calibrating.nativeMs += ms;
        const { decode, prompt, decodeRows } = this.nextBatch;
        // Calibration batches run at thread counts that may not be the plan's: not a cost of serving.
        if (!this.calibrating) this.budget.observe(decode, prompt, ms, decodeRows);
        if (this.logger.isLevelEnabled("trace")) this.logger.trace({ event: "engine.batch", decode, prompt, decodeRows, ms: Math.round(ms) }, "native batch");
      },
    });
    if (padRows) {
      padDecodeRows(context, {
        padding: decodeRowPadding,
        padded: (_, added) => {
          if (added > 0) (this.rowPadding.batches += 1), (this.rowPadding.rows += added);
          else this.rowPadding.short += 1;
        },
        failed: (row) => this.logger.warn({ event: "engine.row_padding_failed", sequence: row.sequenceId, position: row.position }, "a padding row could not be removed after its batch: decode-row padding is off from now on"),
      });
    }
    return context;
  }

  /**
   * The thread plan: from the cache, or measured now on the loaded model (thread-plan.ts); a
   * calibration that fails leaves the library's fixed thread count in place.
   */
  private async planThreads(llama: Llama, model: LlamaModel, context: LlamaContext, sequences: LlamaContextSequence[], cacheDir: string | undefined): Promise<void> {
    const { options } = this;
    const file = cacheDir
      ? await threadPlanFile(cacheDir, { modelPath: options.modelPath, binary: `${llama.buildType} ${llama.systemInfo}`, sequences: options.parallel, contextSize: context.contextSize, batchSize: context.batchSize, flashAttention: context.flashAttention })
      : undefined;
    let data: ThreadPlanData | undefined = file ? await readThreadPlan(file) : undefined;
    const started = performance.now();
    const cached = data !== undefined;
    try {
      data ??= await this.calibrate(model, context, sequences);
    } catch (error) {
      this.logger.warn({ event: "engine.calibration_failed", err: error }, "thread calibration failed: keeping the default thread count");
      return;
    } finally {
      this.calibrating = undefined;
    }
    this.threadPlan = new ThreadPlan(data);
    this.logger.info({ event: "engine.threads", cached, ms: Math.round(performance.now() - started), decode: data.decode, prompt: data.prompt, timings: data.timings }, "thread plan");
    if (file && !cached) await writeThreadPlan(file, data).catch((error: unknown) => this.logger.warn({ event: "engine.calibration_not_cached", err: error }, "thread plan not cached"));
  }

  /** Times native batches of 1, 2, 4, 8 decode tokens and a prompt chunk at each candidate thread count. */
  private async calibrate(model: LlamaModel, context: LlamaContext, sequences: LlamaContextSequence[]): Promise<ThreadPlanData> {
    const sizes = decodeSizes(sequences.length);
    const text = model.tokenize("The river carried light stone past the silver market, and the winter story went on. ".repeat(8));
    const prefix = text.slice(0, 4);
    const chunkLength = Math.max(4, Math.min(32, Math.floor(context.contextSize / 4)));
    const used = sequences.slice(0, Math.max(...sizes));
    const timed = async (threads: number, work: () => Promise<unknown>): Promise<number> => {
      this.calibrating = { threads, nativeMs: 0 };
      await work();
      return this.calibrating.nativeMs;
    };
    try {
      for (const sequence of used) await sequence.evaluateWithoutGeneratingNewTokens(prefix);
      let position = 0;
      const nextToken = () => text[4 + (position++ % (text.length - 4))]!;
      return await calibrateThreads(
        {
          decodeStep: (tokens, threads) =>
            timed(threads, () => Promise.all(used.slice(0, tokens).map((sequence) => sequence.controlledEvaluate([[nextToken(), { generateNext: { token: true } }]])))),
          promptChunk: async (threads) => {
            const sequence = sequences[0]!;
            await sequence.clearHistory();
            return timed(threads, () => sequence.evaluateWithoutGeneratingNewTokens(text.slice(0, chunkLength)));
          },
        },
        threadCandidates(availableParallelism()),
        sizes,
      );
    } finally {
      for (const sequence of used) await sequence.clearHistory();
    }
  }

  capacity(): EngineCapacity {
    return { sequences: this.options.parallel, memoryBytes: this.options.memoryBytes ?? 0 };
  }

  isReady(): boolean {
    return this.loaded !== undefined;
  }

  stats(): EngineStats {
    return { ...this.counters, ...this.batches.decodeTotals(), decodePaddingRows: this.rowPadding.rows };
  }

  batchingStats(): DecodeBatchingStats {
    return this.batches.stats(this.gate.stats);
  }

  modelInfo(): EngineModelInfo {
    return this.require().info;
  }

  countTokens(prompt: PromptText, limitTokens: number): Promise<TokenCount> {
    refuseImages(prompt);
    return this.require().tokenizer.count(prompt, limitTokens);
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

  expectGeneration(): ArrivalTicket {
    return this.admission.enter();
  }

  async *generate(request: GenerationRequest, signal: CancelSignal): AsyncGenerator<EngineEvent> {
    refuseImages(request);
    const loaded = this.require();
    // Entered when the request arrived (expectGeneration), or now.
    const admission = this.admission.adopt(request.arrival) ?? this.admission.enter();
    this.generations.begin();
    try {
      const grammar = request.constraint ? await this.grammarFor(loaded, request.constraint) : undefined;
      const promptTokens = await loaded.tokenizer.tokens(request);
      if (loaded.pool.available === 0) admission.idle();
      const sequence = await this.lease(loaded, promptTokens, signal);
      admission.resume();
      try {
        const inputTokens = await this.reusePrefix(loaded, sequence, promptTokens);
        const together = admission.ready(gatherWindowMs(inputTokens.length, this.budget.estimates().promptTokenMs));
        if (together) await together;
        const run: Run = {
          request,
          signal,
          promptTokens,
          inputTokens,
          sequenceId: loaded.sequenceOrder.get(sequence)!,
          // node-llama-cpp would default to the current second; a random seed keeps unseeded requests independent.
          seed: request.seed === undefined ? randomInt(2 ** 31) : Number(BigInt.asUintN(32, BigInt(Math.trunc(request.seed)))),
          tokenBias: requestTokenBias(loaded.model, request),
          decoder: new TokenTextDecoder(loaded.model, promptTokens),
        };
        try {
          if (request.topLogprobs === undefined) yield* generateFast(loaded.tools, sequence, run, grammar, (constraint) => this.grammarFor(loaded, constraint));
          else yield* generateWithLogprobs(loaded.tools, sequence, run);
        } finally {
          this.counters.generatedTokens += run.decoder.tokens.length;
        }
      } finally {
        const sequenceId = loaded.sequenceOrder.get(sequence)!;
        this.firstTokenPending.delete(sequenceId);
        this.handoff?.ended(sequenceId);
        loaded.pool.release(sequence);
      }
    } finally {
      admission.leave();
      this.generations.end();
    }
  }

  /**
   * Leases the free sequence holding the longest cached prefix of the prompt; among equals the
   * lowest sequence id, which keeps the decoding sequences' ids consecutive (one micro-batch per
   * decode step: see decodeFirstStrategy).
   */
  private lease(loaded: Loaded, promptTokens: readonly Token[], signal: CancelSignal): Promise<LlamaContextSequence> {
    const { parallel } = this.options;
    const tieBreak = 1 / (parallel + 1);
    return loaded.pool.acquire(signal, (candidate) => commonPrefixLength(candidate.contextTokens, promptTokens) + (parallel - loaded.sequenceOrder.get(candidate)!) * tieBreak);
  }

  /**
   * Keeps the tokens the sequence already holds that match the start of the new prompt (same
   * system prompt, a continued conversation) and erases the rest; returns what is left to
   * evaluate. At least the last prompt token is always evaluated, for its logits.
   *
   * With a prompt cache, what the sequence would lose is saved first (when worth it), and a saved
   * state that starts with more of the prompt than the sequence holds replaces the sequence's own.
   * Both are KV-cache edits: decoding pauses for them as for the erase (kv-maintenance.ts).
   */
  private async reusePrefix(loaded: Loaded, sequence: LlamaContextSequence, promptTokens: Token[]): Promise<Token[]> {
    const held = usablePrefix(sequence, promptTokens);
    const keep = loaded.promptCache ? await this.usePromptCache(loaded.promptCache.cache, sequence, promptTokens, held) : held;
    if (keep < sequence.nextTokenIndex) await this.maintenance.run(() => sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]));
    this.counters.promptTokensReused += keep;
    this.counters.promptTokensEvaluated += promptTokens.length - keep;
    return promptTokens.slice(keep);
  }

  /**
   * Saves what `sequence` is about to lose (when worth it), then restores a saved state that starts with more of the
   * prompt than the `held` tokens the sequence keeps; returns how many tokens of the prompt the sequence then holds.
   * Both are KV-cache edits, queued with the erase (docs/ENGINE-NOTES.md "The prompt cache").
   */
  private async usePromptCache(cache: PromptCache<LlamaContextSequence>, sequence: LlamaContextSequence, promptTokens: Token[], held: number): Promise<number> {
    const tokens = sequence.contextTokens;
    if (cache.worthSaving(tokens, held)) {
      const started = performance.now();
      await this.maintenance.run(() => cache.save(sequence, tokens)).then(
        () => this.logger.debug({ event: "engine.prompt_cache_saved", tokens: tokens.length, ms: Math.round(performance.now() - started), ...cache.stats }, "sequence state saved"),
        (error: unknown) => this.logger.warn({ event: "engine.prompt_cache_save_failed", err: error }, "a sequence state could not be saved to the prompt cache"),
      );
    }
    // At least the last prompt token is evaluated, for its logits (as in usablePrefix).
    const hit = cache.best(promptTokens.slice(0, promptTokens.length - 1), held);
    if (!hit) return held;
    const started = performance.now();
    try {
      // Edits run one at a time (saves included), so the entry cannot go between restore()'s check and its load.
      if (!(await this.maintenance.run(() => cache.restore(sequence, hit.entry, hit.length - held)))) return held;
    } catch (error) {
      // A failed load leaves the sequence empty (emptied before it; llama.cpp removes what it had read): the whole
      // prompt is evaluated.
      this.logger.warn({ event: "engine.prompt_cache_restore_failed", err: error }, "a saved sequence state could not be restored; the prompt is evaluated");
      return 0;
    }
    this.logger.debug({ event: "engine.prompt_cache_restored", tokens: hit.length, ms: Math.round(performance.now() - started), ...cache.stats }, "sequence state restored");
    return usablePrefix(sequence, promptTokens);
  }

  async close(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = undefined;
    if (!loaded) return;
    this.logger.info({ event: "engine.batching", ...this.batchingStats(), promptAdmission: this.admission.stats, stepHandoff: this.handoff?.stats, rowPadding: this.rowPadding }, "decode batching since load");
    // A generation still running would step on a freed context: aborted ones end within one step.
    if (!(await this.generations.ended(CLOSE_WAIT_MS))) this.logger.warn({ event: "engine.close_timeout", generations: this.generations.count }, "generations still running at close");
    if ((await loaded.thread.close()) === "forced") this.logger.warn({ event: "engine.tokenizer_thread_forced" }, "the tokenizer thread did not free its model in time and was terminated");
    await loaded.context.dispose();
    await loaded.model.dispose();
    await loaded.llama.dispose();
    if (loaded.promptCache) await rm(loaded.promptCache.dir, { recursive: true, force: true });
  }

  /** The prompt cache's counters; undefined without one. */
  promptCacheStats(): PromptCacheStats | undefined {
    return this.loaded?.promptCache?.cache.stats;
  }

  private grammarFor(loaded: Loaded, constraint: OutputConstraint): Promise<LlamaGrammar> {
    return this.grammars.get(loaded.llama, constraint);
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

/** How long `close()` waits for generations to end (aborted ones end within one step). */
const CLOSE_WAIT_MS = 10_000;

/** Generations between `begin()` and `end()`; `ended()` resolves when none is left (false after `timeoutMs`). */
class RunningCount {
  count = 0;
  private waiters: (() => void)[] = [];

  begin(): void {
    this.count += 1;
  }

  end(): void {
    this.count -= 1;
    if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
  }

  ended(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

/** How many of the prompt's tokens `sequence` holds that it can keep: all but the last, which is evaluated for its logits. */
function usablePrefix(sequence: LlamaContextSequence, promptTokens: readonly Token[]): number {
  return Math.min(commonPrefixLength(sequence.contextTokens, promptTokens), promptTokens.length - 1);
}

/** A prompt cache in a folder of its own under the system's temporary folder, states saved and read by node-llama-cpp. */
async function createPromptCache(budgetBytes: number): Promise<{ cache: PromptCache<LlamaContextSequence>; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), "phiserve-prompt-cache-"));
  const cache = new PromptCache<LlamaContextSequence>(
    {
      save: async (sequence, file) => (await sequence.saveStateToFile(file)).fileSize,
      // Only files this engine wrote, from this model and context: the risk node-llama-cpp asks to accept is not taken.
      // The sequence is emptied first: node-llama-cpp forgets its tokens before the native load, which leaves the
      // cells in place when the file cannot be opened (deleted by a temporary-folder cleaner, say).
      load: async (sequence, file) => {
        await sequence.clearHistory();
        await sequence.loadStateFromFile(file, { acceptRisk: true });
      },
      remove: (file) => rm(file, { force: true }),
    },
    join(dir, "state-"),
    budgetBytes,
  );
  return { cache, dir };
}

/** node-llama-cpp has no multimodal API (docs/ENGINE-NOTES.md "Loading offline"): a prompt with images is a caller's bug. */
function refuseImages(prompt: PromptText): void {
  if (prompt.images?.length) throw new Error("The llama.cpp engine does not read images; vision models are served by the ONNX engine.");
}
