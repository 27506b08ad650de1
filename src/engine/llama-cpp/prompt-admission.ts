/**
 * Prompts that arrive together are evaluated together.
 *
 * node-llama-cpp dispatches a batch one event-loop turn after the first item is queued. Requests
 * that reach the server at the same moment reach the engine milliseconds apart (each is parsed,
 * rendered, counted, checked and tokenized in turn on one event loop), so the first prompt went
 * into a batch alone and the others into the next ones, and the first stream, already decoding,
 * then waited for all of their prompts (docs/ENGINE-NOTES.md "Prompts that arrive together").
 *
 * A request enters as soon as the serving layer has it (`Engine.expectGeneration`, before the prompt
 * is rendered) or, failing that, when `generate` starts, and calls `ready(windowMs)` when its input
 * is ready to evaluate. The first ready prompt opens a group: it is released when its window has
 * passed and no entered request is still on its way, or at the latest `limitMs` after it opened,
 * and every waiter goes in the same turn, so their first steps share one batch. Every prompt that
 * joins, and every request that arrives meanwhile, keeps the window open a window's length longer. The window is the
 * caller's: requests sent together arrive a millisecond or two apart and each is ready about as
 * fast, so without one nothing overlaps; the engine makes it a small part of what the prompt's own
 * evaluation will take, so a lone request pays a few per cent of its time to first token at most,
 * and nothing where prompts are cheap. A request waiting for something else (a free sequence, the scheduler's queue)
 * is not counted meanwhile (`idle()`), and when the time limit releases a group, whoever was still
 * on its way is not waited for again until it next resumes: a ticket that is never left (a bug)
 * costs one wait, not one per prompt.
 */
import type { ArrivalTicket } from "../engine.ts";

export interface AdmissionTicket extends ArrivalTicket {
  /**
   * The input is ready: undefined = evaluate now; otherwise when the promise resolves (with the others).
   * `windowMs`: how long a group this prompt opens waits for prompts that arrive after it.
   */
  ready(windowMs?: number): Promise<void> | undefined;
}

type State = "onTheWay" | "late" | "idle" | "done";

export class PromptAdmission {
  private readonly onTheWay = new Set<{ state: State }>();
  private waiters: (() => void)[] = [];
  /** When the open group's window closes (performance.now() time), and the widest window a prompt in it asked for. */
  private windowEnd = 0;
  private groupWindowMs = 0;
  private windowTimer: NodeJS.Timeout | undefined;
  private limitTimer: NodeJS.Timeout | undefined;
  private readonly issued = new WeakSet<ArrivalTicket>();
  /** Groups released together, the prompts that waited in them, the groups released by the time limit. */
  readonly stats = { groups: 0, waited: 0, timedOut: 0 };

  /** @param limitMs the longest the first prompt of a group waits, however many keep arriving. */
  constructor(
    private readonly limitMs = 50,
    private readonly now: () => number = () => performance.now(),
  ) {}

  enter(): AdmissionTicket {
    const ticket = { state: "onTheWay" as State };
    this.onTheWay.add(ticket);
    // An arrival while a group is open keeps its window open for one more window's length.
    if (this.waiters.length > 0) this.windowEnd = Math.max(this.windowEnd, this.now() + this.groupWindowMs);
    const stop = (next: State) => {
      if (ticket.state === "done") return false;
      this.onTheWay.delete(ticket);
      ticket.state = next;
      return true;
    };
    const issued: AdmissionTicket = {
      ready: (windowMs = 0) => {
        if (!stop("done")) return undefined;
        const window = Math.max(0, windowMs);
        if (this.waiters.length === 0) {
          if (this.onTheWay.size === 0 && window === 0) return undefined;
          this.windowEnd = this.groupWindowMs = 0;
          this.limitTimer = setTimeout(() => this.release(true), this.limitMs);
        }
        this.groupWindowMs = Math.max(this.groupWindowMs, window);
        this.windowEnd = Math.max(this.windowEnd, this.now() + window);
        const wait = new Promise<void>((resolve) => this.waiters.push(resolve));
        this.check();
        return wait;
      },
      idle: () => {
        if ((ticket.state === "onTheWay" || ticket.state === "late") && stop("idle")) this.check();
      },
      resume: () => {
        if (ticket.state !== "idle") return;
        ticket.state = "onTheWay";
        this.onTheWay.add(ticket);
      },
      leave: () => {
        if (stop("done")) this.check();
      },
    };
    this.issued.add(issued);
    return issued;
  }

  /** The ticket `enter()` gave for a request that now reaches the engine, to be carried on; undefined for any other. */
  adopt(ticket: ArrivalTicket | undefined): AdmissionTicket | undefined {
    return ticket && this.issued.has(ticket) ? (ticket as AdmissionTicket) : undefined;
  }

  /** Releases the open group once its window has passed and nobody is on the way. */
  private check(): void {
    if (this.waiters.length === 0 || this.onTheWay.size > 0) return;
    const left = this.windowEnd - this.now();
    if (left <= 0) return this.release(false);
    this.windowTimer ??= setTimeout(() => {
      this.windowTimer = undefined;
      this.check();
    }, left);
  }

  private release(timedOut: boolean): void {
    clearTimeout(this.windowTimer);
    clearTimeout(this.limitTimer);
    this.windowTimer = this.limitTimer = undefined;
    if (timedOut) {
      // Whoever is still on its way is late: not waited for again until it resumes from idle.
      for (const ticket of this.onTheWay) ticket.state = "late";
      this.onTheWay.clear();
    }
    const group = this.waiters;
    this.waiters = [];
    if (group.length === 0) return;
    this.stats.groups += 1;
    this.stats.waited += group.length;
    if (timedOut) this.stats.timedOut += 1;
    for (const resolve of group) resolve();
  }
}

/** The longest a ready prompt waits for prompts that arrive after it, and its share of the prompt's own evaluation time. */
const GATHER_MAX_MS = 20;
const GATHER_SHARE = 0.05;

/**
 * How long a prompt of `tokens` holds its group open for later arrivals (docs/ENGINE-NOTES.md "Prompts that
 * arrive together"): 5 % of what evaluating it is expected to take, at most 20 ms; 0 until a prompt was timed.
 */
export function gatherWindowMs(tokens: number, promptTokenMs: number): number {
  return Math.min(GATHER_MAX_MS, GATHER_SHARE * tokens * promptTokenMs);
}
