import { test } from "node:test";
import assert from "node:assert/strict";
import { AdmissionScheduler, type Admission } from "./admission-scheduler.ts";
import { AppError } from "../errors/app-error.ts";

const never = new AbortController().signal;
const ask = (s: AdmissionScheduler, tenant: string, slots = 1, signal = never) => s.admit({ tenant, slots, signal });

test("admits up to the slot count at once, then queues until a release", async () => {
  const s = new AdmissionScheduler({ slots: 2, maxQueue: 10 });
  const a = await ask(s, "x");
  await ask(s, "x");
  let third: Admission | undefined;
  const pending = ask(s, "x").then((adm) => (third = adm));
  await new Promise((r) => setImmediate(r));
  assert.equal(third, undefined);
  assert.equal(s.stats().queued, 1);
  a.release();
  await pending;
  assert.ok(third);
  assert.equal(s.stats().busySlots, 2);
});

test("a full queue answers OVERLOADED with a retry-after of at least one second", async () => {
  const s = new AdmissionScheduler({ slots: 1, maxQueue: 1 });
  await ask(s, "x");
  void ask(s, "x");
  await assert.rejects(ask(s, "x"), (e: unknown) => e instanceof AppError && e.code === "OVERLOADED" && (e.retryAfterSeconds ?? 0) >= 1);
});

test("tenants are served round-robin: one tenant's backlog cannot starve another's single request", async () => {
  const s = new AdmissionScheduler({ slots: 1, maxQueue: 100 });
  const first = await ask(s, "busy");
  const order: string[] = [];
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < 5; i++) all.push(ask(s, "busy").then((adm) => { order.push(`busy${i}`); adm.release(); }));
  all.push(ask(s, "quiet").then((adm) => { order.push("quiet"); adm.release(); }));
  first.release();
  await Promise.all(all);
  assert.equal(order.indexOf("quiet"), 1, order.join(","));
});

test("a client that goes away leaves the queue; a deadline in the queue gives GENERATION_TIMEOUT", async () => {
  const s = new AdmissionScheduler({ slots: 1, maxQueue: 10 });
  const held = await ask(s, "x");
  const gone = new AbortController();
  const leaving = ask(s, "x", 1, gone.signal);
  gone.abort(new Error("client closed"));
  await assert.rejects(leaving, /client closed/);
  assert.equal(s.stats().queued, 0);
  const late = s.admit({ tenant: "x", slots: 1, signal: never, deadlineAt: performance.now() + 5 });
  await assert.rejects(late, (e: unknown) => e instanceof AppError && e.code === "GENERATION_TIMEOUT");
  held.release();
});

test("a request needing several slots is not overtaken, and is admitted once they are free", async () => {
  const s = new AdmissionScheduler({ slots: 3, maxQueue: 10 });
  const a = await ask(s, "a", 2);
  const big = ask(s, "b", 3);
  let small = false;
  const smallP = ask(s, "c", 1).then((adm) => { small = true; return adm; });
  await new Promise((r) => setImmediate(r));
  assert.equal(small, false, "the small request waits behind the big one");
  a.release();
  (await big).release();
  (await smallP).release();
  assert.equal(small, true);
});

test("drain: queued requests and new ones get 503, in-flight ones finish, whenIdle resolves", async () => {
  const s = new AdmissionScheduler({ slots: 1, maxQueue: 10 });
  const held = await ask(s, "x");
  const queued = ask(s, "x");
  s.drain();
  await assert.rejects(queued, (e: unknown) => e instanceof AppError && e.code === "OVERLOADED");
  await assert.rejects(ask(s, "x"), (e: unknown) => e instanceof AppError && e.code === "OVERLOADED");
  let idle = false;
  const idleP = s.whenIdle().then(() => (idle = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(idle, false);
  held.release();
  await idleP;
});
