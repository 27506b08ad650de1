import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const LINES = 5000;

/** Runs a process that logs LINES lines through createLogger, then ends as `ending` says; returns its stderr. */
async function logThenEnd(ending: string): Promise<string> {
  const script = `
    const { createLogger } = await import(${JSON.stringify(new URL("./logger.ts", import.meta.url).href)});
    const logger = createLogger({ level: "info" });
    for (let i = 0; i < ${LINES}; i++) logger.info({ event: "test.line", i, padding: "x".repeat(200) }, "line");
    ${ending}`;
  const { stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "--eval", script], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stderr;
}

function loggedIndexes(stderr: string): number[] {
  return stderr
    .split("\n")
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { i: number }).i);
}

test("lines still buffered when the process calls process.exit are written, whole and in order", async () => {
  const indexes = loggedIndexes(await logThenEnd("process.exit(0);"));
  assert.deepEqual(indexes, Array.from({ length: LINES }, (_, i) => i));
});

test("credentials in logged request headers are redacted", async () => {
  const stderr = await logThenEnd(`logger.info({ req: { headers: { authorization: "Bearer secret-1", "api-key": "secret-2" } } }, "req");`);
  assert.doesNotMatch(stderr, /secret-/);
  assert.match(stderr, /\[Redacted\]/);
});
