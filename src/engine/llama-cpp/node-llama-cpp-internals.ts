/**
 * Every read of node-llama-cpp's private fields, in one place, behind a version guard.
 *
 * These behaviours the engine needs have no public API in node-llama-cpp 3.22.1
 * (docs/ENGINE-NOTES.md "Decode batching and sequence order"):
 * - `LlamaContext._queuedDecodes`: the queue the batch loop builds the strategy's items from, in
 *   the same order (its `getOrderedQueuedDecodes`). Reading it gives each batch item its sequence
 *   id, so a batch can be put in sequence order (see `decodeFirstStrategy` in decode-gate.ts).
 * - `TokenBias._biases`: the token → logit map the sampler reads. `TokenBias.set()` skips
 *   end-of-generation tokens, but OpenAI's `logit_bias` may bias those too, so entries are written
 *   to the map directly.
 * - `LlamaContext._ctx` (the native context): its `decodeBatch()` runs one native batch, and
 *   `setThreads()` sets llama.cpp's thread count for the next one. Wrapping `decodeBatch` times each
 *   batch (the step budget, step-budget.ts) and sets the threads measured best for its shape
 *   (thread-plan.ts) right before it runs, after the library set its own.
 *
 * - `LlamaContext._decodeTokens` (the queue entry): an item that samples a token gets an after-batch
 *   action, so the batch loop waits for the decoding sequences' next steps before it builds the next
 *   batch (step-handoff.ts).
 * - The native context's `initBatch`, `addToBatch`, `getSequenceKvCacheMaxPosition` and
 *   `removeTokenCellsFromSequence`: `padDecodeRows` fills a CPU batch of 2, 3 or 7 decode rows up to
 *   its block of 4 with rows of idle sequences, removed after the batch (decode-row-padding.ts).
 * - `LlamaContextSequence._decodeTokens` and the native `_ctx.sampleToken`, with the addon's
 *   `AddonSampler`: `LogitSteps` samples one step's logits several times, with different
 *   samplers, for logprobs (docs/ENGINE-NOTES.md "Logprobs from native samplers").
 *
 * An upgrade may rename, reshape or repurpose any of them, and nothing would fail: logit_bias would
 * quietly stop reaching EOG tokens, batches would quietly lose their order. So the engine calls
 * `checkNodeLlamaCppVersion()` before it loads anything and the accessors below check the fields'
 * shape at load: a different version, or a field gone, fails the load with an error naming both.
 * `NO_TOP_K` relies on how the sampler config is built (see there).
 * After an upgrade, re-read these fields in the new release, then raise `VERIFIED_VERSION`.
 */
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { BatchItem, LlamaContext, LlamaContextSequence, LlamaContextSequenceRepeatPenalty, Token, TokenBias } from "node-llama-cpp";

/**
 * Replaces `name` on `target` with `value` as an own property. The addon's methods are read-only on its
 * prototype, so assignment would throw; an own property shadows them (and the library's own methods alike).
 */
function shadow(target: object, name: string, value: unknown): void {
  Object.defineProperty(target, name, { configurable: true, value });
}

/** The node-llama-cpp release whose private fields this module was checked against. */
export const VERIFIED_VERSION = "3.22.1";

const HELP = "phiserve reads this private field; see src/engine/llama-cpp/node-llama-cpp-internals.ts";

/** The version in the installed node-llama-cpp's package.json (its `exports` do not expose the file). */
export function installedNodeLlamaCppVersion(): string {
  let dir = dirname(createRequire(import.meta.url).resolve("node-llama-cpp"));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "node-llama-cpp" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // no package.json at this level: keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) return "unknown";
    dir = parent;
  }
}

