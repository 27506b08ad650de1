import { test } from "node:test";
import assert from "node:assert/strict";
import { LlamaContextSequence, TokenBias, type BatchItem, type LlamaContext, type Token } from "node-llama-cpp";
import {
  batchItemSequenceIds,
  checkNodeLlamaCppVersion,
  checkNoTopK,
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
