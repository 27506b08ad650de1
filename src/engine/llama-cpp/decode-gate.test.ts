import { test } from "node:test";
import assert from "node:assert/strict";
import type { BatchItem, Token } from "node-llama-cpp";
import { DecodeGate, decodeFirstStrategy, inRowBlocks, sharesDecodeMicroBatch, type DecodeSlot } from "./decode-gate.ts";

/** Settles pending promises and the gate's one-turn release. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Tracks whether a ready() call let the slot go. */
function ask(slot: DecodeSlot): { released: () => boolean; wait: Promise<void> } {
  const gated = slot.ready();
  let released = gated === undefined;
  const wait = (gated ?? Promise.resolve()).then(() => void (released = true));
  return { released: () => released, wait };
}

test("a lone decoding sequence goes at once, without waiting a turn", () => {
  const gate = new DecodeGate();
  const slot = gate.join();
  for (let i = 0; i < 3; i++) {
    assert.equal(slot.ready(), undefined);
    slot.returned();
  }
  assert.deepEqual(gate.stats, { groupsComplete: 0, groupsAfterGrace: 0, soloSteps: 3 });
});

test("decoding sequences are released together once every one of them is ready", async () => {
  const gate = new DecodeGate({ graceMs: () => 60_000 });
  const slots = [gate.join(), gate.join(), gate.join(), gate.join()];
  const asks = slots.slice(0, 3).map(ask);
  await turn();
  assert.deepEqual(asks.map((a) => a.released()), [false, false, false]);
  asks.push(ask(slots[3]!));
  assert.equal(asks[3]!.released(), false, "the release waits one turn even for the last one");
  await Promise.all(asks.map((a) => a.wait));
  assert.deepEqual(gate.stats, { groupsComplete: 1, groupsAfterGrace: 0, soloSteps: 0 });
});

test("a sequence ready early waits for the steps still in flight, then all go together", async () => {
  const gate = new DecodeGate({ graceMs: () => 60_000 });
  const [a, b] = [gate.join(), gate.join()];
  await Promise.all([ask(a).wait, ask(b).wait]); // both in flight now
  a.returned();
  const early = ask(a);
  await turn();
  assert.equal(early.released(), false, "b's step is still in flight");
  b.returned();
  await turn();
  assert.equal(early.released(), false, "b holds its token but has not asked for the next");
  const late = ask(b);
  await Promise.all([early.wait, late.wait]);
  assert.equal(gate.stats.groupsComplete, 2);
});

test("a stalled consumer holds the others for one grace period only, then is not waited for until it comes back", async () => {
  const gate = new DecodeGate({ graceMs: () => 5 });
  const slots = [gate.join(), gate.join(), gate.join()];
  const stalled = slots[2]!;
  const others = slots.slice(0, 2);
  await Promise.all(others.map((s) => ask(s).wait)); // released after the grace period
  assert.equal(gate.stats.groupsAfterGrace, 1);
  for (let i = 0; i < 5; i++) {
    for (const s of others) s.returned();
    await Promise.all(others.map((s) => ask(s).wait));
  }
  assert.equal(gate.stats.groupsAfterGrace, 1, "the absent consumer was not waited for again");
  assert.equal(gate.stats.groupsComplete, 5);
  // It comes back while the others are in flight: it waits for them, and the group is whole again.
  const back = ask(stalled);
  await turn();
  assert.equal(back.released(), false);
  for (const s of others) s.returned();
  const again = others.map(ask);
  await Promise.all([back.wait, ...again.map((a) => a.wait)]);
  assert.equal(gate.stats.groupsComplete, 6);
});

test("a sequence that leaves (finished, aborted) is not waited for", async () => {
  const gate = new DecodeGate({ graceMs: () => 60_000 });
  const [a, b, c] = [gate.join(), gate.join(), gate.join()];
  const asks = [ask(a), ask(b)];
  await turn();
  assert.deepEqual(asks.map((x) => x.released()), [false, false]);
  c.leave();
  c.leave(); // idempotent
  await Promise.all(asks.map((x) => x.wait));
  assert.equal(gate.participants, 2);
  // Leaving while in flight frees the others too.
  a.returned();
  const next = ask(a);
  b.leave();
  await next.wait;
  assert.equal(gate.participants, 1);
});

const item = (tokens: number): BatchItem => ({ tokens: Array(tokens).fill(1 as Token), logits: Array(tokens).fill(undefined), evaluationPriority: 5 });

