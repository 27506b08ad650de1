/**
 * Static API keys. A request is accepted when `api-key` or `Authorization: Bearer <key>`
 * (or a bare `Authorization: <key>`, seen in the wild) carries a configured key. Keys are
 * compared as SHA-256 digests with timingSafeEqual, and every configured key is checked, so
 * the time taken says nothing about which key or how much of it matched.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AppError } from "../errors/app-error.ts";

export interface Principal {
  /** A short, non-secret label for logs: the first 4 characters of the key's digest. */
  keyId: string;
}

export interface RequestCredentials {
  apiKey?: string | undefined;
  authorization?: string | undefined;
}

export interface Authenticator {
  /** True when requests must carry a credential. */
  readonly isEnabled: boolean;
  authenticate(credentials: RequestCredentials): Principal | undefined;
}

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();

export function createApiKeyAuthenticator(keys: readonly string[]): Authenticator {
  const digests = keys.filter((k) => k.length > 0).map(digest);
  // Keys already verified, so the common case skips hashing. Only exact configured keys enter it
  // (at most one entry per key), and a lookup can only hit for a caller who holds a valid key.
  const verified = new Map<string, Principal>();
  return {
    isEnabled: digests.length > 0,
    authenticate(credentials) {
      if (digests.length === 0) return { keyId: "anonymous" };
      const candidates = [credentials.apiKey, bearerToken(credentials.authorization)].filter(
        (c): c is string => typeof c === "string" && c.length > 0,
      );
      for (const candidate of candidates) {
        const known = verified.get(candidate);
        if (known) return known;
        const presented = digest(candidate);
        let matched = false;
        for (const key of digests) matched = timingSafeEqual(presented, key) || matched;
        if (matched) {
          const principal = { keyId: presented.toString("hex").slice(0, 8) };
          verified.set(candidate, principal);
          return principal;
        }
      }
      return undefined;
    },
  };
}

/** The credential in an Authorization header: after "Bearer ", or the bare value (seen in the wild). */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match ? match[1] : header.trim();
}

export const UNAUTHENTICATED_MESSAGE = "Auth token validation failed. Please provide a valid key or a valid AAD token";

export function unauthenticated(): AppError {
  return new AppError("UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE);
}
