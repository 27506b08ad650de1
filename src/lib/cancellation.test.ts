import { test } from "node:test";
import assert from "node:assert/strict";
import { Cancellation } from "./cancellation.ts";

test("a cancellation calls each listener once with its reason set, and not after removal", () => {
  const c = new Cancellation();
  const calls: string[] = [];
  const a = () => calls.push(`a:${String(c.reason)}`);
  const b = () => calls.push("b");
  c.addEventListener("abort", a);
  c.addEventListener("abort", b);
  c.removeEventListener("abort", b);
  assert.equal(c.aborted, false);
  c.abort("gone");
  c.abort("again");
  assert.equal(c.aborted, true);
  assert.equal(c.reason, "gone");
  assert.deepEqual(calls, ["a:gone"]);
  c.addEventListener("abort", b); // already aborted: never called
  assert.deepEqual(calls, ["a:gone"]);
});
