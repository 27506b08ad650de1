/**
 * `phiserve keys create|list` as users run them (the real CLI in a child process, on a fresh SQLite
 * file): a key's content-safety override is set by `--content-safety`, refused when it is anything but
 * annotate or off, and shown by `list` in its table and its JSON. The tests run in order on one database.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { runCli } from "../../../test/helpers/start-server.ts";
import { createStore } from "../../store/create-store.ts";
import { hashApiKey } from "../../store/api-keys.ts";

const dir = mkdtempSync(join(tmpdir(), "phiserve-keys-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("phiserve keys --content-safety", () => {
  const db = `sqlite:${join(dir, "keys.db")}`;
  const created: Record<string, { id: string; key: string; contentSafety: unknown }> = {};

  test("create --content-safety off|annotate stores the override; without it the key has none", async () => {
    for (const [name, extra] of [["trusted-off", ["--content-safety", "off"]], ["trusted-annotate", ["--content-safety", "annotate"]], ["plain", []]] as const) {
      const res = await runCli(["keys", "create", "--name", name, "--db", db, "--json", ...extra]);
      assert.equal(res.code, 0, res.stderr);
      created[name] = JSON.parse(res.stdout);
    }
    assert.equal(created["trusted-off"]?.contentSafety, "off");
    assert.equal(created["trusted-annotate"]?.contentSafety, "annotate");
    assert.equal(created.plain?.contentSafety, null);
    // What the server will read: the stored record, looked up by the key's digest.
    const store = await createStore(db);
    try {
      await store.migrate();
      for (const [name, expected] of [["trusted-off", "off"], ["trusted-annotate", "annotate"], ["plain", null]] as const) {
        assert.equal((await store.findApiKeyByHash(hashApiKey(created[name]!.key)))?.contentSafety, expected, name);
      }
    } finally {
      await store.close();
    }
  });

  test("list shows each key's override, in the table and in --json", async () => {
    const json = await runCli(["keys", "list", "--db", db, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const listed = JSON.parse(json.stdout) as { name: string; contentSafety: unknown }[];
    assert.deepEqual(
      listed.map((k) => [k.name, k.contentSafety]),
      [["trusted-off", "off"], ["trusted-annotate", "annotate"], ["plain", null]],
    );
    const table = await runCli(["keys", "list", "--db", db]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split("\n");
    const header = lines[0] ?? "";
    const column = header.indexOf("CONTENT SAFETY");
    assert.ok(column > 0, header);
    const cell = (name: string): string | undefined => lines.find((l) => l.includes(` ${name} `))?.slice(column).split(/\s{2,}/)[0];
    assert.equal(cell("trusted-off"), "off");
    assert.equal(cell("trusted-annotate"), "annotate");
    assert.equal(cell("plain"), "deployment");
  });

  test("create refuses any other value with a clear message, and creates no key", async () => {
    for (const value of ["filter", "OFF"]) {
      const res = await runCli(["keys", "create", "--name", `bad-${value}`, "--db", db, "--content-safety", value]);
      assert.equal(res.code, 1, res.stdout);
      assert.match(res.stderr, /--content-safety/);
      assert.match(res.stderr, /expected annotate .* or off/);
      assert.doesNotMatch(res.stdout, /phs_/, "no key is printed");
    }
    const store = await createStore(db);
    try {
      await store.migrate();
      assert.deepEqual((await store.listApiKeys()).map((k) => k.name).filter((n) => n.startsWith("bad-")), []);
    } finally {
      await store.close();
    }
  });
});
