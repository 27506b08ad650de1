/**
 * `phiserve keys create|list|revoke`: manages the API keys in the store named by `--db`,
 * `PHISERVE_DB_URL`, or the default SQLite file under the data folder; or, with `--server URL`, through a
 * running server's admin API (docs/ADMIN-API.md) with an admin credential (`--admin-key`, or
 * `PHISERVE_ADMIN_KEY`). A new key's secret is printed once, by `create`; only its SHA-256 is stored.
 */
import { API_KEY_CONTENT_SAFETY_MODES } from "../../store/api-keys.ts";
import { resolveDatabaseUrl, createStore } from "../../store/create-store.ts";
import type { ApiKeyContentSafety, Store } from "../../store/store.ts";
import { AdminApiError, AdminClient } from "../../admin/admin-client.ts";
import { toKeyView } from "../../admin/admin-service.ts";
import type { CreatedKeyView, KeyView } from "../../protocol/admin.schema.ts";
import { CliError } from "../resolve-model.ts";
import { exitWithCliError } from "./exit.ts";

/** Where a command works: a running server's admin API (`--server`), else the database. */
export interface RemoteFlags {
  /** Base URL of a running server: the command goes through its admin API. */
  server?: string;
  /** The admin credential for `--server` (default: `PHISERVE_ADMIN_KEY`). */
  adminKey?: string;
}

/** Flags of `phiserve keys create`. */
export interface KeysCreateFlags extends RemoteFlags {
  name: string;
  /** Comma-separated deployment names the key may use; absent = all. */
  deployments?: string;
  rpm?: number;
  tpm?: number;
  /** The key's content-safety override (a trusted tenant's); absent = the deployment's policy. */
  contentSafety?: ApiKeyContentSafety;
  /** The key may call the admin API. */
  admin?: boolean;
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
export interface KeysFlags extends RemoteFlags {
  db?: string;
  json?: boolean;
}

/**
 * Runs `remote` against the admin API when `--server` is given, else `local` on the store; failures go to stderr
 * with exit code 1.
 */
export async function withTarget(flags: RemoteFlags & { db?: string }, local: (store: Store) => Promise<void>, remote: (client: AdminClient) => Promise<void>): Promise<void> {
  if (flags.server === undefined) {
    if (flags.adminKey !== undefined) exitWithCliError(new CliError("--admin-key goes with --server (a running server's admin API)"));
    return withCliStore(flags.db, local);
  }
  try {
    if (flags.db !== undefined) throw new CliError("Choose one of --db (the database itself) and --server (a running server's admin API)");
    const credential = flags.adminKey ?? process.env.PHISERVE_ADMIN_KEY;
    await remote(new AdminClient({ server: flags.server, credential }));
  } catch (error) {
    exitWithCliError(error instanceof AdminApiError ? new CliError(error.message) : error);
  }
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
  const input = () => {
    const checked = {
      name: flags.name,
      deployments: parseDeployments(flags.deployments),
      rpm: limit("rpm", flags.rpm),
      tpm: limit("tpm", flags.tpm),
      contentSafety: contentSafetyFlag(flags.contentSafety),
      admin: flags.admin === true,
    };
    if (checked.name.trim().length === 0) throw new CliError("--name must not be empty");
    return checked;
  };
  await withTarget(
    flags,
    async (store) => {
      const { record, key } = await store.createApiKey(input());
      printCreated({ ...toKeyView(record), key }, flags.json === true);
    },
    async (client) => printCreated(await client.createKey(input()), flags.json === true),
  );
}

function printCreated(created: CreatedKeyView, json: boolean): void {
  if (json) {
    const { id, key, name, deployments, rpm, tpm, contentSafety, admin, createdAt } = created;
    process.stdout.write(`${JSON.stringify({ id, key, name, deployments, rpm, tpm, contentSafety, admin, createdAt }, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    [
      `Created API key ${created.id} (${created.name})`,
      `  deployments: ${created.deployments?.join(", ") ?? "all"}`,
      `  limits:      ${describeLimits(created)}`,
      `  safety:      ${describeContentSafety(created)}`,
      ...(created.admin ? ["  admin:       yes (may call the admin API)"] : []),
      "",
      `  ${created.key}`,
      "",
      "Copy the key now: it is not stored and cannot be shown again.",
    ].join("\n") + "\n",
  );
}

/** `keys list`: every key with its status; never a secret or hash. */
export async function runKeysList(flags: KeysFlags): Promise<void> {
  await withTarget(
    flags,
    async (store) => printKeys((await store.listApiKeys()).map(toKeyView), flags.json === true),
    async (client) => printKeys(await client.listKeys(), flags.json === true),
  );
}

function printKeys(keys: readonly KeyView[], json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
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
    k.admin ? "yes" : "no",
    k.createdAt,
    k.revokedAt ? `revoked ${k.revokedAt}` : "active",
  ]);
  process.stdout.write(formatTable(["ID", "NAME", "DEPLOYMENTS", "LIMITS", "CONTENT SAFETY", "ADMIN", "CREATED", "STATUS"], rows));
}

/** `keys revoke ID`: revokes a key (requests with it are refused from then on). */
export async function runKeysRevoke(id: string, flags: KeysFlags): Promise<void> {
  const print = (revokedAt: string | null) => {
    if (flags.json) process.stdout.write(`${JSON.stringify({ id, revoked: true, revokedAt })}\n`);
    else process.stdout.write(`Revoked ${id}\n`);
  };
  await withTarget(
    flags,
    async (store) => {
      if (!(await store.revokeApiKey(id))) throw new CliError(`No API key with id '${id}'. List them with: phiserve keys list`);
      print((await store.listApiKeys()).find((k) => k.id === id)?.revokedAt?.toISOString() ?? null);
    },
    async (client) => print((await client.revokeKey(id)).revokedAt),
  );
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

function describeContentSafety(key: Pick<KeyView, "contentSafety">): string {
  if (key.contentSafety === "off") return "off (no content filter)";
  if (key.contentSafety === "annotate") return "annotate (findings reported, nothing blocked)";
  return "the deployment's policy";
}

function describeLimits(key: Pick<KeyView, "rpm" | "tpm">): string {
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
