/**
 * Architecture boundaries (issue 9): the rules live in `.dependency-cruiser.cjs`; this test runs them over `src/`
 * and, first, over a small fixture tree with one known violation per rule, so a rule that silently stops
 * matching (a renamed folder, a changed resolver path) fails here instead of passing everything.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cruise, type ICruiseResult, type IViolation } from "dependency-cruiser";
import extractDepcruiseOptions from "dependency-cruiser/config-utl/extract-depcruise-options";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CONFIG_FILE = join(REPO_ROOT, ".dependency-cruiser.cjs");

/** Cruises `src` under `baseDir` with the repository's rules; returns the violations as "rule: from → to" lines. */
async function violationsUnder(baseDir: string): Promise<string[]> {
  const options = await extractDepcruiseOptions(CONFIG_FILE);
  const { output } = await cruise(["src"], { ...options, baseDir, validate: true, outputType: "json" });
  const result: ICruiseResult = typeof output === "string" ? (JSON.parse(output) as ICruiseResult) : output;
  return result.summary.violations.map(describe).sort();
}

function describe(violation: IViolation): string {
  if (violation.cycle !== undefined) {
    // dependency-cruiser reports each cycle once, from one of its members; start it at the smallest path so the
    // line does not depend on traversal order.
    const members = violation.cycle.map((step) => step.name);
    const start = members.indexOf([...members].sort()[0]!);
    const loop = [...members.slice(start), ...members.slice(0, start)];
    return `${violation.rule.name}: ${[...loop, loop[0]].join(" → ")}`;
  }
  // npm targets resolve to a path inside node_modules; keep only the package name so lines read the same anywhere.
  return `${violation.rule.name}: ${violation.from} → ${violation.to.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+)\/.*$/, "$1")}`;
}

/** One file per line of `files`, written under `root`. */
function writeTree(root: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
}

test("each boundary rule catches its violation and lets the allowed imports through (fixture tree)", async () => {
  // Under the repository so that `fastify`, `pg`, … resolve to the real node_modules, as they do for src/.
  mkdirSync(join(REPO_ROOT, ".cache"), { recursive: true });
  const root = mkdtempSync(join(REPO_ROOT, ".cache", "architecture-"));
  try {
    writeTree(root, {
      // Allowed: transport, composition root, CLI, an engine's own folder, drivers in their store, tests.
      "src/http/server.ts": 'import fastify from "fastify";\nexport const app = fastify;\n',
      "src/app.ts": 'import { FakeEngine } from "./engine/fake/fake-engine.ts";\nexport const e = FakeEngine;\n',
      "src/cli/main.ts": 'import { LlamaEngine } from "../engine/llama-cpp/llama-engine.ts";\nexport const e = LlamaEngine;\n',
      "src/engine/engine.ts": "export interface Engine { close(): void }\n",
      "src/engine/fake/fake-engine.ts":
        'import type { Engine } from "../engine.ts";\nimport { helper } from "./helper.ts";\nexport class FakeEngine { h = helper; e?: Engine }\n',
      "src/engine/fake/helper.ts": "export const helper = 1;\n",
      "src/engine/llama-cpp/llama-engine.ts": 'import { getLlama } from "node-llama-cpp";\nexport const LlamaEngine = getLlama;\n',
      "src/store/sqlite/sqlite-store.ts": 'import Database from "better-sqlite3";\nexport const D = Database;\n',
      "src/store/postgres/postgres-store.ts": 'import pg from "pg";\nexport const P = pg;\n',
      "src/quota/redis-quota.ts": 'import { Redis } from "ioredis";\nexport const R = Redis;\n',
      "src/serving/service.test.ts": 'import { FakeEngine } from "../engine/fake/fake-engine.ts";\nimport { getLlama } from "node-llama-cpp";\nexport const x = [FakeEngine, getLlama];\n',
      // Violations, one per rule (type-only imports count).
      "src/serving/leak.ts": 'import type { FastifyRequest } from "fastify";\nexport type R = FastifyRequest;\n',
      "src/auth/leak.ts": 'import fastify from "fastify";\nexport const f = fastify;\n',
      "src/deployments/leak.ts": 'import { FakeEngine } from "../engine/fake/fake-engine.ts";\nexport const e = FakeEngine;\n',
      "src/engine/fake/cross.ts": 'import { LlamaEngine } from "../llama-cpp/llama-engine.ts";\nexport const e = LlamaEngine;\n',
      "src/model-factory/leak.ts": 'import type { Token } from "node-llama-cpp";\nexport type T = Token;\n',
      "src/store/store.ts": 'import type Database from "better-sqlite3";\nexport type D = Database.Database;\n',
      "src/store/sqlite/pg-leak.ts": 'import pg from "pg";\nexport const P = pg;\n',
      "src/quota/quota.ts": 'import type { Redis } from "ioredis";\nexport type R = Redis;\n',
      "src/lib/a.ts": 'import { b } from "./b.ts";\nexport const a = () => b;\n',
      "src/lib/b.ts": 'import { a } from "./a.ts";\nexport const b = () => a;\n',
      "src/lib/c.ts": 'import { d } from "./d.ts";\nexport const c = () => d;\n',
      "src/lib/d.ts": 'import { e } from "./e.ts";\nexport const d = () => e;\n',
      "src/lib/e.ts": 'import { c } from "./c.ts";\nexport const e = () => c;\n',
    });
    assert.deepEqual(await violationsUnder(root), [
      "better-sqlite3-only-in-sqlite-store: src/store/store.ts → better-sqlite3",
      "engine-implementations-independent: src/engine/fake/cross.ts → src/engine/llama-cpp/llama-engine.ts",
      "engine-implementations-only-from-composition-root: src/deployments/leak.ts → src/engine/fake/fake-engine.ts",
      "fastify-only-in-http: src/auth/leak.ts → fastify",
      "ioredis-only-in-redis-quota: src/quota/quota.ts → ioredis",
      "no-circular: src/lib/a.ts → src/lib/b.ts → src/lib/a.ts",
      "no-circular: src/lib/c.ts → src/lib/d.ts → src/lib/e.ts → src/lib/c.ts",
      "no-fastify-in-core: src/serving/leak.ts → fastify",
      "node-llama-cpp-only-in-llama-cpp-engine: src/model-factory/leak.ts → node-llama-cpp",
      "pg-only-in-postgres-store: src/store/sqlite/pg-leak.ts → pg",
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("src/ keeps its architecture boundaries: layers, engine and driver confinement, no import cycles", async () => {
  const violations = await violationsUnder(REPO_ROOT);
  assert.deepEqual(violations, [], `boundary violations (rules in .dependency-cruiser.cjs):\n${violations.join("\n")}`);
});