/** Throws unless `installed` is the version the private fields were verified against. */
export function checkNodeLlamaCppVersion(installed: string = installedNodeLlamaCppVersion()): void {
  if (installed === VERIFIED_VERSION) return;
  throw new Error(
    `node-llama-cpp ${installed} is installed, but phiserve's access to its private fields ` +
      `(LlamaContext._queuedDecodes, TokenBias._biases) was verified against ${VERIFIED_VERSION} only. ` +
      `Install node-llama-cpp@${VERIFIED_VERSION}, or re-verify those fields and update src/engine/llama-cpp/node-llama-cpp-internals.ts.`,
  );
}

function fieldError(owner: string, field: string, expected: string, version: string): Error {
  return new Error(`node-llama-cpp ${version}: ${owner}.${field} is missing or is not ${expected} (${HELP}, verified against ${VERIFIED_VERSION}).`);
}

/** What a queued decode holds that matters here (node-llama-cpp 3.22.1's `_decodeTokens`). */
interface QueuedDecode {
  sequenceId: number;
  tokens: readonly Token[];
}

/**
 * For the batch strategy: the sequence id of `items[index]`, read from the context's queue, which
 * the items are built from one for one and in order (the item shares the queued decode's `tokens`
 * array, which is checked). Undefined when the queue does not match, so the batch is counted as
 * unordered instead of being ordered wrongly. Throws now when the queue is not there.
 */
export function batchItemSequenceIds(context: LlamaContext, version?: string): (item: BatchItem, index: number) => number | undefined {
  const holder = context as unknown as { _queuedDecodes?: unknown };
  if (!Array.isArray(holder._queuedDecodes)) throw fieldError("LlamaContext", "_queuedDecodes", "an array", version ?? installedNodeLlamaCppVersion());
  return (item, index) => {
    const queued = (holder._queuedDecodes as readonly Partial<QueuedDecode>[] | undefined)?.[index];
    return queued?.tokens === item.tokens && typeof queued.sequenceId === "number" ? queued.sequenceId : undefined;
  };
}

/** The token → logit map a TokenBias hands to the sampler (−Infinity bans the token). */
export function tokenBiasEntries(bias: TokenBias, version?: string): Map<Token, number> {
  const entries = (bias as unknown as { _biases?: unknown })._biases;
  if (!(entries instanceof Map)) throw fieldError("TokenBias", "_biases", "a Map", version ?? installedNodeLlamaCppVersion());
  return entries as Map<Token, number>;
}

/**
 * The `topK` sampling option that means "no top-k sampler" (docs/ENGINE-NOTES.md "Sampling above
 * temperature 0"). node-llama-cpp reads an absent `topK` as 40 and `0` as a top-k of the whole
 * vocabulary, a sort of every candidate at every sampled token; `null` is dropped from the
 * sampler config (its `_resolveSamplerConfig` removes null fields) and the addon then builds the
 * chain without a top-k sampler: the same distribution, no sort. Its option types say number.
 */
export const NO_TOP_K = null as unknown as number;

/** Fails unless the installed node-llama-cpp still leaves a `NO_TOP_K` out of the sampler config it hands the addon. */
export function checkNoTopK(sequencePrototype: object, version?: string): void {
  const resolve = (sequencePrototype as { _resolveSamplerConfig?: unknown })._resolveSamplerConfig;
  const installed = version ?? installedNodeLlamaCppVersion();
  if (typeof resolve !== "function") throw fieldError("LlamaContextSequence", "_resolveSamplerConfig", "a method", installed);
  const config = (resolve as (options: object) => object).call({ model: {} }, { temperature: 1, topK: NO_TOP_K });
  if ("topK" in config) throw fieldError("LlamaContextSequence", "_resolveSamplerConfig", "dropping a null topK", installed);
}

/** What the engine learns of each native batch and decides for it. */
export interface NativeBatchHooks {
  /** Threads for the batch about to run (undefined: leave the library's choice). */
  threads(): number | undefined;
  /** The batch ran (or failed) in `ms`. */
  done(ms: number): void;
}

