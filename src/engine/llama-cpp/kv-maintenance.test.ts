import { test } from "node:test";
import assert from "node:assert/strict";
import { KvMaintenance } from "./kv-maintenance.ts";

const turn = () => new Promise((r) => setImmediate(r));

test("generating sequences wait for an announced edit, which runs after the ones before it", async () => {
  const maintenance = new KvMaintenance();
  const order: string[] = [];
  let finish!: () => void;
  const first = maintenance.run(() => new Promise<void>((r) => (finish = r)).then(() => void order.push("first")));
  const second = maintenance.run(async () => void order.push("second"));
  assert.equal(maintenance.isPending, true);
  const idle = maintenance.idle().then(() => order.push("idle"));
  await turn();
  assert.deepEqual(order, []);
  finish();
  await Promise.all([first, second, idle]);
  assert.deepEqual(order, ["first", "second", "idle"]);
  assert.equal(maintenance.isPending, false);
});

test("while a part-evaluated prompt keeps the batch loop busy, sequences do not pause for an edit; once it is queued, waiting ones go on", async () => {
  let promptQueued = false;
  const maintenance = new KvMaintenance(() => promptQueued);
  let finish!: () => void;
  const edit = maintenance.run(() => new Promise<void>((r) => (finish = r)));
  let resumed = false;
  const waiting = maintenance.idle().then(() => (resumed = true));
  await turn();
  assert.equal(resumed, false, "nothing else keeps the loop busy: pausing lets the edit run");
  promptQueued = true;
  maintenance.recheck();
  await waiting;
  assert.equal(maintenance.isPending, false, "the edit cannot run before the prompt is done: no point in pausing");
  promptQueued = false;
  assert.equal(maintenance.isPending, true, "the prompt is done: pause, the loop drains, the edit runs");
  finish();
  await edit;
  assert.equal(maintenance.isPending, false);
});