test("batch strategy: decode tokens first, at most the cap, prompts share what is left", () => {
  const batches: [number, number, boolean][] = [];
  const record = (d: number, p: number, ordered: boolean) => void batches.push([d, p, ordered]);
  const decodes = [item(1), item(1), item(1), item(1)];
  const prompt = item(300);
  const all = decodeFirstStrategy(0, record)({ items: [decodes[0]!, prompt, ...decodes.slice(1)], size: 64 });
  assert.deepEqual(all.map((p) => p.processAmount), [1, 1, 1, 1, 60]);
  assert.equal(all[4]!.item, prompt);
  const capped = decodeFirstStrategy(2, record)({ items: decodes, size: 64 });
  assert.deepEqual(capped.map((p) => decodes.indexOf(p.item)), [0, 1]);
  // Two prompts: even shares, then what the short one leaves goes to the long one.
  const short = item(10);
  const long = item(500);
  const prompts = decodeFirstStrategy(0, record)({ items: [long, short, decodes[0]!], size: 101 });
  assert.deepEqual(prompts.map((p) => [p.item.tokens.length, p.processAmount]), [[1, 1], [500, 90], [10, 10]]);
  assert.deepEqual(batches, [[4, 60, false], [2, 0, false], [1, 100, false]]);
});

test("batch strategy: the batch is ordered by sequence id, prompts included, so llama.cpp takes it in one micro-batch", () => {
  const items = [item(1), item(1), item(40), item(1), item(1)];
  const sequenceOf = [2, 0, 1, 3, 7];
  const ordered = decodeFirstStrategy(0, undefined, (_, index) => sequenceOf[index])({ items, size: 64 });
  assert.deepEqual(ordered.map((p) => sequenceOf[items.indexOf(p.item)]), [0, 1, 2, 3, 7]);
  assert.deepEqual(ordered.map((p) => p.processAmount), [1, 40, 1, 1, 1]);
  // With a cap the first ones in queue order get the places, then the batch is ordered.
  const capped = decodeFirstStrategy(2, undefined, (_, index) => sequenceOf[index])({ items, size: 64 });
  assert.deepEqual(capped.map((p) => sequenceOf[items.indexOf(p.item)]), [0, 1, 2]);
});

test("batch strategy: with decode tokens in the batch, prompts get at most the step budget; alone they get the whole batch", () => {
  const decodes = [item(1), item(1)];
  const prompt = item(300);
  const budgets: number[] = [];
  const budget = (decodeTokens: number) => (budgets.push(decodeTokens), decodeTokens > 0 ? 24 : Infinity);
  const mixed = decodeFirstStrategy(0, undefined, undefined, budget)({ items: [prompt, ...decodes], size: 512 });
  assert.deepEqual(mixed.map((p) => p.processAmount), [1, 1, 24]);
  const alone = decodeFirstStrategy(0, undefined, undefined, budget)({ items: [prompt], size: 512 });
  assert.deepEqual(alone.map((p) => p.processAmount), [300]);
  assert.deepEqual(budgets, [2, 0]);
});

test("batch strategy: under the step budget the prompt with the fewest tokens left goes first, queue order among equals", () => {
  const budget = (decodeTokens: number) => (decodeTokens > 0 ? 50 : Infinity);
  const decode = item(1);
  const [first, second, started, short] = [item(130), item(130), item(70), item(20)];
  const batch = decodeFirstStrategy(0, undefined, undefined, budget)({ items: [first, second, started, short, decode], size: 512 });
  // 50 prompt tokens: all 20 of the short one, then 30 left, of which the part-evaluated one takes 28 (whole blocks
  // of 4 rows); the two untouched ones wait.
  assert.deepEqual(batch.map((p) => [p.item.tokens.length, p.processAmount]), [[1, 1], [70, 28], [20, 20]]);
  const equal = decodeFirstStrategy(0, undefined, undefined, budget)({ items: [first, second, decode], size: 512 });
  assert.deepEqual(equal.map((p) => [p.item, p.processAmount]), [[decode, 1], [first, 48]]);
  // A prompt that fits the budget is taken whole, not cut to whole blocks (its first token would wait a step).
  const whole = decodeFirstStrategy(0, undefined, undefined, budget)({ items: [item(50), decode], size: 512 });
  assert.deepEqual(whole.map((p) => p.processAmount), [1, 50]);
  // Where the batch's size limits and not the budget, the prompts still share evenly (they finish together).
  const roomy = decodeFirstStrategy(0, undefined, undefined, () => 1000)({ items: [first, second, decode], size: 101 });
  assert.deepEqual(roomy.map((p) => p.processAmount), [1, 50, 50]);
});

