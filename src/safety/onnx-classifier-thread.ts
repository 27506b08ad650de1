/**
 * The ONNX classifier's thread (onnx-classifier-worker.ts): tokenizing is pure JavaScript and an
 * ONNX Runtime run holds the thread that makes it, tens of milliseconds per window for a
 * DeBERTa-size model on CPU, so both happen here rather than on the server's event loop
 * (docs/SAFETY.md "ONNX classifier"). One thread per classifier, started by `start()`; texts are
 * classified one after another in arrival order. A thread that dies fails what it held and is
 * replaced on the next call; `close()` ends it.
 */
import { Worker } from "node:worker_threads";
import type { OnnxClassifierSpec, WindowLogits } from "./onnx-classifier-runner.ts";

export type OnnxClassifierRequest = { type: "classify"; id: number; text: string } | { type: "cancel"; id: number } | { type: "close" };

export type OnnxClassifierReply =
  | { type: "ready" }
  | { type: "loadFailed"; message: string }
  | { type: "logits"; id: number; logits: Float32Array; windows: number }
  | { type: "failed"; id: number; message: string };

interface Pending {
  resolve: (result: WindowLogits) => void;
  reject: (error: Error) => void;
}

/** How long close() lets the thread finish its run and release its session before terminating it. */
const CLOSE_GRACE_MS = 5000;

export class OnnxClassifierThread {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private exited: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  constructor(private readonly spec: OnnxClassifierSpec) {}

  /** Whether a thread is running or starting. */
  isRunning(): boolean {
    return this.worker !== undefined;
  }

  /** Starts the thread (if it is not running); resolves once it has loaded the model, rejects when it cannot. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the ONNX classifier is closed"));
    this.ready ??= this.spawn();
    return this.ready;
  }

  /** The text's window logits; `signal` rejects at once with its reason and drops the text's remaining runs. */
  async logits(text: string, signal: AbortSignal): Promise<WindowLogits> {
    signal.throwIfAborted();
    await this.start();
    signal.throwIfAborted();
    const worker = this.worker;
    if (this.closed) throw new Error("the ONNX classifier is closed");
    if (!worker) throw new Error("the ONNX classifier thread exited");
    const id = this.nextId++;
    return new Promise<WindowLogits>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        this.idleCheck();
        this.worker?.postMessage({ type: "cancel", id } satisfies OnnxClassifierRequest);
        reject(signal.reason instanceof Error ? signal.reason : new Error("the ONNX classifier was aborted"));
      };
      const done = <T>(settle: (value: T) => void) => (value: T) => {
        signal.removeEventListener("abort", onAbort);
        settle(value);
      };
      this.pending.set(id, { resolve: done(resolve), reject: done(reject) });
      signal.addEventListener("abort", onAbort, { once: true });
      worker.ref(); // an answer awaited keeps the process alive
      worker.postMessage({ type: "classify", id, text } satisfies OnnxClassifierRequest);
    });
  }

  /** Fails what is pending, lets the thread release its session, and resolves once it has exited. */
  async close(): Promise<void> {
    this.closed = true;
    this.failPending(new Error("the ONNX classifier is closed"));
    const worker = this.worker;
    if (!worker) return;
    worker.ref(); // until it has exited
    worker.postMessage({ type: "close" } satisfies OnnxClassifierRequest);
    const timer = setTimeout(() => void worker.terminate(), CLOSE_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  private spawn(): Promise<void> {
    const worker = startWorker(this.spec); // referenced while it loads: start() is awaited
    this.worker = worker;
    let markExited!: () => void;
    this.exited = new Promise<void>((resolve) => (markExited = resolve));
    return new Promise<void>((resolve, reject) => {
      let loadError: Error | undefined;
      worker.on("message", (reply: OnnxClassifierReply) => {
        if (reply.type === "ready") {
          this.idleCheck(); // idle, never what keeps the process alive
          resolve();
        }
        else if (reply.type === "loadFailed") loadError = new Error(reply.message);
        else this.settle(reply);
      });
      const fail = (error: Error) => {
        if (this.worker === worker) {
          this.worker = undefined;
          this.ready = undefined; // the next call starts a new thread
        }
        if (this.closed) resolve(); // closed while it started: nothing failed
        else reject(loadError ?? error);
        this.failPending(this.closed ? new Error("the ONNX classifier is closed") : error);
      };
      worker.on("error", fail);
      worker.on("exit", (code) => {
        fail(new Error(`the ONNX classifier thread exited (code ${code})`));
        markExited();
      });
    });
  }

  private settle(reply: Extract<OnnxClassifierReply, { id: number }>): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return; // aborted meanwhile
    this.pending.delete(reply.id);
    this.idleCheck();
    if (reply.type === "failed") pending.reject(new Error(`the ONNX classifier failed: ${reply.message}`));
    else pending.resolve({ logits: reply.logits, windows: reply.windows });
  }

  private idleCheck(): void {
    if (this.pending.size === 0) this.worker?.unref();
  }

  private failPending(error: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.idleCheck();
    for (const p of pending) p.reject(error);
  }
}

/**
 * Starts onnx-classifier-worker: the compiled `.js` beside this module, or, running from source
 * under tsx, the `.ts` entry behind a bootstrap that registers tsx first (Node 20 workers do not
 * inherit the parent's `--import tsx`; docs/ENGINE-NOTES.md "Tokenizing off the event loop").
 */
function startWorker(workerData: OnnxClassifierSpec): Worker {
  const fromSource = import.meta.url.endsWith(".ts");
  const entry = new URL(`./onnx-classifier-worker.${fromSource ? "ts" : "js"}`, import.meta.url);
  if (!fromSource) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
