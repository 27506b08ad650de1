/**
 * API keys kept in the store (`phiserve keys create`), looked up by SHA-256 and cached briefly.
 */
import { hashApiKey } from "../store/api-keys.ts";
import type { ApiKeyRecord, Store } from "../store/store.ts";
import type { CredentialSource } from "./credential-source.ts";
import type { Principal } from "./principal.ts";

/** Revocations and new keys reach every replica within this time (issue: "refused within 5 s"). */
export const STORED_KEY_TTL_MS = 4000;
/** Cached lookups kept at most; the cache is emptied when a flood of distinct keys passes it. */
const MAX_CACHED_LOOKUPS = 10_000;

/** What the source needs of a Store. */
export type ApiKeyLookup = Pick<Store, "listApiKeys" | "findApiKeyByHash">;

export interface StoredKeySourceDeps {
  store: ApiKeyLookup;
  /** Clock for the cache, ms. Default `Date.now`. */
  now?: (() => number) | undefined;
}

/**
 * A source backed by the store. Enabled while the store holds an unrevoked key (checked now and
 * every {@link STORED_KEY_TTL_MS}), so creating the first key turns authentication on without a
 * restart. Lookups are asked whether or not it is enabled: a key created a moment ago still works.
 */
export async function createStoredKeySource(deps: StoredKeySourceDeps): Promise<CredentialSource> {
  const now = deps.now ?? Date.now;
  // Positive and negative results are both cached: a repeated bad key costs no query per request,
  // and a revoked key stops working within the TTL on every replica without a query per request.
  const cache = new Map<string, { record: ApiKeyRecord | undefined; at: number }>();
  let hasKeys = false;
  const refreshPresence = async (): Promise<void> => {
    hasKeys = (await deps.store.listApiKeys()).some((k) => k.revokedAt === null);
  };
  await refreshPresence();
  // A failed refresh keeps the last answer: a store hiccup must not switch authentication off.
  const timer = setInterval(() => void refreshPresence().catch(() => undefined), STORED_KEY_TTL_MS).unref();

  return {
    kind: "stored",
    isEnabled: () => hasKeys,
    async verify(credential) {
      // The store holds and compares only digests, so neither a database leak nor the lookup's
      // timing gives out a usable key (finding one would need a SHA-256 preimage).
      const hash = hashApiKey(credential);
      const hit = cache.get(hash);
      let record = hit?.record;
      if (!hit || now() - hit.at >= STORED_KEY_TTL_MS) {
        record = await deps.store.findApiKeyByHash(hash);
        // Bounded: random keys sent in bulk must not grow memory without limit.
        if (cache.size >= MAX_CACHED_LOOKUPS) cache.clear();
        cache.set(hash, { record, at: now() });
      }
      return record && record.revokedAt === null ? toPrincipal(record) : undefined;
    },
    close: () => clearInterval(timer),
  };
}

/** The caller a stored key names; a key's content-safety override is carried only when it has one. */
function toPrincipal(record: ApiKeyRecord): Principal {
  const principal: Principal = { id: `key:${record.id}`, deployments: record.deployments, requestsPerMinute: record.rpm, tokensPerMinute: record.tpm, name: record.name };
  if (record.contentSafety !== null) principal.contentSafety = record.contentSafety;
  if (record.admin) principal.admin = true;
  return principal;
}
