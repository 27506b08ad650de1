/**
 * Microsoft Entra ID–style bearer tokens (compact JWS access tokens), verified with `jose`.
 *
 * - Only RS256 and ES256 are accepted, so `alg: none` and HMAC "key confusion" tokens (HS256
 *   keyed with the public key) fail before any key is looked up.
 * - `iss` must equal the configured issuer, `aud` must contain the configured audience, and
 *   `exp` and `sub` are required; `exp`/`nbf` are checked with a clock tolerance (default 60 s).
 * - Keys come from a JWKS fetched with jose's `createRemoteJWKSet`: cached for 10 minutes and
 *   re-fetched when a token names an unknown `kid`, at most once per 30 s cooldown.
 * - Without `jwksUri`, the JWKS address is read from OpenID discovery at
 *   `${issuer}/.well-known/openid-configuration` (the document's `issuer` must match). There is
 *   no guessed fallback path: a wrong guess would only hide a misconfiguration.
 *
 * `verify` resolves `undefined` for every bad token and never logs or echoes the token. It
 * rejects with {@link JwksUnavailableError} only when the signing keys cannot be obtained
 * (discovery/JWKS unreachable, non-200, malformed), so callers can tell an identity-provider
 * outage apart from a bad credential.
 */
import {
  createRemoteJWKSet,
  customFetch,
  errors,
  jwtVerify,
  type FlattenedJWSInput,
  type JWSHeaderParameters,
  type JWTPayload,
  type RemoteJWKSet,
} from "jose";
import { isLoopbackHost } from "../lib/loopback.ts";

/** Default allowed clock skew, in seconds, for `exp` and `nbf`. */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60;
/** Default app role (in the `roles` claim) that lets a token call the admin API (docs/ADMIN-API.md "Who may call it"). */
export const DEFAULT_ADMIN_ROLE = "phiserve.admin";
/** Default prefix of roles/scopes that grant access to a deployment. */
export const DEFAULT_DEPLOYMENT_CLAIM_PREFIX = "deployment:";
/** Default seconds after a JWKS fetch before an unknown `kid` may trigger another fetch. */
export const DEFAULT_JWKS_COOLDOWN_SECONDS = 30;
/** Default seconds a fetched JWKS is trusted before it is fetched again. */
export const DEFAULT_JWKS_CACHE_MAX_AGE_SECONDS = 600;
/** Tokens longer than this are rejected without parsing (Entra tokens are a few KiB). */
export const MAX_TOKEN_LENGTH = 16 * 1024;

const ALGORITHMS = ["RS256", "ES256"];
const FETCH_TIMEOUT_MS = 5_000;
/** After a failed discovery, further attempts fail fast for this long (no IdP hammering). */
const DISCOVERY_RETRY_MS = 5_000;
const SEGMENT = /^[A-Za-z0-9_-]+$/;
/** jose errors that mean "this token names no usable key", not "the key source is down". */
const TOKEN_KEY_ERRORS = new Set([
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
  errors.JOSENotSupported.code,
]);

/** Options of {@link JwtAuthenticator}. */
export interface JwtAuthOptions {
  /** Exact `iss` value required in tokens, e.g. `https://login.microsoftonline.com/{tenant}/v2.0`. */
  issuer: string;
  /** Value the token's `aud` (string or array) must contain, e.g. `api://phiserve` or a client id. */
  audience: string;
  /**
   * JWKS address. Default: `jwks_uri` from `${issuer}/.well-known/openid-configuration`
   * (Entra v2: `https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys`). Entra v1
   * issuers (`https://sts.windows.net/{tenant}/`) serve no discovery document, so pass it here.
   * Must be `https:`, or `http:` on a loopback host.
   */
  jwksUri?: string | undefined;
  /** Allowed clock skew for `exp`/`nbf`, in seconds. Default 60. */
  clockToleranceSeconds?: number | undefined;
  /**
   * Prefix of deployment grants in the `roles` (array) and `scp` (space-separated) claims.
   * Default `"deployment:"`: `deployment:NAME` grants NAME, `deployment:*` grants all, and a
   * token carrying no such role/scope at all may use every deployment.
   */
  deploymentClaimPrefix?: string | undefined;
  /**
   * App role, in the `roles` claim only, that makes the caller an admin. Default `"phiserve.admin"`.
   * Not read from `scp`: a delegated scope is what a user consented an app to do, while an app role is
   * assigned by the tenant's administrators, which is who should hand out the admin API.
   */
  adminRole?: string | undefined;
  /** Seconds after a JWKS fetch before an unknown `kid` triggers a re-fetch. Default 30. */
  jwksCooldownSeconds?: number | undefined;
  /** Seconds a fetched JWKS stays cached. Default 600. */
  jwksCacheMaxAgeSeconds?: number | undefined;
  /** fetch used for discovery and the JWKS (default: global `fetch`). */
  fetchImpl?: typeof fetch | undefined;
}

