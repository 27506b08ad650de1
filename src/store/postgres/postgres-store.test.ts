/**
 * Runs the Store contract against PostgreSQL at PHISERVE_TEST_POSTGRES_URL (a role that may
 * CREATE DATABASE). Each run works in a new randomly named database, dropped afterwards.
 * Start a throwaway server with: eval "$(bash scripts/test-services.sh)"
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import pg from "pg";
import { createStore } from "../create-store.ts";
import { runStoreContract } from "../store.contract.ts";

const baseUrl = process.env.PHISERVE_TEST_POSTGRES_URL;
const inCi = !!process.env.CI && !["0", "false"].includes(process.env.CI.toLowerCase());
const HOW = 'start one with: eval "$(bash scripts/test-services.sh)"';

/** Runs one statement on the server's maintenance connection (the URL as given). */
async function admin(url: string, sql: (client: pg.Client) => string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql(client));
  } finally {
    await client.end();
  }
}

/** `url` with its database replaced by `database`. */
function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

if (!baseUrl) {
  if (inCi) {
    test("PostgresStore contract", () => assert.fail(`PHISERVE_TEST_POSTGRES_URL is unset but CI is set: CI must run this suite; ${HOW}`));
  } else {
    test("PostgresStore contract", { skip: `PHISERVE_TEST_POSTGRES_URL is unset; ${HOW}` }, () => undefined);
  }
} else {
  const url = baseUrl;
  const database = `phiserve_test_${randomBytes(6).toString("hex")}`;
  let created: Promise<void> | undefined;
  const ensureDatabase = (): Promise<void> => (created ??= admin(url, (c) => `CREATE DATABASE ${c.escapeIdentifier(database)}`));
  after(async () => {
    if (created) await admin(url, (c) => `DROP DATABASE IF EXISTS ${c.escapeIdentifier(database)} WITH (FORCE)`);
  });
  runStoreContract("PostgresStore", async () => {
    await ensureDatabase();
    return createStore(withDatabase(url, database));
  });
}
