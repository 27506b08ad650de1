import { test } from "node:test";
import assert from "node:assert/strict";
import { createLlamaGuardClassifier, LLAMA_GUARD_MAX_TOKENS, type GuardCompletion, type GuardCompletionRequest } from "./guard-classifier.ts";
import { LLAMA_GUARD_CHAT_TEMPLATE, LlamaGuardOutputError, NEUTRAL_USER_TURN, guardConversation, renderLlamaGuardTask } from "./llama-guard.ts";

/** A scripted guard model: answers each request with the next output, recording what it was asked. */
function scripted(...outputs: string[]): { complete: GuardCompletion; requests: GuardCompletionRequest[]; signals: AbortSignal[] } {
  const requests: GuardCompletionRequest[] = [];
  const signals: AbortSignal[] = [];
  const complete: GuardCompletion = async (request, signal) => {
    requests.push(request);
    signals.push(signal);
    const output = outputs.shift();
    if (output === undefined) throw new Error("no scripted output left");
    return output;
  };
  return { complete, requests, signals };
}

const live = () => new AbortController().signal;

test("a safe verdict rates every category 0 and assesses no jailbreak", async () => {
  const model = scripted("\n\nsafe");
  const result = await createLlamaGuardClassifier(model.complete).classify("Tell me about llamas.", "prompt", live());
  assert.equal(result.jailbreak, undefined);
  assert.deepEqual(result, { severities: { hate: 0, sexual: 0, violence: 0, self_harm: 0 } });
});

test("an unsafe verdict maps its hazards to Azure severities", async () => {
  const model = scripted("unsafe\nS1,S10", " Unsafe \n s11 \n", "unsafe\nS2,S6");
  const guard = createLlamaGuardClassifier(model.complete);
  assert.deepEqual((await guard.classify("x", "prompt", live())).severities, { hate: 5, sexual: 0, violence: 6, self_harm: 0 });
  assert.deepEqual((await guard.classify("x", "completion", live())).severities, { hate: 0, sexual: 0, violence: 0, self_harm: 6 });
  // Hazards outside Azure's categories: flagged by the model, nothing to report.
  assert.deepEqual((await guard.classify("x", "prompt", live())).severities, { hate: 0, sexual: 0, violence: 0, self_harm: 0 });
});

test("the request: one user message holding the task, the guard template, the token cap; prompts as User, completions as Agent", async () => {
  const model = scripted("safe", "safe");
  const guard = createLlamaGuardClassifier(model.complete);
  const signal = live();
  await guard.classify("How do I sharpen a knife?", "prompt", signal);
  await guard.classify("Use a whetstone.", "completion", signal);
  assert.deepEqual(model.requests[0], {
    messages: [{ role: "user", content: renderLlamaGuardTask([{ role: "user", content: "How do I sharpen a knife?" }]) }],
    maxTokens: LLAMA_GUARD_MAX_TOKENS,
    chatTemplate: LLAMA_GUARD_CHAT_TEMPLATE,
  });
  assert.equal(model.requests[1]!.messages.length, 1);
  assert.equal(model.requests[1]!.messages[0]!.content, renderLlamaGuardTask(guardConversation("Use a whetstone.", "completion")));
  assert.ok(model.requests[1]!.messages[0]!.content.includes(`User: ${NEUTRAL_USER_TURN}\n\nAgent: Use a whetstone.`));
  assert.equal(model.requests[1]!.jsonSchema, undefined);
  assert.deepEqual(model.signals, [signal, signal]);
});

test("options: the 1B prompt, a custom hazard map, token cap and name", async () => {
  const model = scripted("unsafe\nS2");
  const guard = createLlamaGuardClassifier(model.complete, { variant: "1b", hazardMap: { S2: { category: "violence", severity: 3 } }, maxTokens: 20, name: "lg1b" });
  assert.equal(guard.name, "lg1b");
  assert.deepEqual((await guard.classify("x", "prompt", live())).severities, { hate: 0, sexual: 0, violence: 3, self_harm: 0 });
  assert.equal(model.requests[0]!.maxTokens, 20);
  assert.ok(!model.requests[0]!.messages[0]!.content.includes("S14"));
  assert.equal(createLlamaGuardClassifier(model.complete).name, "llama-guard");
  assert.throws(() => createLlamaGuardClassifier(model.complete, { hazardMap: { S1: { category: "violence", severity: 8 } } }), /S1/);
  assert.throws(() => createLlamaGuardClassifier(model.complete, { maxTokens: 0 }));
});

test("output that is not a verdict rejects", async () => {
  for (const output of ["", "I cannot help with that.", "unsafe", "unsafe\nS99", "safe?"]) {
    const guard = createLlamaGuardClassifier(scripted(output).complete);
    await assert.rejects(guard.classify("x", "prompt", live()), LlamaGuardOutputError, JSON.stringify(output));
  }
});

test("whitespace-only text is safe without a model call", async () => {
  const model = scripted();
  const result = await createLlamaGuardClassifier(model.complete).classify(" \n\t", "completion", live());
  assert.deepEqual(result.severities, { hate: 0, sexual: 0, violence: 0, self_harm: 0 });
  assert.equal(model.requests.length, 0);
});

test("abort: an aborted signal rejects before any call; an abort during generation rejects with its reason", async () => {
  const model = scripted("safe");
  const guard = createLlamaGuardClassifier(model.complete);
  const aborted = new AbortController();
  aborted.abort(new Error("timed out"));
  await assert.rejects(guard.classify("x", "prompt", aborted.signal), /timed out/);
  assert.equal(model.requests.length, 0);

  const controller = new AbortController();
  const hanging: GuardCompletion = (_request, signal) =>
    new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
  const pending = createLlamaGuardClassifier(hanging).classify("x", "prompt", controller.signal);
  controller.abort(new Error("classifier timeout"));
  await assert.rejects(pending, /classifier timeout/);
});

test("a failing completion function rejects the classification", async () => {
  const failing: GuardCompletion = async () => {
    throw new Error("guard deployment unavailable");
  };
  await assert.rejects(createLlamaGuardClassifier(failing).classify("x", "prompt", live()), /guard deployment unavailable/);
});