/** What a valid token proves; the JWT credential source turns it into a `Principal`. */
export interface VerifiedJwt {
  /** The token's `sub`. */
  subject: string;
  /** Deployments this token may use; null = all deployments. */
  deployments: string[] | null;
  /** True when the token's `roles` claim holds the admin role. */
  admin: boolean;
  /** The verified claims set. */
  claims: Record<string, unknown>;
}

/** The signing keys could not be obtained (discovery or JWKS unreachable or malformed). */
export class JwksUnavailableError extends Error {
  override readonly name = "JwksUnavailableError";
}

/** Verifies Entra-style access tokens against a remote JWKS. */
export class JwtAuthenticator {
  readonly #issuer: string;
  readonly #audience: string;
  readonly #clockTolerance: number;
  readonly #prefix: string;
  readonly #adminRole: string;
  readonly #fetch: typeof fetch;
  readonly #cooldownMs: number;
  readonly #cacheMaxAgeMs: number;
  #keySet: RemoteJWKSet | undefined;
  #discovery: Promise<RemoteJWKSet> | undefined;
  #discoveryFailure: { at: number; error: JwksUnavailableError } | undefined;

  /** Validates the options; throws TypeError on a misconfiguration. Fetches nothing yet. */
  constructor(options: JwtAuthOptions) {
    this.#issuer = nonEmpty(options.issuer, "issuer");
    this.#audience = nonEmpty(options.audience, "audience");
    this.#prefix = nonEmpty(options.deploymentClaimPrefix ?? DEFAULT_DEPLOYMENT_CLAIM_PREFIX, "deploymentClaimPrefix");
    this.#adminRole = nonEmpty(options.adminRole ?? DEFAULT_ADMIN_ROLE, "adminRole");
    this.#clockTolerance = nonNegative(options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS, "clockToleranceSeconds");
    this.#cooldownMs = 1000 * nonNegative(options.jwksCooldownSeconds ?? DEFAULT_JWKS_COOLDOWN_SECONDS, "jwksCooldownSeconds");
    this.#cacheMaxAgeMs =
      1000 * nonNegative(options.jwksCacheMaxAgeSeconds ?? DEFAULT_JWKS_CACHE_MAX_AGE_SECONDS, "jwksCacheMaxAgeSeconds");
    this.#fetch = options.fetchImpl ?? globalThis.fetch;
    if (options.jwksUri !== undefined) {
      this.#keySet = this.#remoteKeySet(secureUrl(options.jwksUri, "jwksUri"));
    } else {
      secureUrl(discoveryUrl(this.#issuer), "issuer (for OpenID discovery)");
    }
  }

  /**
   * Verifies a compact JWS access token.
   * @returns what the token proves, or undefined for any invalid token (never throws for bad tokens).
   * @throws {JwksUnavailableError} when the signing keys cannot be fetched.
   */
  async verify(token: string): Promise<VerifiedJwt | undefined> {
    if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH || !JwtAuthenticator.looksLikeJwt(token)) {
      return undefined;
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header, jws) => this.#resolveKey(header, jws), {
        algorithms: ALGORITHMS,
        issuer: this.#issuer,
        audience: this.#audience,
        clockTolerance: this.#clockTolerance,
        requiredClaims: ["exp", "sub"],
      }));
    } catch (error) {
      if (error instanceof JwksUnavailableError) throw error;
      return undefined;
    }
    if (typeof payload.sub !== "string" || payload.sub.length === 0) return undefined;
    const claims: Record<string, unknown> = { ...payload };
    const admin = claimValues(claims["roles"]).includes(this.#adminRole);
    return { subject: payload.sub, deployments: deploymentGrants(claims, this.#prefix), admin, claims };
  }

  /**
   * True when the string looks like a JWT: three dot-separated base64url segments whose first
   * decodes to a JSON object (a JOSE header). API keys are not. The signature segment may be
   * empty so that unsigned tokens are routed to {@link verify} and rejected there.
   */
  static looksLikeJwt(value: string): boolean {
    if (typeof value !== "string" || value.length > MAX_TOKEN_LENGTH) return false;
    const parts = value.split(".");
    if (parts.length !== 3) return false;
    const [header, payload, signature] = parts as [string, string, string];
    if (!SEGMENT.test(header) || !SEGMENT.test(payload) || (signature !== "" && !SEGMENT.test(signature))) {
      return false;
    }
    try {
      const decoded: unknown = JSON.parse(Buffer.from(header, "base64url").toString("utf8"));
      return typeof decoded === "object" && decoded !== null && !Array.isArray(decoded);
    } catch {
      return false;
    }
  }

  /** Key lookup for jwtVerify: separates "no key for this token" from "key source down". */
  async #resolveKey(header: JWSHeaderParameters, jws: FlattenedJWSInput): Promise<CryptoKey> {
    const keySet = this.#keySet ?? (await this.#discoverKeySet());
    try {
      return await keySet(header, jws);
    } catch (error) {
      if (error instanceof errors.JOSEError && TOKEN_KEY_ERRORS.has(error.code)) throw error;
      throw new JwksUnavailableError("JWKS could not be fetched or parsed", { cause: error });
    }
  }

  #remoteKeySet(url: URL): RemoteJWKSet {
    return createRemoteJWKSet(url, {
      cooldownDuration: this.#cooldownMs,
      cacheMaxAge: this.#cacheMaxAgeMs,
      timeoutDuration: FETCH_TIMEOUT_MS,
      [customFetch]: this.#fetch,
    });
  }

  /** One discovery at a time; a failure is remembered briefly so outages fail fast. */
  #discoverKeySet(): Promise<RemoteJWKSet> {
    const failure = this.#discoveryFailure;
    if (failure && Date.now() - failure.at < DISCOVERY_RETRY_MS) return Promise.reject(failure.error);
    this.#discovery ??= fetchJwksUri(this.#fetch, this.#issuer).then(
      (jwksUri) => {
        this.#keySet = this.#remoteKeySet(jwksUri);
        this.#discoveryFailure = undefined;
        return this.#keySet;
      },
      (cause: unknown) => {
        const error = cause instanceof JwksUnavailableError ? cause : new JwksUnavailableError("OpenID discovery failed", { cause });
        this.#discoveryFailure = { at: Date.now(), error };
        throw error;
      },
    );
    return this.#discovery.finally(() => {
      this.#discovery = undefined;
    });
  }
}

