/**
 * Decode-row padding: the policy (which batches are filled, by how many rows) and `padDecodeRows` on the
 * real node-llama-cpp batch loop with the tiny test model: padded batches compute the same tokens as
 * unpadded ones, and the idle sequences whose rows filled them are left exactly as they were.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { getLlama, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import { ensureTestModel } from "../../model-factory/test-models.ts";
import { decodeRowPadding } from "./decode-row-padding.ts";
import { padDecodeRows } from "./node-llama-cpp-internals.ts";

let llama: Llama;
let model: LlamaModel;

before(async () => {
  llama = await getLlama({ gpu: false, build: "never" });
  model = await llama.loadModel({ modelPath: await ensureTestModel() });
});

after(async () => {
  await model?.dispose();
  await llama?.dispose();
});

test("batches of 2, 3 and 7 rows are filled to their block of 4; 1, 4, 5, 6 and 8 are left alone", () => {
  const padding = Array.from({ length: 12 }, (_, i) => decodeRowPadding(i + 1));
  assert.deepEqual(padding, [0, 2, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0]);
});

test("padDecodeRows fails at once, naming the field, on a context without the native methods it needs", () => {
  const context = { _ctx: { initBatch() {}, decodeBatch() {} } } as unknown as LlamaContext;
  assert.throws(() => padDecodeRows(context, { padding: () => 0, padded: () => {}, failed: () => {} }, 3, "9.9.9"), /^Error: node-llama-cpp 9\.9\.9: LlamaContext\._ctx\.initBatch\/addToBatch/);
});

interface Run {
  /** Each decoding sequence's greedy tokens and their logits, then the idle sequence's after the decoding ended. */
  tokens: Token[][];
  logits: number[][];
  idleNext: number[];
  padded: { rows: number; added: number }[];
}

/**
 * On a fresh context of 4 sequences, each primed with its own prompt: `decoding` sequences take 10 greedy steps in
 * lockstep (each step queued for all of them in one turn, so they share a native batch), then sequence 3, idle
 * until then, takes 6.
 */
async function lockstep(decoding: number, pad: boolean): Promise<Run> {
  const context = await model.createContext({ sequences: 4, contextSize: 256, threads: 1, batchSize: 128 });
  const padded: Run["padded"] = [];
  const failures: unknown[] = [];
  if (pad) padDecodeRows(context, { padding: decodeRowPadding, padded: (rows, added) => padded.push({ rows, added }), failed: (row) => failures.push(row) });
  try {
    const sequences: LlamaContextSequence[] = Array.from({ length: 4 }, () => context.getSequence());
    const prompts = ["river stone light", "garden window silver", "market music paper", "forest engine winter"].map((text) => model.tokenize(text));
    for (const [i, sequence] of sequences.entries()) await sequence.evaluateWithoutGeneratingNewTokens(prompts[i]!.slice(0, -1));
    /** One greedy step of each sequence, all queued in this turn: the token each samples and its logit. */
    const step = (group: LlamaContextSequence[], last: Token[]) =>
      Promise.all(group.map(async (sequence, i) => {
        const [result] = await sequence.controlledEvaluate([[last[i]!, { generateNext: { token: true, logits: { filter: { tokens: [], includeSelected: true } }, options: { temperature: 0 } } }]]);
        const token = result!.next.token!;
        return { token, logit: result!.next.logits!.get(token)! };
      }));
    const walk = async (group: LlamaContextSequence[], first: Token[], count: number) => {
      const tokens: Token[][] = group.map(() => []);
      const logits: number[][] = group.map(() => []);
      let last = first;
      for (let n = 0; n < count; n++) {
        const results = await step(group, last);
        results.forEach((result, i) => (tokens[i]!.push(result.token), logits[i]!.push(result.logit)));
        last = results.map((result) => result.token);
      }
      return { tokens, logits };
    };
    const idleBefore = sequences[3]!.nextTokenIndex;
    const active = await walk(sequences.slice(0, decoding), prompts.slice(0, decoding).map((prompt) => prompt.at(-1)!), 10);
    const idleNext = [idleBefore, sequences[3]!.nextTokenIndex];
    const idle = await walk([sequences[3]!], [prompts[3]!.at(-1)!], 6);
    assert.deepEqual(failures, []);
    return { tokens: [...active.tokens, ...idle.tokens], logits: [...active.logits, ...idle.logits], idleNext, padded };
  } finally {
    await context.dispose();
  }
}

for (const decoding of [2, 3]) {
  test(`${decoding} sequences decoding together: padded batches give the same tokens, and the idle sequence is untouched`, async () => {
    const plain = await lockstep(decoding, false);
    const padded = await lockstep(decoding, true);
    // Every step of the decoding sequences was one batch of `decoding` rows, filled; sequence 3's own steps (1 row) were not.
    assert.deepEqual(padded.padded, Array.from({ length: 10 }, () => ({ rows: decoding, added: decodeRowPadding(decoding) })));
    assert.deepEqual(padded.tokens, plain.tokens);
    assert.deepEqual(padded.logits, plain.logits);
    // Its cells were borrowed for a row and given back every step: its record and its continuation are as without.
    assert.equal(padded.idleNext[1], padded.idleNext[0]);
    assert.equal(padded.tokens.at(-1)!.length, 6);
  });
}
