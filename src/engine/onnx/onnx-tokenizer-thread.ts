/**
 * The ONNX engine's tokenizer thread (onnx-tokenizer-worker.ts): @huggingface/tokenizers is pure
 * JavaScript and takes about 4 ms per KB of prompt text on 2 cores, more on long text (100 KB:
 * 0.8 s), which on the event loop would stall `/health` and every running stream
 * (docs/ENGINE-NOTES.md "ONNX engine batching"). The thread builds an OnnxTokenizer from the same
 * tokenizer.json and tokenizer_config.json as the engine's and encodes the text runs of large
 * prompts; the markers and images are put in on the event loop (onnx-tokenizer.ts), so the ids are
 * the same as inline. One thread per engine, started on the first large prompt; a thread that dies
 * is replaced on the next call. Started as the llama.cpp engine's tokenizer thread is
 * (docs/ENGINE-NOTES.md "Tokenizing off the event loop").
 */
import type { Worker } from "node:worker_threads";
import { startOnnxWorker } from "./onnx-thread-start.ts";

export interface OnnxTokenizerWorkerData {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

export interface OnnxTokenizerRequest {
  id: number;
  runs: string[];
}

export type OnnxTokenizerReply =
  | { type: "ready" }
  | { type: "ids"; id: number; ids: Uint32Array; lengths: number[] }
  | { type: "failed"; id: number; message: string };

interface Pending {
  resolve: (parts: Uint32Array[]) => void;
  reject: (error: Error) => void;
}

export class OnnxTokenizerThread {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  /** `tokenizer` is cloned into the thread when it starts (about 30 ms for Phi-3's 1 MB tokenizer.json). */
  constructor(private readonly tokenizer: OnnxTokenizerWorkerData) {}

  /** Whether a thread is running or starting. */
  isRunning(): boolean {
    return this.worker !== undefined;
  }

  /** Starts the thread (if it is not running); resolves once it has built its tokenizer. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the tokenizer thread is closed"));
    this.ready ??= this.spawn();
    return this.ready;
  }

  /** Each run's ids (`OnnxTokenizer.encodeRuns` in the thread); a `RunEncoder`. */
  readonly encodeRuns = async (runs: string[]): Promise<Uint32Array[]> => {
    await this.start();
    const worker = this.worker;
    // Closed (or died) while it started.
    if (!worker) throw new Error(this.closed ? "the tokenizer thread is closed" : "the tokenizer thread exited");
    const id = this.nextId++;
    return new Promise<Uint32Array[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref(); // an answer awaited keeps the process alive
      worker.postMessage({ id, runs } satisfies OnnxTokenizerRequest);
    });
  };

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.failPending(new Error("the tokenizer thread is closed"));
    await worker?.terminate();
  }

  private spawn(): Promise<void> {
    const worker = startOnnxWorker("onnx-tokenizer-worker", { tokenizerJson: this.tokenizer.tokenizerJson, tokenizerConfig: this.tokenizer.tokenizerConfig });
    worker.unref(); // idle, never what keeps the process alive
    this.worker = worker;
    return new Promise<void>((resolve, reject) => {
      worker.on("message", (reply: OnnxTokenizerReply) => {
        if (reply.type === "ready") resolve();
        else this.settle(reply);
      });
      const fail = (error: Error) => {
        if (this.worker === worker) {
          this.worker = undefined;
          this.ready = undefined; // the next call starts a new thread
        }
        if (this.closed) resolve(); // closed while it started: nothing failed
        else reject(error);
        this.failPending(error);
      };
      worker.on("error", fail);
      worker.on("exit", (code) => fail(new Error(`the tokenizer thread exited (code ${code})`)));
    });
  }

  private settle(reply: Extract<OnnxTokenizerReply, { id: number }>): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.type === "failed") {
      pending.reject(new Error(`tokenizing failed: ${reply.message}`));
      return;
    }
    const parts: Uint32Array[] = [];
    let at = 0;
    for (const length of reply.lengths) {
      parts.push(reply.ids.subarray(at, at + length));
      at += length;
    }
    pending.resolve(parts);
  }

  private failPending(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
