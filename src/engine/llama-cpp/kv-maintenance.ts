/**
 * KV-cache edits between decode steps (docs/ENGINE-NOTES.md "KV-cache edits" has the measurements).
 *
 * KV-cache edits (erasing a sequence's stale tokens) need node-llama-cpp's context lock, which
 * its batch loop holds for as long as any sequence keeps queueing decodes: under continuous
 * load an edit would wait until every stream ends. So an edit is announced here, and generating
 * sequences hold their next step until it is done: the batch loop drains after the current
 * batch, the edit runs, and decoding resumes, costing the streams one step of delay, as a
 * llama-server slot update between batches does.
 */
export class KvMaintenance {
  /** The last announced edit (failures swallowed: a failed edit must not block the next). */
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private wake: () => void = () => undefined;
  private woken: Promise<void> = this.rearm();

  /**
   * @param undrainable whether the batch loop stays busy whatever the decoding sequences do: a prompt is queued
   *   part evaluated (chunked prefill), so pausing them would stall them without letting an edit run. They pause
   *   once it is done (docs/ENGINE-NOTES.md "KV-cache edits").
   */
  constructor(private readonly undrainable: () => boolean = () => false) {}

  /** An edit is announced and not finished, and a pause of the generating sequences lets it run: they should wait (`idle()`). */
  get isPending(): boolean {
    return this.pending > 0 && !this.undrainable();
  }

  /** What `undrainable` says may have changed (a prompt was queued): waiting sequences look again. */
  recheck(): void {
    if (this.pending > 0) this.wake();
  }

  /** Runs `edit` after the edits announced before it; the announcement holds decoding until it is done. */
  async run<T>(edit: () => Promise<T>): Promise<T> {
    this.pending += 1;
    const result = this.tail.then(edit);
    this.tail = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      this.pending -= 1;
    }
  }

  /** Called by generating sequences before a step: resolves once no edit is pending, or pausing no longer lets one run. */
  async idle(): Promise<void> {
    while (this.isPending) await Promise.race([this.tail, this.woken]);
  }

  private rearm(): Promise<void> {
    this.woken = new Promise<void>((resolve) => (this.wake = () => (this.rearm(), resolve())));
    return this.woken;
  }
}
