/**
 * Writes every request's usage to the store without holding up responses, and waits for the
 * writes still in flight at shutdown, so a clean stop loses nothing.
 */
import type { Logger } from "pino";
import type { Store, UsageEntry } from "../store/store.ts";

export class UsageMeter {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly store: Pick<Store, "recordUsage"> | undefined,
    private readonly logger: Logger,
  ) {}

  record(entry: UsageEntry): void {
    if (!this.store) return;
    const write = this.store.recordUsage(entry).catch((error: unknown) => {
      this.logger.error({ event: "usage.write_failed", err: error, requestId: entry.requestId }, "usage not recorded");
    });
    this.pending.add(write);
    void write.finally(() => this.pending.delete(write));
  }

  async flush(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}
