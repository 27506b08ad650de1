/**
 * When a chat request must stop early, and why: the client went away, its deadline passed, or the
 * server's drain timeout ran out. One cancellation signal for the run; `explain` turns the way it
 * ended into the error the client is owed (504 for the deadline, 503 for the shutdown).
 */
import { AppError } from "../errors/app-error.ts";
import { Cancellation, type CancelSignal } from "../lib/cancellation.ts";

export type EndReason = "client" | "deadline" | "shutdown";

export class RequestLifetime {
  private readonly cancellation = new Cancellation();
  private reason: EndReason | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly onClient = () => this.end("client", "the client went away");
  private readonly onShutdown = () => this.end("shutdown", "the server is shutting down");

  /** `deadlineAt` is `performance.now()` milliseconds. */
  constructor(
    private readonly client: CancelSignal,
    deadlineAt: number | undefined,
    private readonly shutdown: CancelSignal,
  ) {
    if (deadlineAt !== undefined) {
      this.timer = setTimeout(() => this.end("deadline", "the request timed out"), Math.max(0, deadlineAt - performance.now()));
    }
    if (client.aborted) this.onClient();
    else client.addEventListener("abort", this.onClient, { once: true });
    if (shutdown.aborted) this.onShutdown();
    else shutdown.addEventListener("abort", this.onShutdown, { once: true });
  }

  /** Aborted when the request must stop, for whichever reason came first. */
  get signal(): CancelSignal {
    return this.cancellation;
  }

  /** Why the request was stopped, if it was. */
  endReason(): EndReason | undefined {
    return this.reason;
  }

  /** Stops the request on the client's behalf (e.g. the reader of a stream left). */
  cancel(why: string): void {
    this.end("client", why);
  }

  /**
   * The error a request that ended with `error` (or with none) should report: the stop reason's
   * own error when it was stopped, otherwise `error` itself.
   */
  explain(error: unknown): unknown {
    switch (this.reason) {
      case "deadline":
        return error instanceof AppError && error.code === "GENERATION_TIMEOUT" ? error : new AppError("GENERATION_TIMEOUT", "The request did not complete within the server's request timeout.");
      case "shutdown":
        return new AppError("OVERLOADED", "The server is shutting down; retry on another replica.", { retryAfterSeconds: 1 });
      case "client":
        return new AppError("CLIENT_CLOSED", "The client closed the connection before the response was complete.");
      default:
        return error ?? new AppError("INTERNAL", "The server had an error processing the request.");
    }
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.client.removeEventListener("abort", this.onClient);
    this.shutdown.removeEventListener("abort", this.onShutdown);
  }

  private end(reason: EndReason, message: string): void {
    if (this.reason) return;
    this.reason = reason;
    this.cancellation.abort(new Error(message));
  }
}
