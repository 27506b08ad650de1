/**
 * Decode-step scheduling: which generating sequences share one native batch.
 *
 * node-llama-cpp's batch loop evaluates whatever is queued when it looks, and it looks again the
 * moment a batch's tokens are sampled, before the last sequence to receive its token has asked for
 * the next one. With 4 decoding sequences the batches come out 3, 3, 3, … with one sequence
 * rotating out each time, never 4. On CPUs whose matrix kernels work in blocks of 4 rows
 * (ggml's repacked q4_0 path) a batch of 4 costs about what a batch of 3 does, so the accident
 * throws away a quarter of the throughput (measurements: bench/RESULTS.md).
 *
 * The gate makes the grouping deliberate. A sequence joins once it is decoding (its prompt is
 * evaluated; prompt evaluation never waits here) and, before each next step, calls `ready()`:
 * - alone (nothing else decoding or about to, or everything else absent): it goes at once, no extra hop;
 * - otherwise it waits until no gated step is in flight and every other present participant is
 *   ready too, then the whole group is released together, one event-loop turn later (so the
 *   library's loop has finished looking and a single dispatch takes every token).
 * A participant whose consumer has not asked for its next token (HTTP back-pressure, slow
 * client-side work) is waited for only `graceMs` after the last step came back; it is then
 * marked absent and is not waited for again until it next calls `ready()`. A participant that
 * leaves (finished, aborted, failed) is forgotten at once. So no sequence can hold the others for
 * longer than one grace period per stall, and none waits forever.
 *
 * How many of the released tokens go into one native batch is the batch strategy's business
 * (`decodeFirstStrategy`): all of them by default, or at most `maxDecodeTokens` per batch.
 */
import type { BatchItem, CustomBatchingPrioritizationStrategy, PrioritizedBatchItem } from "node-llama-cpp";
import { outsideBlocks, ROW_BLOCK } from "./decode-row-padding.ts";

export interface DecodeGateStats {
  /** Groups released with every present participant ready. */
  groupsComplete: number;
  /** Groups released when the grace period ran out (someone's consumer was late). */
  groupsAfterGrace: number;
  /** Steps that went at once, with no other participant to wait for. */
  soloSteps: number;
}

type SlotState = "consuming" | "waiting" | "inFlight" | "left";

export class DecodeSlot {
  /** @internal */ state: SlotState = "consuming";
  /** @internal */ absent = false;
  /** @internal */ releasedAt = 0;
  /** @internal */ resume: (() => void) | undefined;

  constructor(private readonly gate: DecodeGate) {}

  /** Before asking for the next token: undefined = go now; otherwise go when the promise resolves. */
  ready(): Promise<void> | undefined {
    return this.gate.ready(this);
  }

  /** The step asked for after `ready()` came back (its token, or the end). */
  returned(): void {
    this.gate.returned(this);
  }

  /** The sequence stopped decoding (finished, aborted, failed); idempotent. */
  leave(): void {
    this.gate.leave(this);
  }
}

export interface DecodeGateOptions {
  /**
   * Sequences about to join: their prompt's last chunk is in the batch now running, their first token is not back
   * yet. A ready sequence waits for them as for a present participant, instead of stepping alone a step ahead of
   * them for the rest of its generation (it would also end a step earlier, so the next requests arrive apart).
   */
  expected?: () => number;
  /** How long to wait for a late consumer once nothing is in flight, from the recent step time (ms). Default: a quarter of it, 1–100 ms. */
  graceMs?: (stepMs: number) => number;
  now?: () => number;
}