/**
 * Wraps the native context's `decodeBatch` (`LlamaContext._ctx`, node-llama-cpp 3.22.1): `hooks.threads()`
 * is applied with the native `setThreads` right before each batch, and `hooks.done` gets its duration.
 * Throws now when the native context or either method is not there.
 */
export function instrumentNativeBatches(context: LlamaContext, hooks: NativeBatchHooks, version?: string): void {
  const native = (context as unknown as { _ctx?: { decodeBatch?: unknown; setThreads?: unknown } })._ctx;
  if (!native || typeof native.decodeBatch !== "function" || typeof native.setThreads !== "function") {
    throw fieldError("LlamaContext", "_ctx.decodeBatch/setThreads", "a native context with both methods", version ?? installedNodeLlamaCppVersion());
  }
  const decodeBatch = (native.decodeBatch as () => Promise<void>).bind(native);
  const setThreads = (native.setThreads as (threads: number) => void).bind(native);
  shadow(native, "decodeBatch", async (): Promise<void> => {
    const threads = hooks.threads();
    if (threads !== undefined) setThreads(threads);
    const started = performance.now();
    try {
      await decodeBatch();
    } finally {
      hooks.done(performance.now() - started);
    }
  });
}

/** A row added to a native batch to fill its block of rows: a token of an idle sequence, removed again after the batch. */
export interface PadRow {
  sequenceId: number;
  position: number;
}

export interface RowPaddingHooks {
  /**
   * How many rows to add to a batch of `rows` rows, each a single token of its own sequence (a batch
   * holding more than one token of any sequence is never padded).
   */
  padding(rows: number): number;
  /** Rows were added to a batch of `rows` (`added` 0: none could be: not enough idle sequences with room). */
  padded(rows: number, added: number): void;
  /** A padding row could not be removed after its batch: padding must stop (the sequence keeps a stray cell). */
  failed(row: PadRow): void;
}

/**
 * Pads native batches of decode rows (node-llama-cpp 3.22.1's native context: `initBatch`, `addToBatch`,
 * `decodeBatch`, `getSequenceKvCacheMaxPosition`, `removeTokenCellsFromSequence`): when every item of a
 * batch is one token of its own sequence and `hooks.padding(rows)` asks for more rows, a token of as many
 * idle sequences (not in the batch, with room: their next position below `contextSize - 1`) is added at
 * each one's next position, without logits, and its cell is removed right after the batch, so no
 * sequence's KV cache or node-llama-cpp's record of it changes. Each batch is allocated `maxPadding`
 * rows larger (within the context's batch size) to make room. Returns nothing; throws now when a method
 * is not there (docs/ENGINE-NOTES.md "Decode rows in blocks of four").
 */
