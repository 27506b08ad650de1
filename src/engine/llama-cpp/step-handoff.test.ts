import { test } from "node:test";
import assert from "node:assert/strict";
import { StepHandoff } from "./step-handoff.ts";

function handoff(capMs = 60_000) {
  const queue = { ids: [] as number[] };
  const steps = new StepHandoff({ queue: () => ({ size: queue.ids.length, has: (id) => queue.ids.includes(id) }), capMs: () => capMs });
  return { steps, queue };
}

test("nothing else queued: the batch loop ends by itself and does not wait", () => {
  const { steps } = handoff();
  assert.equal(steps.afterBatch(0), undefined);
});

test("a sequence whose next step is already queued is not waited for", () => {
  const { steps, queue } = handoff();
  queue.ids.push(5, 0);
  assert.equal(steps.afterBatch(0), undefined);
});

test("with a prompt still queued the loop waits until the sequence queues its next step", async () => {
  const { steps, queue } = handoff();
  queue.ids.push(5); // sequence 5's prompt, part evaluated
  let done = false;
  const wait = steps.afterBatch(0)!.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false);
  steps.queued(3); // another sequence's step does not end sequence 0's wait
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false);
  steps.queued(0);
  await wait;
  assert.deepEqual(steps.stats, { handedOff: 1, ended: 0, timedOut: 0 });
});

test("a generation that ends, or a consumer that does not ask in time, ends the wait", async () => {
  const { steps, queue } = handoff(5);
  queue.ids.push(5);
  const ended = steps.afterBatch(1)!;
  steps.ended(1);
  await ended;
  await steps.afterBatch(2);
  assert.deepEqual(steps.stats, { handedOff: 0, ended: 1, timedOut: 1 });
  steps.queued(2); // late: nothing to end any more
  assert.deepEqual(steps.stats, { handedOff: 0, ended: 1, timedOut: 1 });
});
