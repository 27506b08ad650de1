/**
 * A fixed pool of context sequences, created once at load (sequences are returned
 * asynchronously by node-llama-cpp on dispose, so we never dispose them: we lease them).
 * Waiters are served first-in, first-out; an aborted waiter leaves the queue.
 */
import { AppError } from "../../errors/app-error.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";

export class SequencePool<T> {
  private readonly free: T[];
  private readonly waiters: { resolve: (item: T) => void; reject: (e: unknown) => void; signal: CancelSignal; onAbort: () => void }[] = [];

  constructor(items: readonly T[]) {
    this.free = [...items];
  }

  get available(): number {
    return this.free.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Leases a free item, preferring the highest `score` (e.g. the sequence whose cached tokens
   * share the longest prefix with the new prompt); waits first-in, first-out when none is free.
   */
  acquire(signal: CancelSignal, score?: (item: T) => number): Promise<T> {
    if (this.free.length > 0) {
      let best = this.free.length - 1;
      if (score) {
        let bestScore = -Infinity;
        this.free.forEach((candidate, i) => {
          const value = score(candidate);
          if (value > bestScore) [best, bestScore] = [i, value];
        });
      }
      return Promise.resolve(this.free.splice(best, 1)[0]!);
    }
    return new Promise<T>((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(signal.reason ?? new AppError("INTERNAL", "aborted"));
        },
      };
      if (signal.aborted) return waiter.onAbort();
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(item: T): void {
    const waiter = this.waiters.shift();
    if (!waiter) {
      this.free.push(item);
      return;
    }
    waiter.signal.removeEventListener("abort", waiter.onAbort);
    waiter.resolve(item);
  }
}
