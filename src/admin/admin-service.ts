/**
 * The admin use cases behind `/admin/*` (docs/ADMIN-API.md), with no transport in them: stored keys (create,
 * list, revoke), usage reports, and deployment state with load/unload through the registry. Whoever calls has
 * already been found to be an admin (admin-guard.ts); every change is written to the log as one
 * `admin.audit` line naming who, what and the target, never a key's secret or hash.
 */
import type { Logger } from "pino";
import { AppError } from "../errors/app-error.ts";
import type { Principal } from "../auth/principal.ts";
import type { ApiKeyRecord, Store, UsageGrouping } from "../store/store.ts";
import type { CreateKeyRequest, CreatedKeyView, DeploymentView, KeyView, UsageReportView, UsageSeriesReportView } from "../protocol/admin.schema.ts";
import { priceOf, type UsagePrices } from "./pricing.ts";
import { parseTimeBound, TIME_BOUND_FORMS } from "./time-range.ts";
import { buildUsageReport, buildUsageSeries } from "./usage-report.ts";
import type { ValidationDetail } from "../errors/app-error.ts";

/** The logging an admin call does (the request's logger, which carries its id). */
export type AdminLog = Pick<Logger, "info" | "warn">;

/** Who asks, and where the audit line goes. */
export interface AdminContext {
  principal: Principal;
  log: AdminLog;
}

/** What the admin API needs of a deployment. */
export interface AdminDeployment {
  readonly name: string;
  readonly model: { readonly azureName: string };
  readonly plan: { readonly catalog?: { readonly id: string } | undefined };
  readonly quota: { readonly requestsPerMinute: number; readonly tokensPerMinute: number };
  readonly memoryBytes: number;
  readonly engine: { capacity(): { sequences: number } };
  readonly scheduler: { stats(): { busySlots: number; queued: number } };
  isLoaded(): boolean;
  isBusy(): boolean;
  unload(): Promise<void>;
}

export interface AdminDeployments<D extends AdminDeployment> {
  readonly default: D;
  list(): readonly D[];
  find(name: string): D | undefined;
  /** Loads within the memory budget (idle deployments may be unloaded to make room). */
  ensureLoaded(deployment: D): Promise<void>;
}

export interface AdminServiceDeps<D extends AdminDeployment> {
  /** The key and usage store; undefined = the server keeps none (the key and usage routes are not served). */
  store: Pick<Store, "createApiKey" | "listApiKeys" | "revokeApiKey" | "usageStats"> | undefined;
  deployments: AdminDeployments<D>;
  prices: UsagePrices;
  /** Clock for relative time bounds ("24h"); default `() => new Date()`. */
  now?: (() => Date) | undefined;
}

/** Seconds a caller is told to wait before retrying the unload of a busy deployment. */
const BUSY_RETRY_SECONDS = 5;

export class AdminService<D extends AdminDeployment> {
  private readonly now: () => Date;

  constructor(private readonly deps: AdminServiceDeps<D>) {
    this.now = deps.now ?? (() => new Date());
  }

  /** True when keys and usage can be served (a store is configured). */
  hasStore(): boolean {
    return this.deps.store !== undefined;
  }

  async createKey(input: CreateKeyRequest, context: AdminContext): Promise<CreatedKeyView> {
    const store = this.store();
    let created: { record: ApiKeyRecord; key: string };
    try {
      created = await store.createApiKey({
        name: input.name,
        deployments: input.deployments ?? null,
        rpm: input.rpm ?? null,
        tpm: input.tpm ?? null,
        contentSafety: input.contentSafety ?? null,
        admin: input.admin === true,
      });
    } catch (error) {
      // The store's own checks (mintApiKey) after the schema's: the same 422, naming the message.
      if (error instanceof Error && !(error instanceof AppError)) throw new AppError("INVALID_REQUEST", `Invalid input: ${error.message}`, { param: "body", cause: error });
      throw error;
    }
    audit(context, "keys.create", created.record.id, { name: created.record.name, admin: created.record.admin, deployments: created.record.deployments });
    return { ...toKeyView(created.record), key: created.key };
  }

  async listKeys(): Promise<KeyView[]> {
    return (await this.store().listApiKeys()).map(toKeyView);
  }

  async revokeKey(id: string, context: AdminContext): Promise<{ id: string; revoked: true; revokedAt: string | null }> {
    const store = this.store();
    if (!(await store.revokeApiKey(id))) {
      audit(context, "keys.revoke", id, { outcome: "not_found" });
      throw new AppError("KEY_NOT_FOUND", `No API key with id '${id}'.`, { param: "id" });
    }
    const revokedAt = (await store.listApiKeys()).find((k) => k.id === id)?.revokedAt ?? null;
    audit(context, "keys.revoke", id, {});
    return { id, revoked: true, revokedAt: revokedAt?.toISOString() ?? null };
  }

  async usage(query: { since?: string | undefined; until?: string | undefined; by?: UsageGrouping | undefined }): Promise<UsageReportView> {
    const now = this.now();
    const since = timeBound("since", query.since, now, false);
    const until = timeBound("until", query.until, now, true);
    checkOrder(since, until);
    return buildUsageReport(this.store(), { since, until, by: query.by ?? "deployment" }, this.deps.prices);
  }

