/**
 * A one-producer, one-consumer queue read as an async iterable, with backpressure: `push`
 * returns a promise while `highWaterMark` items wait unread, so a slow reader slows the writer
 * down instead of filling memory. The writer ends it with `close()` or `fail(error)` (the reader
 * sees the error after the items before it). When the reader stops early (`break`, `return()`),
 * `onCancel` runs once so the writer can stop too.
 */
export class AsyncChannel<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private head = 0;
  private closed = false;
  private failure: { error: unknown } | undefined;
  private reader: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;
  private space: { promise: Promise<void>; resolve: () => void } | undefined;
  private cancelled = false;
  private unbounded = false;

  constructor(
    private readonly highWaterMark: number,
    private readonly onCancel: () => void,
  ) {}

  /** Queues `item`; resolves-later only when the reader is `highWaterMark` items behind. Ignored once the reader left. */
  push(item: T): Promise<void> | undefined {
    if (this.cancelled || this.closed) return undefined;
    const reader = this.reader;
    if (reader) {
      this.reader = undefined;
      reader.resolve({ value: item, done: false });
      return undefined;
    }
    this.items.push(item);
    if (this.unbounded || this.items.length - this.head < this.highWaterMark) return undefined;
    if (!this.space) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.space = { promise, resolve };
    }
    return this.space.promise;
  }

  /**
   * Stops applying backpressure: a waiting `push` resolves and later ones never wait. For a writer
   * that must wind down (its request was stopped) although the reader is stalled.
   */
  unblock(): void {
    this.unbounded = true;
    this.releaseSpace();
  }

  /** No more items: the reader finishes after the queued ones. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.settleReader();
  }

  /** No more items: the reader gets `error` after the queued ones. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.failure = { error };
    this.closed = true;
    this.settleReader();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.items.length) {
      const value = this.items[this.head++]!;
      if (this.head === this.items.length) {
        this.items.length = 0;
        this.head = 0;
      }
      this.releaseSpace();
      return Promise.resolve({ value, done: false });
    }
    if (this.closed) return this.finished();
    return new Promise((resolve, reject) => (this.reader = { resolve, reject }));
  }

  async return(): Promise<IteratorResult<T>> {
    if (!this.cancelled && !this.closed) {
      this.cancelled = true;
      this.onCancel();
    }
    this.cancelled = true;
    this.items.length = 0;
    this.head = 0;
    this.releaseSpace();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  private finished(): Promise<IteratorResult<T>> {
    if (this.failure) {
      const { error } = this.failure;
      this.failure = undefined;
      return Promise.reject(error);
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  private settleReader(): void {
    const reader = this.reader;
    if (!reader) return;
    this.reader = undefined;
    this.finished().then((result) => reader.resolve(result), reader.reject);
  }

  private releaseSpace(): void {
    if (!this.space || (!this.cancelled && !this.unbounded && this.items.length - this.head >= this.highWaterMark)) return;
    const { resolve } = this.space;
    this.space = undefined;
    resolve();
  }
}
