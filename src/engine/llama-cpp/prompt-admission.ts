/**
 * Prompts that arrive together are evaluated together.
 *
 * node-llama-cpp dispatches a batch one event-loop turn after the first item is queued. Requests
 * that reach the server at the same moment reach the engine a few milliseconds apart (each is
 * parsed, checked and tokenized on its own), so the first prompt went into a batch alone and the
 * others into the next one, and the first stream, already decoding, then waited for all of their
 * prompts: with 8 simultaneous requests on the 150 MB test model its decode rate came out a fifth
 * below the others' (docs/ENGINE-NOTES.md "Prompts that arrive together").
 *
 * A request enters when it starts preparing its prompt (tokenizing, leasing a sequence, reusing a
 * cached prefix) and calls `ready()` when its input is ready to evaluate. `ready()` waits while
 * other entered requests are still preparing, at most `maxWaitMs` from the first waiter, and then
 * releases every waiter in the same turn, so their first steps share one batch. Nothing waits
 * when no other request is preparing (a lone request pays nothing), and a request waiting for a
 * free sequence does not count as preparing (`idle()`), so a full pool holds no one.
 */
export interface AdmissionTicket {
  /** The input is ready: resolves when it may be evaluated (at once, or with the others). */
  ready(): Promise<void> | undefined;
  /** Waiting for something other requests do not need (a free sequence): not counted until `resume()`. */
  idle(): void;
  resume(): void;
  /** Done (evaluating, failed, aborted); idempotent. */
  leave(): void;
}

export class PromptAdmission {
  private preparing = 0;
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Groups released together, the prompts that waited in them, the groups released by the time limit. */
  readonly stats = { groups: 0, waited: 0, timedOut: 0 };

  constructor(private readonly maxWaitMs = 20) {}

  enter(): AdmissionTicket {
    let state: "preparing" | "idle" | "done" = "preparing";
    this.preparing += 1;
    const stop = (next: "idle" | "done") => {
      if (state === "preparing") {
        this.preparing -= 1;
        if (this.preparing === 0) this.release(false);
      }
      state = next;
    };
    return {
      ready: () => {
        if (state !== "preparing") return undefined;
        stop("done");
        if (this.preparing === 0 && this.waiters.length === 0) return undefined;
        const wait = new Promise<void>((resolve) => this.waiters.push(resolve));
        this.timer ??= setTimeout(() => this.release(true), this.maxWaitMs);
        return wait;
      },
      idle: () => stop("idle"),
      resume: () => {
        if (state !== "idle") return;
        state = "preparing";
        this.preparing += 1;
      },
      leave: () => stop("done"),
    };
  }

  private release(timedOut: boolean): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const group = this.waiters;
    this.waiters = [];
    if (group.length === 0) return;
    this.stats.groups += 1;
    this.stats.waited += group.length;
    if (timedOut) this.stats.timedOut += 1;
    for (const resolve of group) resolve();
  }
}
