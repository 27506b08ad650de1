/**
 * The replicas of one remote deployment and which one takes the next request
 * (docs/REMOTE.md "Routing, health and ejection"):
 * - least outstanding requests among the available replicas (ties: round robin), as Envoy's
 *   LEAST_REQUEST balancer and vLLM's router do: a replica stuck on long generations gets fewer;
 * - active health checks: `GET {base}/models` every `healthCheckIntervalMs`; a failed check takes the
 *   replica out, a passing one brings it back (and, as Envoy's `successful_active_health_check_uneject_host`,
 *   un-ejects it);
 * - passive outlier detection (Envoy's consecutive-5xx): `consecutiveFailures` failed attempts in a row
 *   eject a replica for `baseEjectionMs × 2^(k−1)` (k: its ejections so far, capped at `maxEjectionMs`);
 *   it is re-admitted when that time has passed; each later passing health check forgets one ejection;
 * - when no replica is available, every replica not yet tried is (Envoy's panic mode): a request is
 *   never refused on stale health alone.
 */
import type { Logger } from "pino";

export interface ReplicaSettings {
  /** OpenAI base URL, e.g. `http://gpu1:8000/v1`: `{url}/chat/completions`, `{url}/models`. */
  url: string;
  /** The credential sent upstream (read from the environment by the CLI); never logged. */
  apiKey?: string | undefined;
  /** How the credential travels: `Authorization: Bearer` (default) or Azure's `api-key` header. */
  header?: "bearer" | "api-key" | undefined;
}

export interface PoolOptions {
  healthCheckIntervalMs: number;
  /** A health check slower than this fails. */
  healthCheckTimeoutMs: number;
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
}

export class Replica {
  outstanding = 0;
  consecutiveFailures = 0;
  ejections = 0;
  ejectedUntil = 0;
  /** The last active health check passed (true until one fails). */
  healthy = true;
  /** Model ids the replica's `/models` listed at its last check. */
  models: string[] = [];
  readonly headers: Record<string, string>;

  constructor(readonly settings: ReplicaSettings, readonly index: number) {
    this.url = settings.url.replace(/\/+$/, "");
    this.headers = { "content-type": "application/json" };
    if (settings.apiKey) {
      if (settings.header === "api-key") this.headers["api-key"] = settings.apiKey;
      else this.headers.authorization = `Bearer ${settings.apiKey}`;
    }
  }

  readonly url: string;

  isEjected(now: number): boolean {
    return now < this.ejectedUntil;
  }

  /** What logs and metrics may say about the replica: its address, never its credential. */
  describe(): string {
    return this.url;
  }
}

export interface PoolStats {
  replicas: number;
  available: number;
  ejections: number;
}

export class UpstreamPool {
  readonly replicas: Replica[];
  private rotation = 0;
  private timer: NodeJS.Timeout | undefined;
  private totalEjections = 0;

  constructor(replicas: readonly ReplicaSettings[], private readonly options: PoolOptions, private readonly logger: Logger, private readonly now: () => number = Date.now) {
    if (replicas.length === 0) throw new Error("a remote deployment needs at least one upstream URL");
    this.replicas = replicas.map((r, i) => new Replica(r, i));
  }

  /** The replica for the next attempt, not one of `tried`; undefined when every replica was tried. */
  pick(tried: ReadonlySet<Replica>): Replica | undefined {
    const now = this.now();
    const candidates = this.replicas.filter((r) => !tried.has(r));
    if (candidates.length === 0) return undefined;
    const available = candidates.filter((r) => r.healthy && !r.isEjected(now));
    const pool = available.length > 0 ? available : candidates;
    this.rotation = (this.rotation + 1) % this.replicas.length;
    let best: Replica | undefined;
    for (let i = 0; i < this.replicas.length; i++) {
      const r = this.replicas[(this.rotation + i) % this.replicas.length]!;
      if (!pool.includes(r)) continue;
      if (!best || r.outstanding < best.outstanding) best = r;
    }
    return best;
  }

  /** The attempt got its first byte (or a full answer): the replica is good. */
  succeeded(replica: Replica): void {
    replica.consecutiveFailures = 0;
  }

  /** The attempt failed on the replica's side (refused, reset, 5xx, timed out). */
  failed(replica: Replica, reason: string): void {
    replica.consecutiveFailures += 1;
    const now = this.now();
    if (replica.consecutiveFailures < this.options.consecutiveFailures || replica.isEjected(now)) return;
    replica.ejections += 1;
    this.totalEjections += 1;
    const ms = Math.min(this.options.maxEjectionMs, this.options.baseEjectionMs * 2 ** (replica.ejections - 1));
    replica.ejectedUntil = now + ms;
    replica.consecutiveFailures = 0;
    this.logger.warn({ event: "upstream.ejected", upstream: replica.describe(), ejectionMs: ms, ejections: replica.ejections, reason }, "upstream replica ejected");
  }

  stats(): PoolStats {
    const now = this.now();
    return { replicas: this.replicas.length, available: this.replicas.filter((r) => r.healthy && !r.isEjected(now)).length, ejections: this.totalEjections };
  }

  /** Runs one round of health checks now, then every interval until `close`. */
  async start(): Promise<void> {
    await this.checkAll();
    if (this.options.healthCheckIntervalMs > 0) {
      this.timer = setInterval(() => void this.checkAll(), this.options.healthCheckIntervalMs).unref();
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async checkAll(): Promise<void> {
    await Promise.all(this.replicas.map((r) => this.check(r)));
  }

  private async check(replica: Replica): Promise<void> {
    let ok = false;
    let reason = "";
    try {
      const res = await fetch(`${replica.url}/models`, { headers: replica.headers, signal: AbortSignal.timeout(this.options.healthCheckTimeoutMs) });
      ok = res.ok;
      reason = `status ${res.status}`;
      if (ok) {
        const body = (await res.json().catch(() => undefined)) as { data?: { id?: unknown }[] } | undefined;
        replica.models = (body?.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
      } else await res.body?.cancel();
    } catch (error) {
      reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
    }
    const now = this.now();
    if (ok) {
      if (!replica.healthy || replica.isEjected(now)) this.logger.info({ event: "upstream.healthy", upstream: replica.describe() }, "upstream replica passes its health check");
      replica.healthy = true;
      if (replica.isEjected(now)) replica.ejectedUntil = 0;
      else if (replica.consecutiveFailures === 0 && replica.ejections > 0) replica.ejections -= 1;
      return;
    }
    if (replica.healthy) this.logger.warn({ event: "upstream.unhealthy", upstream: replica.describe(), reason }, "upstream replica fails its health check");
    replica.healthy = false;
  }
}
