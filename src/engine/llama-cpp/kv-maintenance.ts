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

  /** An edit is announced and not finished: generating sequences should wait (`idle()`). */
  get isPending(): boolean {
    return this.pending > 0;
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

  /** Called by generating sequences before a step: resolves once no edit is pending. */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.tail;
  }
}
