import { test } from "node:test";
import assert from "node:assert/strict";
import { LlamaContext, LlamaContextSequence, TokenBias, type BatchItem, type Token } from "node-llama-cpp";
import {
  batchItemSequenceIds,
  checkNodeLlamaCppVersion,
  checkNoTopK,
  hookQueuedDecodes,
  installedNodeLlamaCppVersion,
  LogitSteps,
  tokenBiasEntries,
  VERIFIED_VERSION,
} from "./node-llama-cpp-internals.ts";

const asContext = (value: object) => value as unknown as LlamaContext;
const asBias = (value: object) => value as unknown as TokenBias;
const item = (tokens: Token[]): BatchItem => ({ tokens, logits: [], evaluationPriority: 5 }) as unknown as BatchItem;

test("the installed node-llama-cpp is the version the private fields were verified against", () => {
  assert.equal(installedNodeLlamaCppVersion(), VERIFIED_VERSION);
  assert.doesNotThrow(() => checkNodeLlamaCppVersion());
});

test("another node-llama-cpp version fails with an error naming both versions and the fields", () => {
  assert.throws(() => checkNodeLlamaCppVersion("3.23.0"), (error: Error) => {
    assert.match(error.message, /node-llama-cpp 3\.23\.0 is installed/);
    assert.ok(error.message.includes(`verified against ${VERIFIED_VERSION}`));
    assert.match(error.message, /LlamaContext\._queuedDecodes, TokenBias\._biases/);
    return true;
  });
});

test("a context without _queuedDecodes fails with an error naming the version and the field", () => {
  assert.throws(() => batchItemSequenceIds(asContext({ _pendingDecodes: [] }), "9.9.9"), (error: Error) => {
    assert.match(error.message, /^node-llama-cpp 9\.9\.9: LlamaContext\._queuedDecodes is missing or is not an array/);
    return true;
  });
  assert.throws(() => batchItemSequenceIds(asContext({ _queuedDecodes: new Set() })), /LlamaContext\._queuedDecodes/);
});

test("a TokenBias without the _biases map fails with an error naming the version and the field", () => {
  assert.throws(() => tokenBiasEntries(asBias({ _biases: {} }), "9.9.9"), (error: Error) => {
    assert.match(error.message, /^node-llama-cpp 9\.9\.9: TokenBias\._biases is missing or is not a Map/);
    return true;
  });
  const entries = new Map<Token, number>();
  assert.equal(tokenBiasEntries(asBias({ _biases: entries })), entries);
});

test("the installed TokenBias has the _biases map (its constructor only keeps the tokenizer)", () => {
  assert.ok(tokenBiasEntries(new TokenBias({} as never)) instanceof Map);
});

test("batch items get the sequence id of the queued decode they were built from, read live", () => {
  const a = [1, 2, 3] as Token[];
  const b = [4] as Token[];
  const context = { _queuedDecodes: [{ sequenceId: 2, tokens: a }] as { sequenceId: number; tokens: Token[] }[] };
  const sequenceOf = batchItemSequenceIds(asContext(context));
  context._queuedDecodes.push({ sequenceId: 0, tokens: b });
  assert.equal(sequenceOf(item(a), 0), 2);
  assert.equal(sequenceOf(item(b), 1), 0);
  assert.equal(sequenceOf(item([4] as Token[]), 1), undefined, "an equal but different tokens array is not the same decode");
  assert.equal(sequenceOf(item(a), 5), undefined, "no queued decode at that index");
});

test("the installed node-llama-cpp builds a sampler config without top-k for NO_TOP_K (and keeps 0, a whole-vocabulary top-k)", () => {
  checkNoTopK(LlamaContextSequence.prototype);
  const resolve = (LlamaContextSequence.prototype as unknown as { _resolveSamplerConfig(o: object): Record<string, unknown> })._resolveSamplerConfig;
  assert.equal(resolve.call({ model: {} }, { temperature: 1, topK: 0 }).topK, 0);
  assert.throws(() => checkNoTopK({}, "9.9.9"), /9\.9\.9.*_resolveSamplerConfig/);
  const keepsNull = { _resolveSamplerConfig: (options: object) => ({ ...options }) };
  assert.throws(() => checkNoTopK(keepsNull, "9.9.9"), /dropping a null topK/);
});

