/**
 * Who is calling: the one identity type every credential source produces and every later stage
 * (deployment grants, quotas, fairness, usage) reads. No stage looks at the credential itself.
 */

/** An authenticated caller (or {@link ANONYMOUS} when authentication is off). */
export interface Principal {
  /**
   * Stable id for usage, quotas and fairness: "key:<id>" (stored key), "static:<8 hex of the key's
   * SHA-256>" (static key), "jwt:<sub>" (bearer token) or "anonymous". Never the secret itself.
   */
  id: string;
  /** Deployments this caller may use; null = all. */
  deployments: string[] | null;
  /** Per-caller requests per minute (stored keys); null = only the deployment's limit. */
  requestsPerMinute: number | null;
  /** Per-caller tokens per minute (stored keys); null = only the deployment's limit. */
  tokensPerMinute: number | null;
  /**
   * A trusted tenant's content-safety override (stored keys): `annotate` reports findings without blocking, `off`
   * skips the filter; absent = the deployment's policy (docs/SAFETY.md "Per-key override").
   */
  contentSafety?: "annotate" | "off" | undefined;
  /** True when the caller may use the admin API: an `--admin-key`, a stored key created with `--admin`, or a token with the admin role (docs/ADMIN-API.md "Who may call it"). */
  admin?: boolean | undefined;
  /** A human label for audit lines (a stored key's name, a token's `name` claim); never a secret. */
  name?: string | undefined;
}

/** The caller of a server with no credential source configured. Frozen: it is shared by every request. */
export const ANONYMOUS: Principal = Object.freeze({ id: "anonymous", deployments: null, requestsPerMinute: null, tokensPerMinute: null });