export function padDecodeRows(context: LlamaContext, hooks: RowPaddingHooks, maxPadding = 3, version?: string): void {
  const native = (context as unknown as { _ctx?: Record<string, unknown> })._ctx;
  const methods = ["initBatch", "addToBatch", "decodeBatch", "getSequenceKvCacheMaxPosition", "removeTokenCellsFromSequence"] as const;
  if (!native || methods.some((name) => typeof native[name] !== "function")) {
    throw fieldError("LlamaContext", `_ctx.${methods.join("/")}`, "a native context with these methods", version ?? installedNodeLlamaCppVersion());
  }
  const call = <T>(name: (typeof methods)[number]) => (native[name] as (...args: unknown[]) => T).bind(native);
  const initBatch = call<void>("initBatch");
  const addToBatch = call<Uint32Array>("addToBatch");
  const decodeBatch = call<Promise<void>>("decodeBatch");
  const maxPosition = call<number>("getSequenceKvCacheMaxPosition");
  const removeCells = call<boolean>("removeTokenCellsFromSequence");
  const sequences = context.totalSequences;
  const room = context.contextSize - 1;
  let items: { sequenceId: number; tokens: number; token: number }[] = [];
  let capacity = 0;
  let stopped = false;
  shadow(native, "initBatch", (size: number) => {
    items = [];
    capacity = Math.min(size + maxPadding, context.batchSize);
    initBatch(capacity);
  });
  shadow(native, "addToBatch", (sequenceId: number, firstTokenIndex: number, tokens: Uint32Array, logitIndexes: Uint32Array) => {
    items.push({ sequenceId, tokens: tokens.length, token: tokens[0] ?? 0 });
    return addToBatch(sequenceId, firstTokenIndex, tokens, logitIndexes);
  });
  shadow(native, "decodeBatch", async (): Promise<void> => {
    const rows = items.length;
    const busy = new Set(items.map((item) => item.sequenceId));
    const singles = rows > 0 && busy.size === rows && items.every((item) => item.tokens === 1);
    const asked = !stopped && singles ? hooks.padding(rows) : 0;
    // All the rows asked for or none: a block only partly filled costs more than not filling it.
    const wanted = asked <= capacity - rows ? asked : 0;
    const added: PadRow[] = [];
    if (wanted > 0) {
      const candidates: PadRow[] = [];
      for (let sequenceId = 0; sequenceId < sequences && candidates.length < wanted; sequenceId++) {
        if (busy.has(sequenceId)) continue;
        const position = maxPosition(sequenceId) + 1;
        if (position < room) candidates.push({ sequenceId, position });
      }
      if (candidates.length === wanted) {
        for (const row of candidates) {
          addToBatch(row.sequenceId, row.position, Uint32Array.of(items[0]!.token), new Uint32Array(0));
          added.push(row);
        }
      }
      hooks.padded(rows, added.length);
    }
    try {
      await decodeBatch();
    } finally {
      for (const row of added) {
        if (!removeCells(row.sequenceId, row.position, row.position + 1)) {
          stopped = true;
          hooks.failed(row);
        }
      }
    }
  });
}

/** What the engine does around each queued batch item (see `StepHandoff`, step-handoff.ts). */
export interface QueueHooks {
  /** An item of `sequenceId` was queued, of `tokens` tokens. */
  queued(sequenceId: number, tokens: number): void;
  /** The batch that carried a token-sampling item of `sequenceId` is done: the loop awaits what this returns before its next batch. */
  afterBatch(sequenceId: number): Promise<void> | undefined;
}

/** The context's queue now: its items, whether a sequence has one, and how many carry more than one token (prompts). */
export interface QueueView {
  size: number;
  has: (sequenceId: number) => boolean;
  prompts: number;
}

/**
 * Wraps `LlamaContext._decodeTokens` (node-llama-cpp 3.22.1: the context-level queue entry every
 * evaluation goes through, taking `{ sequenceId, tokens, logits, …, afterBatchAction }`): `hooks.queued`
 * hears of every item, and an item whose last token samples (its last `logits` entry set) gets
 * `afterBatchAction`, which the batch loop awaits after handing out the batch's results and before
 * building the next batch (after the library's own action, which `sequence.evaluate()` sets for its
 * checkpoints). Returns a view of the queue. Throws now when either field is not there.
 */
export function hookQueuedDecodes(context: LlamaContext, hooks: QueueHooks, version?: string): () => QueueView {
  const holder = context as unknown as { _decodeTokens?: unknown; _queuedDecodes?: unknown };
  const installed = () => version ?? installedNodeLlamaCppVersion();
  if (typeof holder._decodeTokens !== "function") throw fieldError("LlamaContext", "_decodeTokens", "a method", installed());
  if (!Array.isArray(holder._queuedDecodes)) throw fieldError("LlamaContext", "_queuedDecodes", "an array", installed());
  const decodeTokens = (holder._decodeTokens as (queued: QueuedItem, mapper: unknown) => Promise<unknown>).bind(context);
  shadow(context, "_decodeTokens", (queued: QueuedItem, mapper: unknown): Promise<unknown> => {
    const samples = queued.logits[queued.logits.length - 1] === true;
    const own = queued.afterBatchAction;
    // The library's own action (its interval checkpoints) runs first, called as it would be (on the queue entry).
    const afterBatchAction = function (this: unknown, sequenceStateLength: number): Promise<void> | undefined {
      const first = own?.call(this, sequenceStateLength);
      return first instanceof Promise ? first.then(() => hooks.afterBatch(queued.sequenceId)) : hooks.afterBatch(queued.sequenceId);
    };
    const result = decodeTokens(samples ? { ...queued, afterBatchAction } : queued, mapper);
    hooks.queued(queued.sequenceId, queued.tokens.length);
    return result;
  });
  return () => {
    const queue = holder._queuedDecodes as readonly Partial<QueuedDecode>[];
    let prompts = 0;
    for (const item of queue) if ((item.tokens?.length ?? 0) > 1) prompts += 1;
    return { size: queue.length, has: (sequenceId) => queue.some((item) => item.sequenceId === sequenceId), prompts };
  };
}

