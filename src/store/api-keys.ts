/**
 * API key minting shared by every Store implementation: the secret, its public id, its SHA-256
 * digest, and validation of the caller's input. Only the digest is ever persisted.
 */
import { createHash, randomBytes } from "node:crypto";
import type { ApiKeyContentSafety, ApiKeyRecord, NewApiKey } from "./store.ts";

/** Prefix of every key phiserve issues (lets secret scanners and humans recognise them). */
export const API_KEY_PREFIX = "phs_";

/** Random bytes per key: 30 bytes = 240 bits = 40 base64url characters after the prefix. */
const SECRET_BYTES = 30;

/** Every content-safety override a stored key may carry (`ApiKeyRecord.contentSafety`), as help texts list them. */
export const API_KEY_CONTENT_SAFETY_MODES: readonly ApiKeyContentSafety[] = Object.freeze(["annotate", "off"]);

/** A new secret: `phs_` followed by 40 base64url characters from `crypto.randomBytes`. */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(SECRET_BYTES).toString("base64url");
}

/** A new public key id: `key_` followed by 12 hex characters. */
export function generateApiKeyId(): string {
  return `key_${randomBytes(6).toString("hex")}`;
}

/** SHA-256 (lowercase hex) of a key, as stored in `ApiKeyRecord.keyHash` and looked up by `findApiKeyByHash`. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A freshly minted key: the record to store and the secret to show once. */
export interface MintedApiKey {
  record: ApiKeyRecord;
  key: string;
}

/**
 * Validates `input` and mints a key for it (id, secret, digest, creation time).
 * @throws Error when the name is empty, a limit is not a positive integer, `deployments` is an empty list, or
 *   `contentSafety` is not one of {@link API_KEY_CONTENT_SAFETY_MODES}.
 */
export function mintApiKey(input: NewApiKey, now: Date = new Date()): MintedApiKey {
  const name = input.name.trim();
  if (name.length === 0) throw new Error("API key name must not be empty");
  const key = generateApiKey();
  const record: ApiKeyRecord = {
    id: generateApiKeyId(),
    name,
    keyHash: hashApiKey(key),
    deployments: normalizeDeployments(input.deployments),
    rpm: positiveLimit("rpm", input.rpm),
    tpm: positiveLimit("tpm", input.tpm),
    contentSafety: contentSafetyOverride(input.contentSafety),
    admin: input.admin === true,
    createdAt: now,
    revokedAt: null,
  };
  return { record, key };
}

function normalizeDeployments(deployments: string[] | null | undefined): string[] | null {
  if (deployments === undefined || deployments === null) return null;
  const names = [...new Set(deployments.map((d) => d.trim()))];
  if (names.length === 0 || names.some((d) => d.length === 0)) {
    throw new Error("deployments must be null (all deployments) or a list of non-empty names");
  }
  return names;
}

function positiveLimit(label: string, value: number | null | undefined): number | null {
  if (value === undefined || value === null) return null;
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${label} must be a positive integer, got ${value}`);
  return value;
}

function contentSafetyOverride(value: unknown): ApiKeyContentSafety | null {
  if (value === undefined || value === null) return null;
  const mode = API_KEY_CONTENT_SAFETY_MODES.find((m) => m === value);
  if (mode === undefined) {
    throw new Error(`contentSafety must be ${API_KEY_CONTENT_SAFETY_MODES.join(" or ")} (or null for the deployment's policy), got ${JSON.stringify(value)}`);
  }
  return mode;
}
