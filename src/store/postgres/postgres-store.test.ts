/**
 * Runs the Store contract against PostgreSQL at PHISERVE_TEST_POSTGRES_URL (a role that may
 * CREATE DATABASE). Each run works in a new randomly named database, dropped afterwards.
 * Start a throwaway server with: eval "$(bash scripts/test-services.sh)"
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { after, describe, test } from "node:test";
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

  describe("PostgresStore schema", () => {
    const upgraded = `${database}_v1`;
    after(async () => admin(url, (c) => `DROP DATABASE IF EXISTS ${c.escapeIdentifier(upgraded)} WITH (FORCE)`));

    test("a database at schema v1 upgrades in place: its keys keep working with no content-safety override and no admin flag", async () => {
      await admin(url, (c) => `CREATE DATABASE ${c.escapeIdentifier(upgraded)}`);
      const v1 = new pg.Client({ connectionString: withDatabase(url, upgraded) });
      await v1.connect();
      try {
        await v1.query(await readFile(new URL("./migrations/0001_init.sql", import.meta.url), "utf8"));
        await v1.query("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
        await v1.query("INSERT INTO schema_migrations (version) VALUES (1)");
        await v1.query("INSERT INTO api_keys (id, name, key_hash, deployments, rpm, tpm, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)", [
          "key_0123456789ab", "old", "ab".repeat(32), ["phi-4"], 5, null, new Date(1000),
        ]);
      } finally {
        await v1.end();
      }
      const store = await createStore(withDatabase(url, upgraded));
      try {
        await store.migrate();
        assert.deepEqual(await store.findApiKeyByHash("ab".repeat(32)), {
          id: "key_0123456789ab", name: "old", keyHash: "ab".repeat(32), deployments: ["phi-4"], rpm: 5, tpm: null,
          contentSafety: null, admin: false, createdAt: new Date(1000), revokedAt: null,
        });
        const { record } = await store.createApiKey({ name: "new", contentSafety: "off" });
        assert.equal((await store.listApiKeys()).find((k) => k.id === record.id)?.contentSafety, "off");
      } finally {
        await store.close();
      }
    });

    test("the database itself refuses a content-safety value other than annotate or off", async () => {
      await ensureDatabase();
      const store = await createStore(withDatabase(url, database));
      await store.migrate();
      await store.close();
      const client = new pg.Client({ connectionString: withDatabase(url, database) });
      await client.connect();
      try {
        const insert = (id: string, value: string | null) =>
          client.query("INSERT INTO api_keys (id, name, key_hash, content_safety, created_at) VALUES ($1, 'n', $1, $2, now())", [id, value]);
        await assert.rejects(insert("key_check_a", "filter"), /api_keys_content_safety_check/);
        await assert.rejects(insert("key_check_b", "Off"), /api_keys_content_safety_check/);
        for (const [i, value] of ["annotate", "off", null].entries()) await insert(`key_check_ok${i}`, value);
      } finally {
        await client.end();
      }
    });
  });
}
