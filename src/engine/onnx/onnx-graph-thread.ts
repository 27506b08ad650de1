/**
 * The ONNX engine's graph thread (onnx-graph-worker.ts). onnxruntime-node's `InferenceSession.run`
 * is synchronous on the thread that calls it (1.30: a setImmediate, then the native run), so on the
 * event loop every vision-encoder run, prefill chunk and decode step would stall `/health`, every
 * other stream and admission for as long as it runs (docs/ENGINE-NOTES.md "ONNX engine batching").
 * The thread owns the three sessions and every sequence's KV cache; the event loop keeps the
 * tokenizer, the sampler and the streams, and sends the thread a prompt's ids and images (`prefill`)
 * or one chosen token (`step`). Only the last position's logits come back, written into the
 * sequence's shared buffer: one row per step, never the prompt's `[n, vocab]` logits or a cache.
 *
 * One thread per engine, started by load() and ended by close(). A thread that dies fails the calls
 * waiting on it with ENGINE_UNAVAILABLE and tells the engine, which then reports not ready (the next
 * request loads it again). Idle, the thread never keeps the process alive.
 */
import type { Worker } from "node:worker_threads";
import type { EngineImage } from "../engine.ts";
import { AppError } from "../../errors/app-error.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";
import type { OnnxGraphSpec } from "./onnx-graphs.ts";
import { startOnnxWorker } from "./onnx-thread-start.ts";

export interface OnnxGraphWorkerData {
  model: OnnxGraphSpec;
  /** onnxruntime intra-op threads. */
  threads: number;
  contextSize: number;
  /** Prompt positions per decoder run while evaluating a prompt. */
  batchSize: number;
}

/** What the thread read from the graphs at load. */
export interface OnnxGraphFacts {
  layers: number;
  /** The decoder's logits per position, when the graph declares it. */
  logitsSize: number | undefined;
}

/** Where a prompt's evaluation spent its time in the thread, in ms (graph runs only, not the wait between them). */
export interface PrefillTimings {
  visionMs: number;
  embedMs: number;
  decodeMs: number;
}

/** The pixels and shape of an image, as the thread needs them (no other field is cloned). */
export type GraphImage = Pick<EngineImage, "pixelValues" | "crops" | "imageSize" | "tokens">;

export type OnnxGraphRequest =
  /** Evaluates a prompt into a new sequence (image positions negative, images in prompt order); logits go to `logits`. */
  | { type: "prefill"; id: number; seq: number; ids: Int32Array; images: GraphImage[]; logits: SharedArrayBuffer }
  /** Evaluates one generated token in a sequence. */
  | { type: "step"; id: number; seq: number; token: number }
  /** Drops a sequence (and any run of it still waiting). */
  | { type: "free"; seq: number }
  /** Finishes the run in progress, drops every sequence and releases the sessions. */
  | { type: "close"; id: number };

export type OnnxGraphReply =
  | { type: "ready"; facts: OnnxGraphFacts }
  | { type: "loadFailed"; message: string }
  /** The sequence's logits buffer holds the last position's logits. */
  | { type: "logits"; id: number; timings?: PrefillTimings }
  | { type: "failed"; id: number; message: string }
  | { type: "closed"; id: number };

/** A sequence in the thread: its id and the buffer its last position's logits are written to. */
export interface GraphSequence {
  readonly id: number;
  readonly logits: Float32Array;
}

/** Settles a call: with the thread's answer, an error, or undefined when it is no longer awaited (aborted, freed). */
interface Pending {
  seq: number | undefined;
  settle: (reply: Extract<OnnxGraphReply, { id: number }> | Error | undefined) => void;
}

