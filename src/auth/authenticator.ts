/**
 * Who is calling. Three sources, any combination: static keys (`--api-key`), keys stored in the
 * database (`phiserve keys create`), and Entra-style bearer tokens (`--jwt-issuer`). Either
 * `api-key` or `Authorization: Bearer` may carry a credential (the Azure clients send both).
 * Authentication is on when any source is configured; only a server with none runs open.
 */
import { AppError } from "../errors/app-error.ts";
import type { ApiKeyRecord, Store } from "../store/store.ts";
import { bearerToken, createApiKeyAuthenticator } from "./api-key-authenticator.ts";
import { hashApiKey } from "../store/api-keys.ts";
import { JwksUnavailableError, JwtAuthenticator } from "./jwt-authenticator.ts";

export interface Principal {
  /** Stable id for usage, quotas and fairness: "key:<id>", "static:<digest prefix>", "jwt:<sub>" or "anonymous". */
  id: string;
  /** Deployments this caller may use; null = all. */
  deployments: string[] | null;
  /** Per-caller limits (stored keys); null = only the deployment's. */
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
}

export interface RequestCredentials {
  apiKey?: string | undefined;
  authorization?: string | undefined;
}

export interface Authenticator {
  isEnabled(): boolean;
  /** The caller, or undefined when no presented credential is valid. */
  authenticate(credentials: RequestCredentials): Promise<Principal | undefined>;
  close(): void;
}

export const ANONYMOUS: Principal = { id: "anonymous", deployments: null, requestsPerMinute: null, tokensPerMinute: null };

/** Revocations and new keys reach every replica within this time (issue: "refused within 5 s"). */
const STORED_KEY_TTL_MS = 4000;

export interface AuthenticatorSources {
  staticKeys: readonly string[];
  store?: Store | undefined;
  jwt?: JwtAuthenticator | undefined;
}

export async function createAuthenticator(sources: AuthenticatorSources): Promise<Authenticator> {
  const statics = createApiKeyAuthenticator(sources.staticKeys);
  const stored = sources.store ? new StoredKeys(sources.store) : undefined;
  await stored?.refreshPresence();
  return {
    isEnabled: () => statics.isEnabled || sources.jwt !== undefined || (stored?.hasKeys ?? false),
    async authenticate(credentials) {
      const candidates = [credentials.apiKey, bearerToken(credentials.authorization)].filter((c): c is string => typeof c === "string" && c.length > 0);
      for (const candidate of candidates) {
        if (sources.jwt && JwtAuthenticator.looksLikeJwt(candidate)) {
          const principal = await verifyJwt(sources.jwt, candidate);
          if (principal) return principal;
          continue;
        }
        const fixed = statics.authenticate({ apiKey: candidate });
        if (fixed && statics.isEnabled) return { ...ANONYMOUS, id: `static:${fixed.keyId}` };
        const record = await stored?.find(candidate);
        if (record) return { id: `key:${record.id}`, deployments: record.deployments, requestsPerMinute: record.rpm, tokensPerMinute: record.tpm };
      }
      return undefined;
    },
    close: () => stored?.close(),
  };
}

async function verifyJwt(jwt: JwtAuthenticator, token: string): Promise<Principal | undefined> {
  try {
    const principal = await jwt.verify(token);
    return principal ? { ...ANONYMOUS, id: `jwt:${principal.subject}`, deployments: principal.deployments } : undefined;
  } catch (error) {
    if (error instanceof JwksUnavailableError) {
      throw new AppError("AUTH_UNAVAILABLE", "The identity provider's signing keys cannot be fetched; retry shortly.", { retryAfterSeconds: 5, cause: error });
    }
    throw error;
  }
}

/**
 * Stored keys, looked up by SHA-256 and cached briefly (positive and negative), so a revoked key
 * stops working within STORED_KEY_TTL_MS on every replica without a query per request.
 */
class StoredKeys {
  hasKeys = false;
  private readonly cache = new Map<string, { record: ApiKeyRecord | undefined; at: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly store: Store) {
    this.timer = setInterval(() => void this.refreshPresence().catch(() => undefined), STORED_KEY_TTL_MS).unref();
  }

  async refreshPresence(): Promise<void> {
    this.hasKeys = (await this.store.listApiKeys()).some((k) => k.revokedAt === null);
  }

  async find(secret: string): Promise<ApiKeyRecord | undefined> {
    const hash = hashApiKey(secret);
    const hit = this.cache.get(hash);
    let record = hit && Date.now() - hit.at < STORED_KEY_TTL_MS ? hit.record : undefined;
    if (!hit || Date.now() - hit.at >= STORED_KEY_TTL_MS) {
      record = await this.store.findApiKeyByHash(hash);
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(hash, { record, at: Date.now() });
    }
    return record && record.revokedAt === null ? record : undefined;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
