/**
 * Static API keys (`--api-key`, `PHISERVE_API_KEYS`), compared in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { CredentialSource } from "./credential-source.ts";
import type { Principal } from "./principal.ts";

const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();

/** Options of {@link createStaticKeySource}. */
export interface StaticKeyOptions {
  /** The keys' callers may use the admin API (`--admin-key`); default false. */
  admin?: boolean | undefined;
}

/** A source that accepts exactly the given keys (empty strings ignored); disabled when there are none. */
export function createStaticKeySource(keys: readonly string[], options: StaticKeyOptions = {}): CredentialSource {
  // Compare SHA-256 digests, not the keys: equal lengths let timingSafeEqual run for a presented
  // key of any length, so the time taken does not reveal a configured key's length.
  const digests = keys.filter((k) => k.length > 0).map(digest);
  // Keys already verified, so the common case skips hashing. Only exact configured keys enter it
  // (at most one entry per key, so a flood of wrong keys cannot grow it), and a lookup can only
  // hit for a caller who already holds a valid key.
  const verified = new Map<string, Principal>();
  return {
    kind: options.admin ? "admin" : "static",
    isEnabled: () => digests.length > 0,
    async verify(credential) {
      const known = verified.get(credential);
      if (known) return known;
      if (digests.length === 0) return undefined;
      const presented = digest(credential);
      // Every configured key is compared, even after a match, so the time taken does not say
      // which key matched or how many keys there are before it.
      let matched = false;
      for (const key of digests) matched = timingSafeEqual(presented, key) || matched;
      if (!matched) return undefined;
      // The id is a digest prefix, never the key: logs and usage rows can name the caller
      // without holding anything that authenticates.
      const principal: Principal = Object.freeze({
        id: `${options.admin ? "admin" : "static"}:${presented.toString("hex").slice(0, 8)}`,
        deployments: null,
        requestsPerMinute: null,
        tokensPerMinute: null,
        ...(options.admin ? { admin: true } : {}),
      });
      verified.set(credential, principal);
      return principal;
    },
  };
}