export class DecodeGate {
  private readonly slots = new Set<DecodeSlot>();
  private waiting: DecodeSlot[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Moving average of a released step's duration, release to return (ms). */
  private stepMs = 0;
  private readonly graceMs: (stepMs: number) => number;
  private readonly now: () => number;
  private readonly expected: () => number;
  readonly stats: DecodeGateStats = { groupsComplete: 0, groupsAfterGrace: 0, soloSteps: 0 };

  constructor(options: DecodeGateOptions = {}) {
    this.graceMs = options.graceMs ?? ((step) => Math.min(100, Math.max(1, step / 4)));
    this.now = options.now ?? (() => performance.now());
    this.expected = options.expected ?? (() => 0);
  }

  /** The grace period now: how long a late consumer is waited for, from the recent step time (ms). */
  graceWindowMs(): number {
    return this.graceMs(this.stepMs);
  }

  /** Sequences decoding now. */
  get participants(): number {
    return this.slots.size;
  }

  /** A sequence starts decoding (after its first token); it is consuming that token now. */
  join(): DecodeSlot {
    const slot = new DecodeSlot(this);
    this.slots.add(slot);
    return slot;
  }

  /** @internal */
  ready(slot: DecodeSlot): Promise<void> | undefined {
    if (slot.state !== "consuming") throw new Error(`DecodeSlot.ready() while ${slot.state}`);
    slot.absent = false;
    if (this.inFlight === 0 && this.waiting.length === 0 && this.presentConsumers(slot) === 0 && this.expected() === 0) {
      this.stats.soloSteps += 1;
      this.launch(slot);
      return undefined;
    }
    slot.state = "waiting";
    this.waiting.push(slot);
    const promise = new Promise<void>((resolve) => (slot.resume = resolve));
    this.check();
    return promise;
  }

  /** @internal */
  returned(slot: DecodeSlot): void {
    if (slot.state !== "inFlight") return;
    slot.state = "consuming";
    this.inFlight -= 1;
    const took = this.now() - slot.releasedAt;
    this.stepMs = this.stepMs === 0 ? took : this.stepMs * 0.8 + took * 0.2;
    this.check();
  }

  /** @internal */
  leave(slot: DecodeSlot): void {
    if (slot.state === "left") return;
    if (slot.state === "inFlight") this.inFlight -= 1;
    if (slot.state === "waiting") {
      this.waiting.splice(this.waiting.indexOf(slot), 1);
      slot.resume?.();
    }
    slot.state = "left";
    this.slots.delete(slot);
    this.check();
  }

  /** Present participants other than `except` that hold a token and have not asked for the next. */
  private presentConsumers(except?: DecodeSlot): number {
    let count = 0;
    for (const slot of this.slots) if (slot !== except && slot.state === "consuming" && !slot.absent) count += 1;
    return count;
  }

  private check(): void {
    if (this.waiting.length === 0 || this.inFlight > 0) {
      this.clearTimer();
      return;
    }
    if (this.presentConsumers() === 0 && this.expected() === 0) {
      this.stats.groupsComplete += 1;
      this.release();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        for (const slot of this.slots) if (slot.state === "consuming") slot.absent = true;
        this.stats.groupsAfterGrace += 1;
        this.release();
      }, this.graceMs(this.stepMs));
    }
  }

  private release(): void {
    this.clearTimer();
    const group = this.waiting;
    this.waiting = [];
    for (const slot of group) this.launch(slot);
    // One turn later: node-llama-cpp's batch loop (microtasks after the last batch) has stopped
    // looking, so every token of the group is queued before the next dispatch takes them.
    setImmediate(() => {
      for (const slot of group) {
        const resume = slot.resume;
        slot.resume = undefined;
        resume?.();
      }
    });
  }

  private launch(slot: DecodeSlot): void {
    slot.state = "inFlight";
    slot.releasedAt = this.now();
    this.inFlight += 1;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * What one native batch carried; `ordered`: every item's sequence was known, so the batch is in sequence order.
 * `decodeRows`: the rows of the micro-batch that carries the decode tokens (the decode tokens, plus one of a
 * prompt's when its chunk shares that micro-batch).
 */
export interface BatchRecorder {
  (decodeTokens: number, promptTokens: number, ordered: boolean, decodeRows: number): void;
}

/**
 * node-llama-cpp batch strategy: single-token items (decode steps) get a place first, at most
 * `maxDecodeTokens` of them (0 = all), in queue order; the rest of the batch goes to the prompts being
 * evaluated. When the batch's size is what limits them, it is shared evenly (as the library's
 * "maximumParallelism" does: prompts that arrived together finish together and their streams decode in
 * step). When the step budget limits them (`promptBudget(decodeTokens)`, chunked prefill while streams
 * decode), the prompt with the fewest tokens left goes first, so chunking delays each prompt's first
 * token as little as possible (docs/ENGINE-NOTES.md "Prompts and decoding streams share steps"). Items
 * left out stay queued and go in the library's next batch, right after this one.
 *
 * The batch is then ordered by sequence id (`sequenceOf(item, index)` gives the sequence of
 * `items[index]`, undefined when unknown). node-llama-cpp gives each sequence its own KV stream, and llama.cpp then cuts a
 * batch into micro-batches ("equal split") that only take sequences with consecutive, increasing
 * ids in batch order: one token each of sequences 2, 0, 3, 1 costs two passes over the weights
 * ({2, 3} and {0, 1}); 0, 1, 2, 3 costs one.
 *
 * A batch with decode tokens and a prompt chunk: in sequence order, llama.cpp's first micro-batch takes
 * one token of every sequence, the prompt's included (decode rows + 1), and the chunk's rest follows. On
 * CPUs whose repacked matrix kernels work in blocks of 4 rows, every row outside a block costs a pass
 * over the weights of its own (see ROW_BLOCK, decode-row-padding.ts): one decode token plus a chunk's first token took about
 * twice a lone decode step. So when it leaves fewer rows outside blocks, the prompt goes first in the
 * batch, which keeps its sequence out of the decode tokens' micro-batch (llama.cpp only joins sequences
 * whose ids follow on from the previous one in batch order); and a chunk cut by the budget is cut to
 * leave none (docs/ENGINE-NOTES.md "Decode rows and prompt chunks").
 *
 * `generating(sequenceId, promptDone)` hears of every item of a known sequence that the batch takes to
 * decode one token (`promptDone` false) or to finish a prompt that generates (true): the latter's
 * sequence is decoding from the next batch on, before its first token has even been sampled.
 */
export function decodeFirstStrategy(
  maxDecodeTokens: number,
  record?: BatchRecorder,
  sequenceOf?: (item: BatchItem, index: number) => number | undefined,
  promptBudget?: (decodeTokens: number) => number,
  generating?: (sequenceId: number, promptDone: boolean) => void,
): CustomBatchingPrioritizationStrategy {
  return ({ items, size }) => {
    const result: PrioritizedBatchItem[] = [];
    const prompts: BatchItem[] = [];
    const decodeCap = maxDecodeTokens > 0 ? Math.min(maxDecodeTokens, size) : size;
    let decode = 0;
    for (const item of items) {
      if (item.tokens.length !== 1) prompts.push(item);
      else if (decode < decodeCap) {
        result.push({ item, processAmount: 1 });
        decode += 1;
      }
    }
    // Prompt tokens fill the room the decode tokens left, at most the step budget's worth (step-budget.ts).
    const room = size - decode;
    const budget = promptBudget?.(decode) ?? Infinity;
    // A chunk cut by the budget shares the decode micro-batch when its one row completes a block there.
    const cutShares = decode > 0 && outsideBlocks(decode + 1) === 0;
    const left = Math.min(room, budget);
    let promptTokens = 0;
    if (left > 0 && prompts.length > 0) {
      const taken = budget < room ? shortestFirst(prompts, left, cutShares ? 1 : 0) : evenShares(prompts, left);
      prompts.forEach((item, i) => {
        if (taken[i]! > 0) result.push({ item, processAmount: taken[i]! });
        promptTokens += taken[i]!;
      });
    }
    if (!sequenceOf) {
      record?.(decode, promptTokens, false, decode + (decode > 0 && promptTokens > 0 ? 1 : 0));
      return result;
    }
    const sequence = new Map<BatchItem, number>();
    let known = true;
    items.forEach((item, index) => {
      const id = sequenceOf(item, index);
      if (id === undefined) known = false;
      sequence.set(item, id ?? Number.MAX_SAFE_INTEGER);
    });
    const byId = (a: PrioritizedBatchItem, b: PrioritizedBatchItem) => sequence.get(a.item)! - sequence.get(b.item)!;
    const chunks = result.filter((p) => p.item.tokens.length !== 1);
    const apart = decode > 0 && known && chunks.length === 1 && !sharesDecodeMicroBatch(decode, chunks[0]!.processAmount);
    const arranged = apart ? promptsApart(result, sequence, byId) : undefined;
    record?.(decode, promptTokens, known, decode + (decode > 0 && promptTokens > 0 && !arranged ? 1 : 0));
    if (generating) {
      for (const { item, processAmount } of result) {
        const id = sequence.get(item)!;
        if (id === Number.MAX_SAFE_INTEGER) continue;
        if (item.tokens.length === 1) generating(id, false);
        else if (processAmount === item.tokens.length && item.logits[item.logits.length - 1]) generating(id, true);
      }
    }
    return arranged ?? result.sort(byId);
  };
}

/**
 * The batch with its prompt chunks first, then its decode tokens, each part in sequence order, when that
 * keeps the prompts' sequences out of the decode tokens' micro-batch: llama.cpp starts a micro-batch at the
 * first unused token and adds the sequence whose id is one more than the last one added, so the prompts'
 * run of consecutive ids must not be followed by a decoding sequence's id. Undefined otherwise.
 */
function promptsApart(result: readonly PrioritizedBatchItem[], sequence: ReadonlyMap<BatchItem, number>, byId: (a: PrioritizedBatchItem, b: PrioritizedBatchItem) => number): PrioritizedBatchItem[] | undefined {
  const prompts = result.filter((p) => p.item.tokens.length !== 1).sort(byId);
  const decodes = result.filter((p) => p.item.tokens.length === 1).sort(byId);
  const promptIds = new Set(prompts.map((p) => sequence.get(p.item)!));
  let end = sequence.get(prompts[0]!.item)!;
  while (promptIds.has(end + 1)) end += 1;
  if (decodes.some((p) => sequence.get(p.item) === end + 1)) return undefined;
  return [...prompts, ...decodes];
}

/**
 * Whether a prompt chunk of `chunkRows` should share the decode tokens' micro-batch (sequence order: one row there,
 * the rest after) rather than go apart: when that leaves no more rows outside blocks (ties: sequence order).
 */
export function sharesDecodeMicroBatch(decodeRows: number, chunkRows: number): boolean {
  return outsideBlocks(decodeRows + 1) + outsideBlocks(chunkRows - 1) <= outsideBlocks(decodeRows) + outsideBlocks(chunkRows);
}

/**
 * The most tokens up to `tokens` that fill whole row blocks once `sharedRows` of them (those in the decode
 * micro-batch) are set aside; `tokens` itself when that leaves less than a block. Rounding costs a chunk at most
 * 3 tokens where a block is no cheaper than its rows.
 */
export function inRowBlocks(tokens: number, sharedRows: number): number {
  const rounded = tokens - ((((tokens - sharedRows) % ROW_BLOCK) + ROW_BLOCK) % ROW_BLOCK);
  return rounded - sharedRows >= ROW_BLOCK ? rounded : tokens;
}

/** Even shares of `room` tokens, then what shorter prompts did not use goes to the others in queue order. */
function evenShares(prompts: readonly BatchItem[], room: number): number[] {
  let left = room;
  const share = Math.max(1, Math.floor(left / prompts.length));
  const taken = prompts.map((item) => Math.min(item.tokens.length, share));
  for (let i = 0; i < prompts.length && left > 0; i++) {
    taken[i] = Math.min(taken[i]!, left);
    left -= taken[i]!;
  }
  for (let i = 0; i < prompts.length && left > 0; i++) {
    const more = Math.min(prompts[i]!.tokens.length - taken[i]!, left);
    taken[i] = taken[i]! + more;
    left -= more;
  }
  return taken;
}

/**
 * `room` tokens to the prompts with the fewest tokens left first (queue order among equals): a prompt
 * already part-evaluated finishes before the next one starts, as vLLM's first-come order does for
 * prompts of one length, and a short prompt is not held behind a long one's chunks. A prompt that fits
 * is taken whole; the one cut is cut at whole row blocks (`inRowBlocks`, `sharedRows` of the chunk in
 * the decode micro-batch), unless that leaves it less than a block.
 */
function shortestFirst(prompts: readonly BatchItem[], room: number, sharedRows: number): number[] {
  const order = prompts.map((_, i) => i).sort((a, b) => prompts[a]!.tokens.length - prompts[b]!.tokens.length || a - b);
  const taken = prompts.map(() => 0);
  let left = room;
  for (const i of order) {
    if (left === 0) break;
    const rest = prompts[i]!.tokens.length;
    taken[i] = rest <= left ? rest : inRowBlocks(left, sharedRows);
    left = rest <= left ? left - rest : 0;
  }
  return taken;
}