/**
 * Maps `roles` and `scp` to deployment grants. Both claims are read as arrays or as
 * space-separated strings. Returns null (all deployments) when the token carries
 * `${prefix}*` or no `${prefix}…` entry at all; otherwise the granted names, deduplicated.
 * A token whose only grants are malformed (`"deployment:"`) gets `[]` — never all.
 */
export function deploymentGrants(
  claims: Record<string, unknown>,
  prefix: string = DEFAULT_DEPLOYMENT_CLAIM_PREFIX,
): string[] | null {
  const entries = [...claimValues(claims["roles"]), ...claimValues(claims["scp"])].filter((v) => v.startsWith(prefix));
  if (entries.length === 0) return null;
  const names = new Set<string>();
  for (const entry of entries) {
    const name = entry.slice(prefix.length);
    if (name === "*") return null;
    if (name.length > 0) names.add(name);
  }
  return [...names];
}

function claimValues(value: unknown): string[] {
  if (typeof value === "string") return value.split(/\s+/).filter((v) => v.length > 0);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

/** Reads `jwks_uri` from the issuer's OpenID configuration (whose `issuer` must match). */
async function fetchJwksUri(fetchImpl: typeof fetch, issuer: string): Promise<URL> {
  const response = await fetchImpl(discoveryUrl(issuer), {
    method: "GET",
    headers: { accept: "application/json" },
    redirect: "manual",
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (response.status !== 200) {
    throw new JwksUnavailableError(`OpenID discovery answered HTTP ${response.status}`);
  }
  const document: unknown = await response.json();
  if (typeof document !== "object" || document === null) {
    throw new JwksUnavailableError("OpenID discovery document is not a JSON object");
  }
  const { issuer: advertised, jwks_uri: jwksUri } = document as Record<string, unknown>;
  if (advertised !== issuer) throw new JwksUnavailableError("OpenID discovery issuer does not match the configured issuer");
  if (typeof jwksUri !== "string") throw new JwksUnavailableError("OpenID discovery document has no jwks_uri");
  try {
    return secureUrl(jwksUri, "jwks_uri");
  } catch (cause) {
    throw new JwksUnavailableError("OpenID discovery jwks_uri is not acceptable", { cause });
  }
}

function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}

/**
 * Parses a key-source URL: https, or http only on a loopback host. Plain http to any other host
 * lets whoever sits on the network path swap in their own signing keys and mint tokens; loopback
 * traffic never leaves the machine. The loopback rule is the one `serve` binds by (src/lib/loopback.ts).
 */
function secureUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${what} is not a valid URL`);
  }
  if (url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname))) return url;
  throw new TypeError(`${what} must use https (http is allowed only on loopback hosts)`);
}

function nonEmpty(value: string, what: string): string {
  if (typeof value !== "string" || value.length === 0) throw new TypeError(`${what} must be a non-empty string`);
  return value;
}

function nonNegative(value: number, what: string): number {
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${what} must be a non-negative number`);
  return value;
}
