/**
 * Scheduling for the ONNX engine's graph runs and sequences.
 * - `RunQueue` (in the graph thread, onnx-graph-worker.ts): one graph run at a time, first come first
 *   served. Every run already uses all the intra-op threads, so two at once only compete for the
 *   cores; and since a sequence queues its next run only after its previous one returned, the
 *   sequences waiting take turns (round robin): a long prompt's chunks alternate with the other
 *   sequences' decode steps.
 * - `SlotPool` (on the event loop): at most `capacity().sequences` generations hold a sequence; the
 *   rest wait in order.
 */
import type { CancelSignal } from "../../lib/cancellation.ts";

export class RunQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  /** Runs `job` after every job queued before it; its result or error is the returned promise's. */
  run<T>(job: () => Promise<T>): Promise<T> {
    this.waiting++;
    const result = this.tail.then(job);
    this.tail = result.then(
      () => this.waiting--,
      () => this.waiting--,
    );
    return result;
  }

  /** Jobs queued or running. */
  get length(): number {
    return this.waiting;
  }
}

interface Waiter {
  resolve: (leased: boolean) => void;
  signal: CancelSignal;
  onAbort: () => void;
}

export class SlotPool {
  private free: number;
  private readonly waiters: Waiter[] = [];

  constructor(readonly size: number) {
    this.free = size;
  }

  get available(): number {
    return this.free;
  }

  /** Resolves true once a slot is leased, false when `signal` aborts first (nothing leased). */
  acquire(signal: CancelSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        resolve,
        signal,
        onAbort: () => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(false);
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(): void {
    const waiter = this.waiters.shift();
    if (!waiter) {
      this.free++;
      return;
    }
    waiter.signal.removeEventListener("abort", waiter.onAbort);
    waiter.resolve(true);
  }
}
