import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as turn } from "node:timers/promises";
import { gatherWindowMs, PromptAdmission } from "./prompt-admission.ts";

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
  assert.equal(released.length, 0, "c is still preparing");
  c.ready()!.then(() => released.push("c"));
  await turn();
  assert.deepEqual(released, ["a", "b", "c"], "the last one releases the group, itself included");
  assert.deepEqual(admission.stats, { groups: 1, waited: 3, timedOut: 0 });
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
  assert.equal(b.ready(), undefined, "nobody else on the way or waiting: b goes at once");
  b.leave();
  b.leave();
  assert.equal(admission.enter().ready(), undefined, "leave() after ready() is a no-op: nothing counts as preparing");
});

test("a slow preparer holds the others at most limitMs", async () => {
  const admission = new PromptAdmission(5);
  const [a, slow] = [admission.enter(), admission.enter()];
  await a.ready();
  assert.deepEqual(admission.stats, { groups: 1, waited: 1, timedOut: 1 });
  assert.equal(slow.ready(), undefined);
});

test("after a timed-out wait, whoever was still on its way is not waited for again until it resumes", async () => {
  const admission = new PromptAdmission(5);
  const stuck = admission.enter(); // a ticket nobody leaves
  await admission.enter().ready();
  assert.equal(admission.stats.timedOut, 1);
  assert.equal(admission.enter().ready(), undefined, "the stuck ticket holds no one now");
  stuck.idle();
  stuck.resume();
  const held = admission.enter().ready();
  assert.ok(held, "resumed, it is on its way again");
  stuck.leave();
  await held;
});

test("the engine carries on the tickets it issued, and only those", () => {
  const admission = new PromptAdmission(1000);
  const ticket = admission.enter();
  assert.equal(admission.adopt(ticket), ticket);
  assert.equal(admission.adopt({ idle() {}, resume() {}, leave() {} }), undefined);
  assert.equal(admission.adopt(undefined), undefined);
  assert.equal(new PromptAdmission().adopt(ticket), undefined);
});

test("a window holds a lone ready prompt for prompts that arrive after it, then releases them together", async () => {
  let now = 0;
  const admission = new PromptAdmission(1000, () => now);
  const released: string[] = [];
  admission.enter().ready(10)!.then(() => released.push("first"));
  now = 3;
  const late = admission.enter(); // arrives inside the window, which it extends to 13
  await turn();
  late.ready(10)!.then(() => released.push("late"));
  await turn();
  assert.equal(released.length, 0, "the window is still open");
  now = 13;
  await new Promise((resolve) => setTimeout(resolve, 15));
  assert.deepEqual(released, ["first", "late"]);
  assert.deepEqual(admission.stats, { groups: 1, waited: 2, timedOut: 0 });
  assert.equal(admission.enter().ready(0), undefined, "no window, nobody else: at once");
});

test("the gather window is 5 % of the prompt's expected time, at most 20 ms, and nothing before a prompt was timed", () => {
  assert.equal(gatherWindowMs(100, 0), 0);
  assert.equal(gatherWindowMs(100, 1), 5);
  assert.equal(gatherWindowMs(130, 30), 20);
});

test("arrivals while a group is open keep its window open, up to the limit", async () => {
  let now = 0;
  const admission = new PromptAdmission(1000, () => now);
  let released = false;
  admission.enter().ready(10)!.then(() => (released = true));
  now = 8;
  const next = admission.enter(); // extends the window to 18
  now = 9;
  next.ready(10); // joins: 19
  now = 15;
  await new Promise((resolve) => setTimeout(resolve, 12));
  assert.equal(released, false, "window extended past the first prompt's own 10 ms");
  now = 19;
  await new Promise((resolve) => setTimeout(resolve, 12));
  assert.equal(released, true);
});
