/**
 * Who is calling: one authenticator over any combination of credential sources, static keys
 * (`--api-key`), keys stored in the database (`phiserve keys create`) and Entra-style bearer
 * tokens (`--jwt-issuer`). Either `api-key` or `Authorization: Bearer` may carry a credential
 * (the Azure clients send both). Authentication is on when any source is enabled; only a server
 * with none runs open.
 */
import { AppError } from "../errors/app-error.ts";
import type { CredentialSource } from "./credential-source.ts";
import type { JwtAuthenticator } from "./jwt-authenticator.ts";
import { createJwtSource } from "./jwt-source.ts";
import type { Principal } from "./principal.ts";
import { createStaticKeySource } from "./static-key-source.ts";
import { createStoredKeySource, type ApiKeyLookup } from "./stored-key-source.ts";

// The identity vocabulary is defined in principal.ts; re-exported so the rest of the server
// imports auth from this one module.

/** The credentials a request presents, as raw header values. */
export interface RequestCredentials {
  /** The `api-key` header. */
  apiKey?: string | undefined;
  /** The `Authorization` header: `Bearer <credential>` or a bare credential. */
  authorization?: string | undefined;
}

export interface Authenticator {
  /** True when requests must carry a credential (some source is enabled). */
  isEnabled(): boolean;
  /**
   * The caller, or undefined when no presented credential is valid.
   * @throws AppError AUTH_UNAVAILABLE when a token cannot be checked (identity provider down).
   */
  authenticate(credentials: RequestCredentials): Promise<Principal | undefined>;
  /** Stops every source's timers. */
  close(): void;
}

export interface AuthenticatorSources {
  /** Static keys; empty = none. */
  staticKeys: readonly string[];
  /** Static admin keys (`--admin-key`): they may call the admin API too; empty or absent = none. */
  adminKeys?: readonly string[] | undefined;
  /** Store holding API keys; undefined = no stored keys. */
  store?: ApiKeyLookup | undefined;
  /** Token verifier; undefined = bearer tokens are not accepted as tokens. */
  jwt?: JwtAuthenticator | undefined;
  /** Clock for the stored-key cache, ms. Default `Date.now`. */
  now?: (() => number) | undefined;
}

/**
 * Builds the sources that are configured, in the order they are asked: static keys (no I/O),
 * then stored keys, with the JWT source judging JWT-shaped credentials alone.
 */
export async function createAuthenticator(options: AuthenticatorSources): Promise<Authenticator> {
  const sources: CredentialSource[] = [createStaticKeySource(options.staticKeys)];
  if (options.adminKeys && options.adminKeys.length > 0) sources.push(createStaticKeySource(options.adminKeys, { admin: true }));
  if (options.store) sources.push(await createStoredKeySource({ store: options.store, now: options.now }));
  if (options.jwt) sources.push(createJwtSource(options.jwt));
  return composeAuthenticator(sources);
}

/**
 * One authenticator over `sources`. Each presented credential (the `api-key` header first, then
 * the Authorization header) is tried in turn, and the first that proves a caller wins, so a stale
 * value in one header does not shadow a valid one in the other. A credential some source claims
 * (a JWT, when a token issuer is configured) goes to the claiming sources only; any other goes to
 * every source that claims nothing, in order.
 */
export function composeAuthenticator(sources: readonly CredentialSource[]): Authenticator {
  return {
    isEnabled: () => sources.some((source) => source.isEnabled()),
    async authenticate(credentials) {
      for (const credential of presentedCredentials(credentials)) {
        const principal = await verifyCredential(sources, credential);
        if (principal) return principal;
      }
      return undefined;
    },
    close() {
      for (const source of sources) source.close?.();
    },
  };
}

async function verifyCredential(sources: readonly CredentialSource[], credential: string): Promise<Principal | undefined> {
  const claimants = sources.filter((source) => source.claims?.(credential) === true);
  const asked = claimants.length > 0 ? claimants : sources.filter((source) => source.claims === undefined);
  for (const source of asked) {
    const principal = await source.verify(credential);
    if (principal) return principal;
  }
  return undefined;
}

/** The non-empty credentials a request carries, `api-key` first, each once. */
function presentedCredentials(credentials: RequestCredentials): string[] {
  const apiKey = credentials.apiKey;
  const bearer = bearerToken(credentials.authorization);
  const presented: string[] = [];
  if (apiKey) presented.push(apiKey);
  // Clients that send both headers usually send the same value: check it once.
  if (bearer && bearer !== apiKey) presented.push(bearer);
  return presented;
}

/** The credential in an Authorization header: after "Bearer ", or the bare value (seen in the wild). */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match ? match[1] : header.trim();
}

/** The 401 message Azure's serverless endpoints send, word for word (clients and scripts match on it). */
export const UNAUTHENTICATED_MESSAGE = "Auth token validation failed. Please provide a valid key or a valid AAD token";

export function unauthenticated(): AppError {
  return new AppError("UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE);
}