test("a chunk cut by the budget fills whole blocks of 4 rows, after the row it puts in the decode micro-batch", () => {
  assert.equal(inRowBlocks(39, 0), 36);
  assert.equal(inRowBlocks(40, 0), 40);
  assert.equal(inRowBlocks(39, 1), 37, "1 row with the decode tokens, 36 in blocks");
  assert.equal(inRowBlocks(6, 0), 4);
  assert.equal(inRowBlocks(3, 0), 3, "less than a block: as it is");
  assert.equal(inRowBlocks(4, 1), 4);
});

test("batch strategy: a prompt chunk stays out of the decode tokens' micro-batch unless its row completes a block there", () => {
  const decodes = [item(1), item(1), item(1)];
  const rows: number[] = [];
  const record = (_d: number, _p: number, _o: boolean, decodeRows: number) => void rows.push(decodeRows);
  const strategy = (items: BatchItem[], sequenceOf: number[]) => decodeFirstStrategy(0, record, (_, index) => sequenceOf[index])({ items, size: 64 });
  const prompt = item(40);
  // Sequences 0 and 1 decode, 2 evaluates its prompt: the prompt goes first (llama.cpp's first micro-batch is
  // sequence 2's 40 rows, then 0 and 1 together): 2 rows outside blocks of 4, where sequence order gives 3 + 39 rows.
  assert.deepEqual(strategy([decodes[0]!, prompt, decodes[1]!], [0, 2, 1]).map((p) => p.item), [prompt, decodes[0], decodes[1]]);
  // Three decoding and a chunk of 41: sequence order makes blocks of 4 + 40, apart 3 + 41 would leave 4 rows outside.
  const odd = item(41);
  assert.deepEqual(strategy([decodes[0]!, decodes[1]!, decodes[2]!, odd], [0, 1, 2, 3]).map((p) => p.item), [...decodes, odd]);
  // Decoding sequences 0 and 2, the prompt on 1: prompts first would put 2 in the prompt's micro-batch (its id
  // follows on), so the batch stays in sequence order.
  assert.deepEqual(strategy([decodes[0]!, prompt, decodes[1]!], [0, 1, 2]).map((p) => p.item), [decodes[0], prompt, decodes[1]]);
  assert.deepEqual(rows, [2, 4, 3]);
  assert.equal(sharesDecodeMicroBatch(1, 40), false);
  assert.equal(sharesDecodeMicroBatch(3, 41), true);
  assert.equal(sharesDecodeMicroBatch(7, 60), true, "8 + 59 rows leave 3 outside blocks, as 7 + 60 do: a tie keeps sequence order");
});

test("the strategy names the sequences that decode next: single tokens, and prompts whose generating last chunk it takes", () => {
  const generatingPrompt = (tokens: number): BatchItem => ({ ...item(tokens), logits: [...Array(tokens - 1).fill(undefined), true] });
  const items = [item(1), generatingPrompt(10), generatingPrompt(40), item(30)];
  const heard: [number, boolean][] = [];
  const strategy = decodeFirstStrategy(0, undefined, (_item, index) => index, (decode) => (decode > 0 ? 30 : Infinity), (id, promptDone) => heard.push([id, promptDone]));
  // 1 decode token, then 30 prompt tokens, shortest first: all 10 of item 1 (its last chunk), 20 of item 3; item 2
  // waits. Two prompts in the batch: it stays in sequence order.
  const batch = strategy({ items, size: 64 });
  assert.deepEqual(batch.map((b) => [items.indexOf(b.item), b.processAmount]), [[0, 1], [1, 10], [3, 20]]);
  assert.deepEqual(heard, [[0, false], [1, true]]);
  // A prompt that does not generate (no logits on its last token) is not named even when it finishes.
  heard.length = 0;
  strategy({ items: [item(3)], size: 64 });
  assert.deepEqual(heard, []);
});

test("a sequence whose first token came back first waits for those about to join, instead of stepping alone", async () => {
  let expected = 2;
  const gate = new DecodeGate({ graceMs: () => 60_000, expected: () => expected });
  const first = gate.join();
  const a = ask(first);
  await turn();
  assert.equal(a.released(), false, "two sequences' first tokens are still on their way");
  expected = 1;
  const second = gate.join();
  const b = ask(second);
  expected = 0;
  const third = gate.join();
  const c = ask(third);
  await Promise.all([a.wait, b.wait, c.wait]);
  assert.deepEqual(gate.stats, { groupsComplete: 1, groupsAfterGrace: 0, soloSteps: 0 });
});

test("a sequence expected but never joining holds the others one grace period only", async () => {
  const gate = new DecodeGate({ graceMs: () => 5, expected: () => 1 });
  const slot = gate.join();
  await ask(slot).wait;
  assert.deepEqual(gate.stats, { groupsComplete: 0, groupsAfterGrace: 1, soloSteps: 0 });
});
