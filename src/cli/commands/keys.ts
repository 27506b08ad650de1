/**
 * `phiserve keys create|list|revoke`: manages the API keys in the store named by `--db`,
 * `PHISERVE_DB_URL`, or the default SQLite file under the data folder. A new key's secret is
 * printed once, by `create`; only its SHA-256 is stored.
 */
import { API_KEY_CONTENT_SAFETY_MODES } from "../../store/api-keys.ts";
import { resolveDatabaseUrl, createStore } from "../../store/create-store.ts";
import type { ApiKeyContentSafety, ApiKeyRecord, Store } from "../../store/store.ts";
import { CliError } from "../resolve-model.ts";
import { exitWithCliError } from "./exit.ts";

/** Flags of `phiserve keys create`. */
export interface KeysCreateFlags {
  name: string;
  /** Comma-separated deployment names the key may use; absent = all. */
  deployments?: string;
  rpm?: number;
  tpm?: number;
  /** The key's content-safety override (a trusted tenant's); absent = the deployment's policy. */
  contentSafety?: ApiKeyContentSafety;
  db?: string;
  json?: boolean;
}

/** What `keys create --content-safety` accepts, said to whoever passes something else. */
export const KEY_CONTENT_SAFETY_EXPECTED =
  "expected annotate (report findings, block nothing) or off (no filter); a key can only relax its deployments' filter, so omit the option to keep their policy";

/** `value` as a key's content-safety override, or undefined when it is not one. */
export function toKeyContentSafety(value: string): ApiKeyContentSafety | undefined {
  return API_KEY_CONTENT_SAFETY_MODES.find((mode) => mode === value);
}

/** Flags shared by `keys list` and `keys revoke`. */
export interface KeysFlags {
  db?: string;
  json?: boolean;
}

/** Opens and migrates the store, runs `action`, and closes it; failures go to stderr with exit code 1. */
export async function withCliStore(db: string | undefined, action: (store: Store) => Promise<void>): Promise<void> {
  try {
    const store = await openMigratedStore(resolveDatabaseUrl(db));
    try {
      await action(store);
    } finally {
      await store.close();
    }
  } catch (error) {
    exitWithCliError(error);
  }
}

/** Opens and migrates the store; failures become plain messages naming the database (password hidden). */
async function openMigratedStore(url: string): Promise<Store> {
  let store: Store | undefined;
  try {
    store = await createStore(url);
    await store.migrate();
    return store;
  } catch (error) {
    await store?.close().catch(() => undefined);
    throw new CliError(`Cannot open database ${redactUrl(url)}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The URL with any password replaced by `***`. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, "//$1:***@");
  }
}

/** `keys create`: creates a key and prints it (the only time the secret is shown). */
export async function runKeysCreate(flags: KeysCreateFlags): Promise<void> {
  await withCliStore(flags.db, async (store) => {
    const input = {
      name: flags.name,
      deployments: parseDeployments(flags.deployments),
      rpm: limit("rpm", flags.rpm),
      tpm: limit("tpm", flags.tpm),
      contentSafety: contentSafetyFlag(flags.contentSafety),
    };
    if (input.name.trim().length === 0) throw new CliError("--name must not be empty");
    const { record, key } = await store.createApiKey(input);
    if (flags.json) {
      const { id, name, deployments, rpm, tpm, contentSafety, createdAt } = record;
      process.stdout.write(`${JSON.stringify({ id, key, name, deployments, rpm, tpm, contentSafety, createdAt: createdAt.toISOString() }, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      [
        `Created API key ${record.id} (${record.name})`,
        `  deployments: ${record.deployments?.join(", ") ?? "all"}`,
        `  limits:      ${describeLimits(record)}`,
        `  safety:      ${describeContentSafety(record)}`,
        "",
        `  ${key}`,
        "",
        "Copy the key now: it is not stored and cannot be shown again.",
      ].join("\n") + "\n",
    );
  });
}

/** `keys list`: every key with its status; never a secret or hash. */
export async function runKeysList(flags: KeysFlags): Promise<void> {
  await withCliStore(flags.db, async (store) => {
    const keys = await store.listApiKeys();
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(keys.map(publicView), null, 2)}\n`);
      return;
    }
    if (keys.length === 0) {
      process.stdout.write("No API keys. Create one with: phiserve keys create --name NAME\n");
      return;
    }
    const rows = keys.map((k) => [
      k.id,
      k.name,
      k.deployments?.join(",") ?? "all",
      describeLimits(k),
      k.contentSafety ?? "deployment",
      k.createdAt.toISOString(),
      k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : "active",
    ]);
    process.stdout.write(formatTable(["ID", "NAME", "DEPLOYMENTS", "LIMITS", "CONTENT SAFETY", "CREATED", "STATUS"], rows));
  });
}

/** `keys revoke ID`: revokes a key (requests with it are refused from then on). */
export async function runKeysRevoke(id: string, flags: KeysFlags): Promise<void> {
  await withCliStore(flags.db, async (store) => {
    if (!(await store.revokeApiKey(id))) throw new CliError(`No API key with id '${id}'. List them with: phiserve keys list`);
    const revokedAt = (await store.listApiKeys()).find((k) => k.id === id)?.revokedAt ?? null;
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ id, revoked: true, revokedAt: revokedAt?.toISOString() ?? null })}\n`);
    } else {
      process.stdout.write(`Revoked ${id}\n`);
    }
  });
}

/** A key as shown to users: everything but the hash. */
function publicView(key: ApiKeyRecord): Omit<ApiKeyRecord, "keyHash" | "createdAt" | "revokedAt"> & { createdAt: string; revokedAt: string | null } {
  return {
    id: key.id,
    name: key.name,
    deployments: key.deployments,
    rpm: key.rpm,
    tpm: key.tpm,
    contentSafety: key.contentSafety,
    createdAt: key.createdAt.toISOString(),
    revokedAt: key.revokedAt?.toISOString() ?? null,
  };
}

function parseDeployments(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  const names = value.split(",").map((d) => d.trim()).filter(Boolean);
  if (names.length === 0) throw new CliError("--deployments needs at least one name (omit it to allow all deployments)");
  return names;
}

function limit(flag: string, value: number | undefined): number | null {
  if (value === undefined) return null;
  if (!Number.isSafeInteger(value) || value <= 0) throw new CliError(`--${flag} must be a positive integer`);
  return value;
}

/** `--content-safety` checked again here, for callers that did not come through the command line's parser. */
function contentSafetyFlag(value: string | undefined): ApiKeyContentSafety | null {
  if (value === undefined) return null;
  const mode = toKeyContentSafety(value);
  if (mode === undefined) throw new CliError(`--content-safety: ${KEY_CONTENT_SAFETY_EXPECTED}`);
  return mode;
}

function describeContentSafety(key: Pick<ApiKeyRecord, "contentSafety">): string {
  if (key.contentSafety === "off") return "off (no content filter)";
  if (key.contentSafety === "annotate") return "annotate (findings reported, nothing blocked)";
  return "the deployment's policy";
}

function describeLimits(key: Pick<ApiKeyRecord, "rpm" | "tpm">): string {
  const parts = [key.rpm === null ? null : `${key.rpm} rpm`, key.tpm === null ? null : `${key.tpm} tpm`].filter(Boolean);
  return parts.length > 0 ? parts.join(", ") : "deployment limits";
}

/** Left-aligned columns separated by two spaces, with a header row. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[header, ...rows].map(line).join("\n")}\n`;
}
