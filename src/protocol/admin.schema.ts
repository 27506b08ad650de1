/**
 * The admin API's wire contract (docs/ADMIN-API.md): request bodies and query strings as TypeBox schemas (fastify
 * validates with them; a failure is the catalog's 422 `invalid_request` with pydantic-style details), and the
 * response shapes as types. Field names are camelCase, as `phiserve keys … --json` and `phiserve usage --json`
 * print them, so the CLI's local and remote modes print the same JSON.
 */
import { Type, type Static } from "@sinclair/typebox";

const NullablePositive = Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]);

/** POST /admin/keys */
export const CreateKeyRequestSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200, pattern: "\\S" }),
    deployments: Type.Optional(Type.Union([Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100 }), Type.Null()])),
    rpm: Type.Optional(NullablePositive),
    tpm: Type.Optional(NullablePositive),
    contentSafety: Type.Optional(Type.Union([Type.Literal("annotate"), Type.Literal("off"), Type.Null()])),
    admin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CreateKeyRequest = Static<typeof CreateKeyRequestSchema>;

/** DELETE /admin/keys/:id, POST /admin/deployments/:name/load|unload */
export const KeyIdParamsSchema = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
export const DeploymentParamsSchema = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) });

/** A time bound: YYYY-MM-DD (UTC), an ISO 8601 date-time, or a span back from now (7d, 24h, 30m). */
const TimeBound = Type.String({ minLength: 1, maxLength: 40 });

/** GET /admin/usage */
export const UsageQuerySchema = Type.Object(
  {
    since: Type.Optional(TimeBound),
    until: Type.Optional(TimeBound),
    by: Type.Optional(Type.Union([Type.Literal("key"), Type.Literal("deployment"), Type.Literal("day"), Type.Literal("hour")])),
  },
  { additionalProperties: false },
);
export type UsageQueryString = Static<typeof UsageQuerySchema>;

/** GET /admin/usage/series */
export const UsageSeriesQuerySchema = Type.Object(
  {
    since: Type.Optional(TimeBound),
    until: Type.Optional(TimeBound),
    bucket: Type.Optional(Type.Union([Type.Literal("hour"), Type.Literal("day")])),
    by: Type.Optional(Type.Union([Type.Literal("deployment"), Type.Literal("key"), Type.Literal("none")])),
  },
  { additionalProperties: false },
);
export type UsageSeriesQueryString = Static<typeof UsageSeriesQuerySchema>;

/** A stored key as the admin API and `keys list --json` show it: never the secret, never its hash. */
export interface KeyView {
  id: string;
  name: string;
  deployments: string[] | null;
  rpm: number | null;
  tpm: number | null;
  contentSafety: "annotate" | "off" | null;
  admin: boolean;
  createdAt: string;
  revokedAt: string | null;
}

/** POST /admin/keys (201): the key's view plus its secret, shown this once. */
export interface CreatedKeyView extends KeyView {
  key: string;
}

/** Percentiles of a latency figure; null when no request in the group produced output. */
export interface PercentilesView {
  p50: number;
  p90: number;
  p99: number;
}

/** One row of GET /admin/usage (and of `phiserve usage --json`). */
export interface UsageRowView {
  group: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  throttled: number;
  filtered: number;
  ttftMs: PercentilesView | null;
  tokensPerSecond: PercentilesView | null;
  costUsd: number;
}

/** USD per 1,000 tokens. */
export interface PriceView {
  promptPer1k: number;
  completionPer1k: number;
}

/** GET /admin/usage */
export interface UsageReportView {
  by: "key" | "deployment" | "day" | "hour";
  since: string | null;
  until: string | null;
  currency: "USD";
  /** The prices the costs were computed with: `default` for deployments with no price of their own. */
  prices: { default: PriceView; deployments: Record<string, PriceView> };
  rows: UsageRowView[];
  /** Every row summed; percentiles over every request in the window. */
  total: UsageRowView;
}

/** One line of a chart: a value per bucket (0, or null for percentiles, where the bucket has no data). */
export interface UsageSeriesView {
  /** The deployment or principal; "total" when the series is not split. */
  name: string;
  requests: number[];
  promptTokens: number[];
  completionTokens: number[];
  throttled: number[];
  filtered: number[];
  costUsd: number[];
  ttftMsP50: (number | null)[];
  ttftMsP90: (number | null)[];
  tokensPerSecondP50: (number | null)[];
}

/** GET /admin/usage/series */
export interface UsageSeriesReportView {
  bucket: "hour" | "day";
  by: "deployment" | "key" | "none";
  since: string;
  until: string;
  currency: "USD";
  /** Each bucket's start (ISO 8601, UTC), every bucket of the window, in order. */
  buckets: string[];
  series: UsageSeriesView[];
}

/** GET /admin/deployments (items), and the answer of load/unload. */
export interface DeploymentView {
  name: string;
  /** The Azure model name (`/info`'s `model_name`). */
  model: string;
  /** The catalog id, when the model is a catalog model. */
  catalogId: string | null;
  default: boolean;
  /** "loaded" | "unloaded" | "loading" */
  state: "loaded" | "unloaded" | "loading";
  /** Requests running or waiting (a busy deployment cannot be unloaded). */
  busy: boolean;
  /** Sequences generating now, of `sequences`. */
  busySlots: number;
  sequences: number;
  queued: number;
  memoryBytes: number;
  limits: { requestsPerMinute: number; tokensPerMinute: number };
  price: PriceView;
}
