/**
 * A worker thread that tokenizes with the model's vocabulary (tokenizer-worker.ts): llama.cpp's
 * tokenizer is synchronous and takes about 1 µs per byte (a 520 KB prompt: 0.5 s on the Phi-3
 * vocabulary, 0.7 s on Phi-4-mini's), which on the event loop would stall `/health` and every
 * running stream. One thread serves the engine; a thread that dies is replaced on the next call.
 */
import { Worker } from "node:worker_threads";
export interface TokenizerWorkerData {
  modelPath: string;
}

export type TokenizerRequest = { type: "tokenize"; id: number; fragments: string[] } | { type: "close" };

/**
 * How long a closing thread gets to free its model before it is terminated. Terminated with its model
 * loaded, the thread aborted the whole process now and then ("terminate called after throwing an
 * instance of 'Napi::Error'", 2 closes in 10 on Node 24 with the prebuilt binary, none in 20 once
 * the model was freed first): the addon then frees the model in a finalizer while the thread's
 * environment is torn down, where, by node-llama-cpp's source, `~AddonModel` makes N-API calls that
 * throw on failure (docs/ENGINE-NOTES.md "Tokenizing off the event loop").
 */
const CLOSE_GRACE_MS = 5_000;

export type TokenizerReply =
  | { type: "ready" }
  | { type: "closed" }
  | { type: "log"; level: string; message: string }
  | { type: "tokens"; id: number; tokens: Uint32Array; lengths: number[] }
  | { type: "failed"; id: number; message: string };

interface Pending {
  resolve: (tokens: Uint32Array[]) => void;
  reject: (error: Error) => void;
}

export interface TokenizerThreadOptions {
  modelPath: string;
  /** Receives llama.cpp's warnings and errors from the thread. */
  log: (level: string, message: string) => void;
}

export class TokenizerThread {
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;
  private onClosed: (() => void) | undefined;

  constructor(private readonly options: TokenizerThreadOptions) {}

  /** Starts the thread (if it is not running); resolves once it has loaded the vocabulary. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the tokenizer thread is closed"));
    this.ready ??= this.spawn();
    return this.ready;
  }

  /** Each fragment's tokens, special-token parsing off (the fragments hold no marker: prompt-partition.ts). */
  async tokenize(fragments: string[]): Promise<Uint32Array[]> {
    await this.start();
    const worker = this.worker!;
    const id = this.nextId++;
    return new Promise<Uint32Array[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ type: "tokenize", id, fragments } satisfies TokenizerRequest);
    });
  }

  /**
   * Ends the thread: "freed" when it freed its model before it was terminated, "forced" when it did
   * not reply within CLOSE_GRACE_MS, "idle" when no thread was running.
   */
  async close(): Promise<"freed" | "forced" | "idle"> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.failPending(new Error("the tokenizer thread is closed"));
    if (!worker) return "idle";
    // The thread frees its model first (not its backend: llama.cpp's backend is the process's, shared
    // with the engine), then it is terminated; a thread still loading its vocabulary finishes first.
    const exited = new Promise<"forced">((resolve) => worker.once("exit", () => resolve("forced")));
    const handshake = (async () => {
      await this.ready?.catch(() => undefined);
      return new Promise<"freed">((resolve) => {
        this.onClosed = () => resolve("freed");
        worker.postMessage({ type: "close" } satisfies TokenizerRequest);
      });
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"forced">((resolve) => (timer = setTimeout(() => resolve("forced"), CLOSE_GRACE_MS)));
    const outcome = await Promise.race([handshake, exited, late]);
    clearTimeout(timer);
    this.onClosed = undefined;
    await worker.terminate();
    return outcome;
  }

  private spawn(): Promise<void> {
    const worker = startWorker({ modelPath: this.options.modelPath });
    worker.unref(); // never what keeps the process alive
    this.worker = worker;
    return new Promise<void>((resolve, reject) => {
      worker.on("message", (reply: TokenizerReply) => {
        if (reply.type === "ready") resolve();
        else if (reply.type === "closed") this.onClosed?.();
        else if (reply.type === "log") this.options.log(reply.level, reply.message);
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

  private settle(reply: Extract<TokenizerReply, { id: number }>): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (reply.type === "failed") {
      pending.reject(new Error(`tokenizing failed: ${reply.message}`));
      return;
    }
    const parts: Uint32Array[] = [];
    let at = 0;
    for (const length of reply.lengths) {
      parts.push(reply.tokens.subarray(at, at + length));
      at += length;
    }
    pending.resolve(parts);
  }

  private failPending(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

/**
 * Starts tokenizer-worker: the compiled `.js` beside this module, or, running from source under
 * tsx, the `.ts` entry behind a bootstrap that registers tsx first (Node 20 workers do not inherit
 * the parent's `--import tsx`, so a `.ts` entry would not load).
 */
function startWorker(workerData: TokenizerWorkerData): Worker {
  const fromSource = import.meta.url.endsWith(".ts");
  const entry = new URL(`./tokenizer-worker.${fromSource ? "ts" : "js"}`, import.meta.url);
  if (!fromSource) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