interface QueuedItem extends QueuedDecode {
  logits: readonly (boolean | undefined)[];
  afterBatchAction?: (this: unknown, sequenceStateLength: number) => Promise<void> | void;
}

/** Sampling settings for a native sampler, as `sequence.evaluate()` takes them. */
export interface NativeSamplerOptions {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  seed: number;
  tokenBias?: TokenBias;
  repeatPenalty?: LlamaContextSequenceRepeatPenalty;
}

/** A native sampler (the addon's `AddonSampler`), kept for a whole generation: its seeded generator and penalty history carry over. */
export interface NativeSampler {
  configure(options: NativeSamplerOptions): void;
  dispose(): void;
}

/** Which logits one sampling call returns: `tokens`' and the pick's, and the `top` highest (after the sampler chain). */
export interface LogitRequest {
  tokens?: readonly Token[];
  includeSelected?: boolean;
  top?: number;
  /** Σ exp(logit − max) over the candidates after the chain. */
  totalLogitWeight?: boolean;
}

export interface NativeSample {
  token: Token | undefined;
  /** [token, logit] in the addon's order (highest first when the chain or a top request sorted them). */
  logits: [Token, number][];
  totalLogitWeight: number | undefined;
}

/** Samples the logits of the step's last token; callable any number of times (different samplers) until the step ends. */
export type SampleLogits = (sampler: NativeSampler, request: LogitRequest) => Promise<NativeSample>;

/**
 * One evaluation step with several native samplings of its last token's logits (node-llama-cpp 3.22.1):
 * what `controlledEvaluate()` does, but with `read` called while the logits are valid, so it can run
 * several samplers over the same logits. The logprobs path needs that: the pick, the raw
 * distribution's normaliser and its top entries come from differently configured chains, each
 * cheap, where one chain returning the whole vocabulary (a sort and a 32k-entry Map per token) was
 * the only public way (docs/ENGINE-NOTES.md "Logprobs from native samplers").
 *
 * Reads `LlamaContextSequence._decodeTokens` (the queue entry every evaluation goes through, so the
 * step is batched, ordered and gated like any other), `_resolveSamplerConfig`, `_tokenMeter` and
 * `_contextShift`, the native `_ctx.sampleToken` and the addon's `AddonSampler` class. Throws now
 * when any of them is not there.
 */
export class LogitSteps {
  private readonly sequence: SequenceInternals;
  private readonly native: { sampleToken: (...args: unknown[]) => Promise<unknown[]> };
  private readonly AddonSampler: new (model: unknown) => AddonSamplerInstance;
  private readonly model: unknown;

