import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as turn } from "node:timers/promises";
import { PromptAdmission } from "./prompt-admission.ts";

test("a lone request is not held", () => {
  const admission = new PromptAdmission(1000);
  const ticket = admission.enter();
  assert.equal(ticket.ready(), undefined);
  assert.deepEqual(admission.stats, { groups: 0, waited: 0, timedOut: 0 });
});

test("requests preparing together are released together, when the last one is ready", async () => {
  const admission = new PromptAdmission(60_000);
  const [a, b, c] = [admission.enter(), admission.enter(), admission.enter()];
  const released: string[] = [];
  a.ready()!.then(() => released.push("a"));
  b.ready()!.then(() => released.push("b"));
  await turn();
  assert.deepEqual(released, [], "c is still preparing");
  assert.equal(c.ready(), undefined, "the last one goes at once");
  await turn();
  assert.deepEqual(released, ["a", "b"]);
  assert.deepEqual(admission.stats, { groups: 1, waited: 2, timedOut: 0 });
});

test("a request that fails or waits for a sequence holds no one", async () => {
  const admission = new PromptAdmission(60_000);
  const [a, b, c] = [admission.enter(), admission.enter(), admission.enter()];
  let released = false;
  a.ready()!.then(() => (released = true));
  b.idle();
  await turn();
  assert.equal(released, false);
  c.leave();
  await turn();
  assert.equal(released, true, "b waits for a sequence, c failed: a goes");
  b.resume();
  assert.equal(b.ready(), undefined);
  b.leave();
  b.leave();
  assert.equal(admission.enter().ready(), undefined, "leave() after ready() is a no-op: nothing counts as preparing");
});

test("a slow preparer holds the others at most maxWaitMs", async () => {
  const admission = new PromptAdmission(5);
  const [a, slow] = [admission.enter(), admission.enter()];
  await a.ready();
  assert.deepEqual(admission.stats, { groups: 1, waited: 1, timedOut: 1 });
  assert.equal(slow.ready(), undefined);
});