test("LogitSteps fails at construction, naming the version and the field, when a private piece it needs is gone", () => {
  const complete = {
    _decodeTokens: () => Promise.resolve([]),
    _resolveSamplerConfig: () => ({}),
    _tokenMeter: {},
    _contextShift: { size: 1, strategy: "eraseBeginning" },
    context: { _ctx: { sampleToken: () => Promise.resolve([]) } },
    model: { _model: {}, _llama: { _bindings: { AddonSampler: class {} } } },
  };
  const asSequence = (value: object) => value as unknown as LlamaContextSequence;
  assert.doesNotThrow(() => new LogitSteps(asSequence(complete), "9.9.9"));
  for (const [field, broken] of [
    ["_decodeTokens", { ...complete, _decodeTokens: undefined }],
    ["_resolveSamplerConfig", { ...complete, _resolveSamplerConfig: undefined }],
    ["_tokenMeter", { ...complete, _contextShift: undefined }],
    ["_ctx.sampleToken", { ...complete, context: { _ctx: {} } }],
    ["AddonSampler", { ...complete, model: { _model: {}, _llama: {} } }],
  ] as const) {
    assert.throws(() => new LogitSteps(asSequence(broken), "9.9.9"), (error: Error) => {
      assert.match(error.message, /^node-llama-cpp 9\.9\.9: /);
      assert.ok(error.message.includes(field), `${field}: ${error.message}`);
      return true;
    });
  }
});

test("hooked queue entries: the library's _decodeTokens queues them, a sampling one gets an after-batch action after the library's own", async () => {
  // The installed LlamaContext's own _decodeTokens on a bare context: it pushes to _queuedDecodes and schedules a dispatch.
  const context = Object.assign(Object.create(LlamaContext.prototype) as object, {
    _queuedDecodes: [] as { sequenceId: number; afterBatchAction?: (this: unknown, length: number) => unknown }[],
    _queuedDecodeSequenceIds: new Set<number>(),
    _scheduleDecode: () => undefined,
  });
  const heard: string[] = [];
  const queue = hookQueuedDecodes(asContext(context), {
    queued: (id) => void heard.push(`queued ${id}`),
    afterBatch: (id) => (heard.push(`after ${id}`), undefined),
  });
  const own = function (this: unknown, length: number) {
    heard.push(`own ${length} ${this === context._queuedDecodes[0]}`);
  };
  const entry = { tokens: [1, 2] as Token[], firstTokenSequenceIndex: 0, evaluationPriority: 5, tokenMeter: {}, afterBatchAction: own };
  const decode = asContext(context) as unknown as { _decodeTokens(queued: object, mapper: unknown): Promise<unknown> };
  void decode._decodeTokens({ ...entry, sequenceId: 3, logits: [undefined, true] }, () => undefined);
  void decode._decodeTokens({ ...entry, sequenceId: 4, logits: [], afterBatchAction: undefined }, () => undefined);
  assert.deepEqual(heard, ["queued 3", "queued 4"]);
  assert.equal(queue().size, 2);
  assert.equal(queue().has(4), true);
  assert.equal(queue().has(0), false);
  const [sampling, prompt] = context._queuedDecodes;
  // The batch loop calls the action on the queue entry.
  assert.equal(sampling!.afterBatchAction!.call(sampling, 7), undefined);
  assert.deepEqual(heard.slice(2), ["own 7 true", "after 3"]);
  assert.equal(prompt!.afterBatchAction, undefined, "an item that samples nothing is not waited after");
  assert.throws(() => hookQueuedDecodes(asContext({ _queuedDecodes: [] }), { queued: () => undefined, afterBatch: () => undefined }, "9.9.9"), /9\.9\.9: LlamaContext\._decodeTokens/);
});