  async usageSeries(query: { since?: string | undefined; until?: string | undefined; bucket?: "hour" | "day" | undefined; by?: "deployment" | "key" | "none" | undefined }): Promise<UsageSeriesReportView> {
    const now = this.now();
    const bucket = query.bucket ?? "hour";
    // Default windows: the last 24 hours by hour, the last 30 days by day.
    const until = timeBound("until", query.until, now, true) ?? now;
    const since = timeBound("since", query.since, now, false) ?? new Date(until.getTime() - (bucket === "hour" ? 24 * 3_600_000 : 30 * 86_400_000));
    checkOrder(since, until);
    try {
      return await buildUsageSeries(this.store(), { since, until, bucket, by: query.by ?? "deployment" }, this.deps.prices);
    } catch (error) {
      if (error instanceof RangeError) throw invalidQuery("since", `Invalid input (query.since: ${error.message})`, query.since);
      throw error;
    }
  }

  listDeployments(): DeploymentView[] {
    return this.deps.deployments.list().map((d) => this.toDeploymentView(d));
  }

  /** Loads a deployment (a no-op when loaded); other idle deployments may be unloaded to fit the memory budget. */
  async load(name: string, context: AdminContext): Promise<DeploymentView> {
    const deployment = this.deployment(name);
    const wasLoaded = deployment.isLoaded();
    await audited(context, "deployments.load", deployment.name, { wasLoaded }, () => this.deps.deployments.ensureLoaded(deployment));
    return this.toDeploymentView(deployment);
  }

  /** Unloads a deployment's engine (a no-op when unloaded); refused while it has requests running, waiting or loading. */
  async unload(name: string, context: AdminContext): Promise<DeploymentView> {
    const deployment = this.deployment(name);
    if (deployment.isBusy()) {
      audit(context, "deployments.unload", deployment.name, { outcome: "busy" });
      throw new AppError("DEPLOYMENT_BUSY", `The deployment '${deployment.name}' has requests running or waiting; retry once they finish.`, { retryAfterSeconds: BUSY_RETRY_SECONDS, param: "name" });
    }
    await audited(context, "deployments.unload", deployment.name, { wasLoaded: deployment.isLoaded() }, () => deployment.unload());
    return this.toDeploymentView(deployment);
  }

  private deployment(name: string): D {
    const found = this.deps.deployments.find(name);
    if (!found) {
      const names = this.deps.deployments.list().map((d) => d.name).join(", ");
      throw new AppError("MODEL_NOT_FOUND", `The deployment '${name}' does not exist. Available: ${names}.`, { param: "name" });
    }
    return found;
  }

  private toDeploymentView(d: D): DeploymentView {
    const stats = d.scheduler.stats();
    const loaded = d.isLoaded();
    return {
      name: d.name,
      model: d.model.azureName,
      catalogId: d.plan.catalog?.id ?? null,
      default: d === this.deps.deployments.default,
      // Not loaded yet busy: a load is under way (or requests wait for one).
      state: loaded ? "loaded" : d.isBusy() ? "loading" : "unloaded",
      busy: d.isBusy(),
      busySlots: stats.busySlots,
      sequences: d.engine.capacity().sequences,
      queued: stats.queued,
      memoryBytes: d.memoryBytes,
      limits: { requestsPerMinute: d.quota.requestsPerMinute, tokensPerMinute: d.quota.tokensPerMinute },
      price: priceOf(this.deps.prices, d.name),
    };
  }

  private store(): NonNullable<AdminServiceDeps<D>["store"]> {
    // The routes that need a store are registered only with one (admin.route.ts); this guards direct callers.
    if (!this.deps.store) throw new AppError("ROUTE_NOT_FOUND", "This server keeps no key or usage store.");
    return this.deps.store;
  }
}

/**
 * One `admin.audit` line per admin change (and refused attempt): who (principal id and name), what, the target.
 * Never a key's secret: the created key's value is in the response only.
 */
export function audit(context: AdminContext, action: string, target: string, extra: Record<string, unknown>): void {
  const { principal } = context;
  context.log.info({ event: "admin.audit", who: principal.id, ...(principal.name ? { whoName: principal.name } : {}), action, target, outcome: "ok", ...extra }, "admin.audit");
}

/** Runs `action`, then writes its audit line: outcome ok, or failed (with the error's code) before rethrowing. */
async function audited(context: AdminContext, action: string, target: string, extra: Record<string, unknown>, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    audit(context, action, target, { ...extra, outcome: "failed", error: error instanceof AppError ? error.code : "INTERNAL" });
    throw error;
  }
  audit(context, action, target, extra);
}

/** A key as the API shows it: everything but the hash. */
export function toKeyView(key: ApiKeyRecord): KeyView {
  return {
    id: key.id,
    name: key.name,
    deployments: key.deployments,
    rpm: key.rpm,
    tpm: key.tpm,
    contentSafety: key.contentSafety,
    admin: key.admin,
    createdAt: key.createdAt.toISOString(),
    revokedAt: key.revokedAt?.toISOString() ?? null,
  };
}

function timeBound(field: "since" | "until", value: string | undefined, now: Date, endOfDay: boolean): Date | undefined {
  if (value === undefined) return undefined;
  const time = parseTimeBound(value, now, endOfDay);
  if (!time) throw invalidQuery(field, `Invalid input (query.${field}: '${value}' is not a time: ${TIME_BOUND_FORMS})`, value);
  return time;
}

function checkOrder(since: Date | undefined, until: Date | undefined): void {
  if (since && until && since >= until) throw invalidQuery("since", "Invalid input (query.since: must be before until)", since.toISOString());
}

function invalidQuery(field: string, message: string, input: unknown): AppError {
  const detail: ValidationDetail = { type: "value_error", loc: ["query", field], msg: message.replace(/^Invalid input \(query\.\w+: (.*)\)$/, "$1"), input };
  return new AppError("INVALID_REQUEST", message, { param: field, details: [detail] });
}