export class OnnxGraphThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private nextSeq = 0;
  /** Calls awaiting the thread: while any, the worker is ref'd (an awaited answer keeps the process alive). */
  private awaited = 0;
  /** Set once the thread was closed or died: every later call fails with it. */
  private stopped: AppError | undefined;
  private started = false;
  private readonly loaded: Promise<OnnxGraphFacts>;
  private failLoad: (error: Error) => void = () => undefined;
  private readonly exited: Promise<void>;

  /** Starts the thread, which loads the graphs; `onDied` is told if it stops later without close(). */
  constructor(
    data: OnnxGraphWorkerData,
    private readonly onDied: (error: Error) => void,
  ) {
    this.worker = startOnnxWorker("onnx-graph-worker", data);
    this.hold();
    let loadedWith!: (facts: OnnxGraphFacts) => void;
    this.loaded = new Promise((resolve, reject) => {
      loadedWith = resolve;
      this.failLoad = reject;
    });
    this.loaded.catch(() => undefined); // load() reports it
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
    this.worker.on("message", (reply: OnnxGraphReply) => {
      if (reply.type === "ready") {
        this.started = true;
        this.letGo();
        loadedWith(reply.facts);
      } else if (reply.type === "loadFailed") {
        this.stop(new Error(reply.message));
        void this.worker.terminate();
      } else {
        this.pending.get(reply.id)?.settle(reply);
      }
    });
    this.worker.on("error", (error) => this.stop(error));
    this.worker.on("exit", (code) => this.stop(new Error(`the ONNX Runtime thread exited (code ${code})`)));
  }

  /** Resolves once the graphs are loaded in the thread; rejects with why they could not be. */
  ready(): Promise<OnnxGraphFacts> {
    return this.loaded;
  }

  /** A new sequence with room for `logitsSize` logits (nothing is sent to the thread until its prefill). */
  open(logitsSize: number): GraphSequence {
    return { id: this.nextSeq++, logits: new Float32Array(new SharedArrayBuffer(logitsSize * Float32Array.BYTES_PER_ELEMENT)) };
  }

  /**
   * Evaluates `ids` (images in prompt order) into `seq`; resolves with the runs' timings once
   * `seq.logits` holds the last position's, or undefined when `signal` aborted first (the sequence is
   * then freed). Pixels are copied into the thread unless they are in a SharedArrayBuffer.
   */
  async prefill(seq: GraphSequence, ids: readonly number[], images: readonly GraphImage[], signal: CancelSignal): Promise<PrefillTimings | undefined> {
    const packed = Int32Array.from(ids);
    const sent = images.map(({ pixelValues, crops, imageSize, tokens }) => ({ pixelValues, crops, imageSize, tokens }));
    const reply = await this.call({ type: "prefill", id: this.nextId++, seq: seq.id, ids: packed, images: sent, logits: seq.logits.buffer as SharedArrayBuffer }, seq, signal, [packed.buffer]);
    return reply?.timings ?? (reply ? { visionMs: 0, embedMs: 0, decodeMs: 0 } : undefined);
  }

  /** Evaluates `token` at the end of `seq`: true once `seq.logits` holds the next logits, false when `signal` aborted first. */
  async step(seq: GraphSequence, token: number, signal: CancelSignal): Promise<boolean> {
    return (await this.call({ type: "step", id: this.nextId++, seq: seq.id, token }, seq, signal)) !== undefined;
  }

  /** Drops `seq` in the thread (its KV cache, and its run if one still waits); a call of it still waiting resolves as aborted. */
  free(seq: GraphSequence): void {
    for (const pending of [...this.pending.values()]) if (pending.seq === seq.id) pending.settle(undefined);
    if (!this.stopped) this.worker.postMessage({ type: "free", seq: seq.id } satisfies OnnxGraphRequest);
  }

  /** Fails the calls waiting, lets the run in progress finish, releases the sessions and ends the thread. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stop("closed");
    if (this.started) {
      this.hold();
      const id = this.nextId++;
      const closed = new Promise<void>((resolve) => this.pending.set(id, { seq: undefined, settle: () => resolve() }));
      this.worker.postMessage({ type: "close", id } satisfies OnnxGraphRequest);
      await Promise.race([closed, this.exited]);
      this.pending.delete(id);
    }
    await this.worker.terminate();
  }

  private call(message: Extract<OnnxGraphRequest, { id: number }>, seq: GraphSequence, signal: CancelSignal, transfer: ArrayBuffer[] = []): Promise<Extract<OnnxGraphReply, { type: "logits" }> | undefined> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (signal.aborted) return Promise.resolve(undefined);
    const { id } = message;
    return new Promise((resolve, reject) => {
      const settle = (reply: Extract<OnnxGraphReply, { id: number }> | Error | undefined) => {
        this.pending.delete(id);
        signal.removeEventListener("abort", onAbort);
        this.letGo();
        if (reply instanceof Error) reject(reply);
        else if (reply?.type === "failed") reject(new Error(reply.message));
        else resolve(reply?.type === "logits" ? reply : undefined);
      };
      // Aborted: the answer is not awaited, and the thread drops the sequence after the run in progress.
      const onAbort = () => this.free(seq);
      this.pending.set(id, { seq: seq.id, settle });
      signal.addEventListener("abort", onAbort, { once: true });
      this.hold();
      this.worker.postMessage(message, transfer);
    });
  }

  /** Marks the thread stopped and fails every call waiting; a thread that died (not closed) is reported. */
  private stop(cause: Error | "closed"): void {
    if (this.stopped) return;
    this.stopped = cause === "closed"
      ? new AppError("ENGINE_UNAVAILABLE", "The model was unloaded.", { retryAfterSeconds: 5 })
      : new AppError("ENGINE_UNAVAILABLE", `The model's ONNX Runtime thread stopped (${cause.message}); retry shortly.`, { retryAfterSeconds: 5 });
    for (const pending of [...this.pending.values()]) pending.settle(this.stopped);
    if (!this.started) {
      this.failLoad(cause === "closed" ? new Error("the ONNX engine was closed while it loaded") : cause);
      this.letGo();
    } else if (cause !== "closed") {
      this.onDied(cause);
    }
  }

  private hold(): void {
    if (this.awaited++ === 0) this.worker.ref();
  }

  private letGo(): void {
    if (--this.awaited === 0) this.worker.unref();
  }
}
