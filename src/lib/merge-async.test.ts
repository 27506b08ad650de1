import { test } from "node:test";
import assert from "node:assert/strict";
import { mergeAsync } from "./merge-async.ts";

async function* ticks(name: string, delays: number[]) {
  for (const [i, ms] of delays.entries()) {
    await new Promise((r) => setTimeout(r, ms));
    yield `${name}${i}`;
  }
}

test("yields every item of every source, in arrival order per source", async () => {
  const out: string[] = [];
  for await (const item of mergeAsync([ticks("a", [1, 1, 1]), ticks("b", [0, 5])])) out.push(item);
  assert.equal(out.length, 5);
  assert.deepEqual(out.filter((x) => x.startsWith("a")), ["a0", "a1", "a2"]);
  assert.deepEqual(out.filter((x) => x.startsWith("b")), ["b0", "b1"]);
});

test("stopping early closes the sources", async () => {
  let closed = 0;
  async function* source() {
    try {
      for (;;) {
        await new Promise((r) => setImmediate(r));
        yield 1;
      }
    } finally {
      closed += 1;
    }
  }
  for await (const _ of mergeAsync([source(), source()])) break;
  assert.equal(closed, 2);
});
