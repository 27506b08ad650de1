/**
 * Architecture boundaries of phiserve, checked by dependency-cruiser (run by test/architecture.test.ts, part of
 * `npm test`; by hand: `npx depcruise src --config .dependency-cruiser.cjs`).
 *
 * The layers (docs/ARCHITECTURE.md): http (transport, the only fastify code) → serving → scheduler → engine
 * interface; engine implementations, store drivers and the Redis client stay behind their folders and are wired
 * together only by the composition root (src/app.ts) and the CLI.
 *
 * Type-only imports count (`tsPreCompilationDeps`): a fastify type in the serving layer is as much a leak as a value.
 * Test code (`*.test.ts`, `*.contract.ts` suites) may reach past the engine/driver boundaries to build fixtures.
 */

/** Test code: unit tests and the shared contract suites they run. */
const TEST_CODE = "\\.(test|contract)\\.ts$";

/** Matches a resolved npm dependency, wherever node_modules sits relative to the cruised folder. */
const npm = (name) => `(^|/)node_modules/${name}/`;

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "Source files must not import each other in a cycle (issue 9: no two source files import each other).",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "no-fastify-in-core",
      severity: "error",
      comment: "The serving, scheduler, catalog and protocol layers are transport-free: no fastify (or @fastify/*).",
      from: { path: "^src/(serving|scheduler|catalog|protocol)/" },
      to: { path: npm("(fastify|@fastify/[^/]+)") },
    },
    {
      name: "fastify-only-in-http",
      severity: "error",
      comment: "fastify is confined to src/http/** (the transport adapter); the composition root may name its types.",
      from: { path: "^src/", pathNot: ["^src/http/", "^src/app\\.ts$", "^src/(serving|scheduler|catalog|protocol)/", TEST_CODE] },
      to: { path: npm("(fastify|@fastify/[^/]+)") },
    },
    {
      name: "engine-implementations-only-from-composition-root",
      severity: "error",
      comment:
        "Engine implementations (src/engine/<impl>/**) are built by the composition root (src/app.ts, src/main.ts) " +
        "and the CLI; everything else programs against src/engine/engine.ts and the engine factory interface.",
      from: { path: "^src/", pathNot: ["^src/(app|main)\\.ts$", "^src/cli/", "^src/engine/[^/]+/", TEST_CODE] },
      to: { path: "^src/engine/[^/]+/" },
    },
    {
      name: "engine-implementations-independent",
      severity: "error",
      comment: "One engine implementation does not import another's folder.",
      from: { path: "^src/engine/([^/]+)/", pathNot: TEST_CODE },
      to: { path: "^src/engine/[^/]+/", pathNot: "^src/engine/$1/" },
    },
    {
      name: "node-llama-cpp-only-in-llama-cpp-engine",
      severity: "error",
      comment: "Only the llama.cpp engine (src/engine/llama-cpp/**) imports node-llama-cpp.",
      from: { path: "^src/", pathNot: ["^src/engine/llama-cpp/", TEST_CODE] },
      to: { path: npm("node-llama-cpp") },
    },
    {
      name: "better-sqlite3-only-in-sqlite-store",
      severity: "error",
      comment: "Only the SQLite store (src/store/sqlite/**) imports its driver.",
      from: { path: "^src/", pathNot: ["^src/store/sqlite/", TEST_CODE] },
      to: { path: npm("better-sqlite3") },
    },
    {
      name: "pg-only-in-postgres-store",
      severity: "error",
      comment: "Only the PostgreSQL store (src/store/postgres/**) imports its driver.",
      from: { path: "^src/", pathNot: ["^src/store/postgres/", TEST_CODE] },
      to: { path: npm("(pg|pg-[^/]+)") },
    },
    {
      name: "ioredis-only-in-redis-quota",
      severity: "error",
      comment: "Only the Redis quota (src/quota/redis*) imports ioredis.",
      from: { path: "^src/", pathNot: ["^src/quota/redis", TEST_CODE] },
      to: { path: npm("ioredis") },
    },
  ],
  options: {
    doNotFollow: { path: "(^|/)node_modules/" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      mainFields: ["module", "main", "types", "typings"],
    },
  },
};
