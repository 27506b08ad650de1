/**
 * Admission and fairness in front of the engine. The engine has `slots` sequences; a request
 * needs one per choice. Requests that cannot start wait in per-tenant queues (a tenant is an API
 * key or token subject) served round-robin, so one tenant's hundred requests cannot starve
 * another's one. Beyond `maxQueue` waiting requests, or while draining, admission fails with
 * OVERLOADED (503 + retry-after); a deadline that passes in the queue gives GENERATION_TIMEOUT.
 */
import { AppError } from "../errors/app-error.ts";
import type { CancelSignal } from "../lib/cancellation.ts";

export interface SchedulerOptions {
  /** Sequences available (the engine's `parallel`). */
  slots: number;
  /** Requests allowed to wait; more → 503. */
  maxQueue: number;
}

export interface AdmitRequest {
  tenant: string;
  /** Sequences needed (the request's `n`). */
  slots: number;
  /** Aborting leaves the queue (client gone). */
  signal: CancelSignal;
  /** Absolute time (ms, `now()` clock) after which waiting gives up with 504. */
  deadlineAt?: number | undefined;
}

export interface Admission {
  /** Milliseconds spent waiting in the queue. */
  readonly queuedMs: number;
  /** Returns the slots; safe to call more than once. */
  release(): void;
}

interface Waiter {
  request: AdmitRequest;
  enqueuedAt: number;
  resolve: (admission: Admission) => void;
  reject: (error: unknown) => void;
  cleanup: () => void;
}

export interface SchedulerStats {
  busySlots: number;
  queued: number;
  admitted: number;
  rejected: number;
}

export class AdmissionScheduler {
  private busy = 0;
  private draining = false;
  private readonly queues = new Map<string, Waiter[]>();
  /** Round-robin order of tenants with waiters; the head is served next. */
  private readonly ring: string[] = [];
  private queuedCount = 0;
  private admittedCount = 0;
  private rejectedCount = 0;
  /** Smoothed time a request holds its slots, for retry-after estimates. */
  private holdMsEstimate = 1000;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: SchedulerOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (options.slots < 1) throw new Error("slots must be ≥ 1");
  }

  stats(): SchedulerStats {
    return { busySlots: this.busy, queued: this.queuedCount, admitted: this.admittedCount, rejected: this.rejectedCount };
  }

  admit(request: AdmitRequest): Promise<Admission> {
    const slots = Math.min(Math.max(1, request.slots), this.options.slots);
    const normalized = { ...request, slots };
    if (this.draining) return Promise.reject(this.overloaded("The server is shutting down; retry on another replica."));
    if (request.signal.aborted) return Promise.reject(request.signal.reason);
    if (this.queuedCount === 0 && this.busy + slots <= this.options.slots) return Promise.resolve(this.grant(normalized, this.now()));
    if (this.queuedCount >= this.options.maxQueue) return Promise.reject(this.overloaded("The server is at capacity: too many requests are waiting."));
    return new Promise<Admission>((resolve, reject) => this.enqueue(normalized, resolve, reject));
  }

  /** Stops admitting: queued requests get 503; in-flight ones continue. */
  drain(): void {
    this.draining = true;
    for (const tenant of [...this.ring]) {
      for (const waiter of this.queues.get(tenant) ?? []) {
        waiter.cleanup();
        waiter.reject(this.overloaded("The server is shutting down; retry on another replica."));
      }
    }
    this.queues.clear();
    this.ring.length = 0;
    this.queuedCount = 0;
  }

  /** Resolves when no slot is busy. */
  whenIdle(): Promise<void> {
    if (this.busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private enqueue(request: AdmitRequest, resolve: (a: Admission) => void, reject: (e: unknown) => void): void {
    const waiter: Waiter = { request, enqueuedAt: this.now(), resolve, reject, cleanup: () => {} };
    const onAbort = () => this.remove(waiter, request.signal.reason);
    request.signal.addEventListener("abort", onAbort, { once: true });
    const timer = request.deadlineAt === undefined ? undefined : setTimeout(() => this.remove(waiter, timeoutError()), Math.max(0, request.deadlineAt - this.now()));
    waiter.cleanup = () => {
      request.signal.removeEventListener("abort", onAbort);
      if (timer) clearTimeout(timer);
    };
    let queue = this.queues.get(request.tenant);
    if (!queue) {
      queue = [];
      this.queues.set(request.tenant, queue);
      this.ring.push(request.tenant);
    }
    queue.push(waiter);
    this.queuedCount += 1;
  }

  private remove(waiter: Waiter, reason: unknown): void {
    const queue = this.queues.get(waiter.request.tenant);
    const at = queue?.indexOf(waiter) ?? -1;
    if (!queue || at === -1) return;
    queue.splice(at, 1);
    this.queuedCount -= 1;
    if (queue.length === 0) this.dropTenant(waiter.request.tenant);
    waiter.cleanup();
    waiter.reject(reason);
    this.dispatch(); // a large request leaving the head may let smaller ones start
  }

  private dropTenant(tenant: string): void {
    this.queues.delete(tenant);
    const at = this.ring.indexOf(tenant);
    if (at !== -1) this.ring.splice(at, 1);
  }

  /** Admits waiters round-robin across tenants while their slots fit. */
  private dispatch(): void {
    while (this.ring.length > 0) {
      const tenant = this.ring[0]!;
      const queue = this.queues.get(tenant)!;
      const head = queue[0]!;
      if (this.busy + head.request.slots > this.options.slots) return; // strict order: no overtaking a large request
      queue.shift();
      this.queuedCount -= 1;
      this.ring.shift();
      if (queue.length > 0) this.ring.push(tenant);
      else this.queues.delete(tenant);
      head.cleanup();
      head.resolve(this.grant(head.request, head.enqueuedAt));
    }
  }

  private grant(request: AdmitRequest, enqueuedAt: number): Admission {
    this.busy += request.slots;
    this.admittedCount += 1;
    const admittedAt = this.now();
    let released = false;
    return {
      queuedMs: admittedAt - enqueuedAt,
      release: () => {
        if (released) return;
        released = true;
        this.busy -= request.slots;
        this.holdMsEstimate = 0.8 * this.holdMsEstimate + 0.2 * (this.now() - admittedAt);
        this.dispatch();
        if (this.busy === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      },
    };
  }

  private overloaded(message: string): AppError {
    this.rejectedCount += 1;
    // Waiting requests ahead, spread over the slots, each holding a slot about holdMsEstimate.
    const seconds = ((this.queuedCount + 1) * this.holdMsEstimate) / this.options.slots / 1000;
    return new AppError("OVERLOADED", message, { retryAfterSeconds: Math.max(1, seconds) });
  }
}

function timeoutError(): AppError {
  return new AppError("GENERATION_TIMEOUT", "The request timed out waiting for a free sequence.");
}