  constructor(sequence: LlamaContextSequence, version?: string) {
    const installed = () => version ?? installedNodeLlamaCppVersion();
    const seq = sequence as unknown as SequenceInternals & { model?: { _model?: unknown; _llama?: { _bindings?: { AddonSampler?: unknown } } }; context?: { _ctx?: { sampleToken?: unknown } } };
    if (typeof seq._decodeTokens !== "function") throw fieldError("LlamaContextSequence", "_decodeTokens", "a method", installed());
    if (typeof seq._resolveSamplerConfig !== "function") throw fieldError("LlamaContextSequence", "_resolveSamplerConfig", "a method", installed());
    if (!seq._tokenMeter || !seq._contextShift) throw fieldError("LlamaContextSequence", "_tokenMeter/_contextShift", "set", installed());
    const native = seq.context?._ctx;
    if (!native || typeof native.sampleToken !== "function") throw fieldError("LlamaContext", "_ctx.sampleToken", "a method", installed());
    const AddonSampler = seq.model?._llama?._bindings?.AddonSampler;
    if (typeof AddonSampler !== "function" || !seq.model?._model) throw fieldError("LlamaModel", "_llama._bindings.AddonSampler/_model", "the addon's sampler class and model", installed());
    this.sequence = seq;
    this.native = native as { sampleToken: (...args: unknown[]) => Promise<unknown[]> };
    this.AddonSampler = AddonSampler as new (model: unknown) => AddonSamplerInstance;
    this.model = seq.model._model;
  }

  sampler(): NativeSampler {
    const native = new this.AddonSampler(this.model);
    const sequence = this.sequence;
    return {
      configure: (options) => native.applyConfig(sequence._resolveSamplerConfig(options)),
      dispose: () => native.dispose(),
      [NATIVE]: native,
    } as NativeSampler;
  }

  /** Evaluates `tokens` on the sequence; `read` samples the last one's logits. Resolves with what `read` returned. */
  async step<T>(tokens: readonly Token[], read: (sample: SampleLogits) => Promise<T>): Promise<T> {
    const seq = this.sequence;
    const logits = tokens.map((_, i) => i === tokens.length - 1);
    const shift = { size: seq._contextShift.size, strategy: seq._contextShift.strategy };
    const results = await seq._decodeTokens(tokens, logits, DEFAULT_EVALUATION_PRIORITY, seq._tokenMeter, shift, (batchLogitIndex: number) =>
      read((sampler, request) => this.sample(batchLogitIndex, sampler, request)),
    );
    return results[tokens.length - 1] as T;
  }

  private async sample(batchLogitIndex: number, sampler: NativeSampler, request: LogitRequest): Promise<NativeSample> {
    const native = (sampler as unknown as { [NATIVE]: AddonSamplerInstance })[NATIVE];
    const wantsLogits = (request.tokens?.length ?? 0) > 0 || request.includeSelected === true || (request.top ?? 0) > 0;
    // The addon's arguments: probabilities, confidence, then the logits filter [tokens, highest, lowest, selected, top].
    const [token, , , flat, weight] = await this.native.sampleToken(
      batchLogitIndex,
      native,
      false,
      false,
      wantsLogits ? [request.tokens ?? [], false, false, request.includeSelected ?? false, request.top ?? 0] : false,
      request.totalLogitWeight ?? false,
    );
    const logits: [Token, number][] = [];
    if (Array.isArray(flat)) for (let i = 0; i + 1 < flat.length; i += 2) logits.push([flat[i] as Token, flat[i + 1] as number]);
    return { token: typeof token === "number" && token >= 0 ? (token as Token) : undefined, logits, totalLogitWeight: typeof weight === "number" ? weight : undefined };
  }
}

const NATIVE = Symbol("native sampler");
/** node-llama-cpp's `defaultEvaluationPriority` (not exported). */
const DEFAULT_EVALUATION_PRIORITY = 5;

interface AddonSamplerInstance {
  applyConfig(config: object): void;
  dispose(): void;
}

interface SequenceInternals {
  _decodeTokens(tokens: readonly Token[], logits: boolean[], priority: number, tokenMeter: unknown, contextShift: object, mapper: (batchLogitIndex: number, tokenIndex: number) => unknown): Promise<unknown[]>;
  _resolveSamplerConfig(options: object): object;
  _tokenMeter: unknown;
  _contextShift: { size: unknown; strategy: unknown };
}
