/**
 * Opens the Store named by a database URL: `sqlite:PATH` (the default, a file under the data
 * folder) or `postgres://…` / `postgresql://…`. Each driver is loaded only when its URL is used.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Store } from "./store.ts";

const SQLITE_PREFIX = "sqlite:";
const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;

/**
 * Opens (but does not migrate) the store for `url`. Call `migrate()` before first use.
 *
 * - `sqlite:./data/phiserve.db`, `sqlite:/var/lib/phiserve/phiserve.db`, `sqlite:///abs/path.db`,
 *   `sqlite:~/phiserve.db` or `sqlite::memory:`; parent folders are created.
 * - `postgres://user:pass@host:5432/db` or `postgresql://…` (any libpq-style URL node-postgres accepts).
 *
 * @throws Error for any other scheme or an empty SQLite path. The URL itself is not echoed (it may hold a password).
 */
export async function createStore(url: string): Promise<Store> {
  if (url.toLowerCase().startsWith(SQLITE_PREFIX)) {
    const { SqliteStore } = await import("./sqlite/sqlite-store.ts");
    return SqliteStore.open(sqlitePathFromUrl(url));
  }
  if (POSTGRES_URL.test(url)) {
    const { PostgresStore } = await import("./postgres/postgres-store.ts");
    return PostgresStore.open(url);
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw new Error(
    `Unsupported database URL${scheme ? ` scheme '${scheme}:'` : ""}: use sqlite:PATH or postgres://user:password@host:port/database`,
  );
}

/**
 * The file path in a `sqlite:` URL: `sqlite:rel/path` (relative to the working folder),
 * `sqlite:/abs/path`, `sqlite:///abs/path`, `sqlite:~/path`, or `:memory:`.
 * @throws Error when the path is empty.
 */
export function sqlitePathFromUrl(url: string): string {
  let path = url.slice(SQLITE_PREFIX.length);
  if (path.startsWith("//")) path = path.slice(2);
  if (path.length === 0) throw new Error("Empty SQLite path: use sqlite:PATH, e.g. sqlite:./phiserve.db");
  if (path === ":memory:") return path;
  if (path === "~" || path.startsWith("~/")) path = join(homedir(), path.slice(1));
  return resolve(path);
}

/** The default database URL: `sqlite:<dataDir>/phiserve.db`. */
export function defaultDatabaseUrl(dataDir: string): string {
  return `${SQLITE_PREFIX}${join(dataDir, "phiserve.db")}`;
}

/** The data folder: `PHISERVE_DATA_DIR`, else `~/.local/share/phiserve`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  return env.PHISERVE_DATA_DIR || join(home, ".local", "share", "phiserve");
}

/** The database URL to use: an explicit one (e.g. `--db`), else `PHISERVE_DB_URL`, else {@link defaultDatabaseUrl}. */
export function resolveDatabaseUrl(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  return explicit || env.PHISERVE_DB_URL || defaultDatabaseUrl(defaultDataDir(env, home));
}
