import assert from "node:assert/strict";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { hashApiKey, mintApiKey } from "./api-keys.ts";
import { createStore, defaultDatabaseUrl, resolveDatabaseUrl, sqlitePathFromUrl } from "./create-store.ts";

test("sqlitePathFromUrl accepts relative, absolute, sqlite:/// , ~ and :memory: forms", () => {
  assert.equal(sqlitePathFromUrl("sqlite:data/x.db"), resolve("data/x.db"));
  assert.equal(sqlitePathFromUrl("sqlite:./x.db"), resolve("x.db"));
  assert.equal(sqlitePathFromUrl("sqlite:/var/lib/x.db"), "/var/lib/x.db");
  assert.equal(sqlitePathFromUrl("sqlite:///var/lib/x.db"), "/var/lib/x.db");
  assert.equal(sqlitePathFromUrl("sqlite:~/x.db"), join(homedir(), "x.db"));
  assert.equal(sqlitePathFromUrl("sqlite::memory:"), ":memory:");
  assert.throws(() => sqlitePathFromUrl("sqlite:"), /Empty SQLite path/);
});

test("createStore rejects other schemes without echoing the URL", async () => {
  await assert.rejects(createStore("mysql://user:hunter2@db/x"), (error: Error) => {
    assert.match(error.message, /Unsupported database URL scheme 'mysql:'/);
    assert.doesNotMatch(error.message, /hunter2/);
    return true;
  });
  await assert.rejects(createStore("phiserve.db"), /Unsupported database URL/);
});

test("createStore opens an in-memory SQLite store", async () => {
  const store = await createStore("sqlite::memory:");
  await store.migrate();
  assert.deepEqual(await store.listApiKeys(), []);
  await store.close();
});

test("database URL defaults: --db, then PHISERVE_DB_URL, then the data folder", () => {
  assert.equal(defaultDatabaseUrl("/data"), "sqlite:/data/phiserve.db");
  assert.equal(resolveDatabaseUrl("sqlite:/a.db", { PHISERVE_DB_URL: "sqlite:/b.db" }, "/home/u"), "sqlite:/a.db");
  assert.equal(resolveDatabaseUrl(undefined, { PHISERVE_DB_URL: "postgres://h/db" }, "/home/u"), "postgres://h/db");
  assert.equal(resolveDatabaseUrl(undefined, { PHISERVE_DATA_DIR: "/srv/phs" }, "/home/u"), "sqlite:/srv/phs/phiserve.db");
  assert.equal(resolveDatabaseUrl(undefined, {}, "/home/u"), "sqlite:/home/u/.local/share/phiserve/phiserve.db");
});

test("mintApiKey: phs_ + 40 base64url chars, key_ + 12 hex, SHA-256 hex digest", () => {
  const { record, key } = mintApiKey({ name: " ops ", deployments: ["a", "a", " b "] });
  assert.match(key, /^phs_[A-Za-z0-9_-]{40}$/);
  assert.match(record.id, /^key_[0-9a-f]{12}$/);
  assert.equal(record.keyHash, hashApiKey(key));
  assert.match(record.keyHash, /^[0-9a-f]{64}$/);
  assert.equal(record.name, "ops");
  assert.deepEqual(record.deployments, ["a", "b"]);
});
