/**
 * Versioned SQL migrations read at runtime from a folder of `NNNN_description.sql` files.
 * Each implementation records applied versions in `schema_migrations(version)`.
 */
import { readdir, readFile } from "node:fs/promises";

/** One migration file. */
export interface Migration {
  /** The file's leading number, e.g. 1 for `0001_init.sql`. */
  version: number;
  name: string;
  sql: string;
}

const FILE_PATTERN = /^(\d{4})_[A-Za-z0-9_-]+\.sql$/;

/**
 * Reads every migration in `dir` (a folder URL ending in `/`), sorted by version.
 * @throws Error when two files share a version.
 */
export async function loadMigrations(dir: URL): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((name) => FILE_PATTERN.test(name)).sort();
  const migrations: Migration[] = [];
  for (const name of names) {
    const version = Number(FILE_PATTERN.exec(name)?.[1]);
    if (migrations.some((m) => m.version === version)) throw new Error(`Duplicate migration version ${version} in ${dir.pathname}`);
    migrations.push({ version, name, sql: await readFile(new URL(name, dir), "utf8") });
  }
  return migrations;
}

/** The migrations whose versions are not in `applied`, in order. */
export function pendingMigrations(all: readonly Migration[], applied: ReadonlySet<number>): Migration[] {
  return all.filter((m) => !applied.has(m.version));
}
