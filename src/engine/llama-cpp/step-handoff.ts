/**
 * The batch loop waits for the decoding sequences' next steps before it builds the next batch
 * (docs/ENGINE-NOTES.md "The next batch waits for the decoding streams").
 *
 * node-llama-cpp's batch loop builds the next batch as soon as a batch's tokens are sampled, while
 * the sequences that received them are still on their way to asking for the next one (a few
 * microtasks, a decode-gate turn). When nothing else is queued the loop ends and their steps start
 * the next batch together; but when a prompt is still queued (chunked prefill, a prompt longer than
 * the batch) the next batch is built from the prompt alone, and every decoding stream waits a whole
 * prompt batch for its next token: with `--max-step-ms` half the batches carried no decode token at
 * all, so each token took two steps.
 *
 * So a batch item that samples a token (a decode step, or a prompt's last chunk) gets an
 * after-batch action: when something else is still queued and the sequence has not queued its next
 * step yet, the loop waits until it has, or until its generation ends, or at most `capMs()`
 * (a consumer that is slow or gone costs one short wait, never a stall).
 */

export interface StepHandoffOptions {
  /** Whether the context's queue holds anything, and whether it holds an item of `sequenceId`. */
  queue: () => { size: number; has: (sequenceId: number) => boolean };
  /** Longest wait for one sequence (ms). */
  capMs: () => number;
  /** The generating sequences hold their next steps for a KV-cache edit now (kv-maintenance.ts): nobody to wait for. */
  paused?: () => boolean;
}

export interface StepHandoffStats {
  /** Waits that ended with the sequence's next step queued. */
  handedOff: number;
  /** Waits that ended because the generation ended. */
  ended: number;
  /** Waits that ran out. */
  timedOut: number;
}

export class StepHandoff {
  private readonly waiting = new Map<number, (how: keyof StepHandoffStats) => void>();
  readonly stats: StepHandoffStats = { handedOff: 0, ended: 0, timedOut: 0 };

  constructor(private readonly options: StepHandoffOptions) {}

  /**
   * The batch that carried a token-sampling item of `sequenceId` is done and the token handed over;
   * undefined when the loop need not wait (nothing else queued: the loop ends and the next steps start
   * a batch of their own; or the sequence's next step is queued already).
   */
  afterBatch(sequenceId: number): Promise<void> | undefined {
    const queue = this.options.queue();
    if (queue.size === 0 || queue.has(sequenceId) || this.waiting.has(sequenceId) || this.options.paused?.()) return undefined;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => end("timedOut"), this.options.capMs());
      const end = (how: keyof StepHandoffStats) => {
        clearTimeout(timer);
        this.waiting.delete(sequenceId);
        this.stats[how] += 1;
        resolve();
      };
      this.waiting.set(sequenceId, end);
    });
  }

  /** `sequenceId` queued an item (its next step). */
  queued(sequenceId: number): void {
    this.waiting.get(sequenceId)?.("handedOff");
  }

  /** `sequenceId`'s generation ended: it queues nothing more. */
  ended(sequenceId: number): void {
    this.waiting.get(sequenceId)?.("ended");
  }
}
