import { test } from "node:test";
import assert from "node:assert/strict";
import type { EngineEvent, FinishReason, TokenLogprob } from "../engine/engine.ts";
import { ChoiceOutput, type ChoiceEvent } from "./choice-output.ts";
import type { OutputReading } from "./prompt-plan.ts";

type StepEvent = Exclude<EngineEvent, { type: "done" }>;

const token = (text: string, logprobs?: TokenLogprob[]): StepEvent => ({ type: "token", text, tokenCount: 1, ...(logprobs ? { logprobs } : {}) });
const lp = (text: string): TokenLogprob => ({ token: text, logprob: -0.5, bytes: [...Buffer.from(text)], topLogprobs: [] });

interface Options {
  reading?: OutputReading;
  stop?: string[];
  trim?: boolean;
  logprobs?: boolean;
}

/** Feeds the events until one says stop, then finishes; returns every delivered event and where it stopped. */
function run(events: StepEvent[], engineReason: FinishReason, options: Options = {}): { delivered: ChoiceEvent[]; stoppedAt: number | undefined } {
  const output = new ChoiceOutput(options.reading ?? "text", options.stop ?? [], options.trim ?? false, options.logprobs ?? false);
  const delivered: ChoiceEvent[] = [];
  let stoppedAt: number | undefined;
  for (const [i, event] of events.entries()) {
    const { events: now, stopped } = output.accept(event);
    delivered.push(...now);
    if (stopped) {
      stoppedAt = i;
      break;
    }
  }
  delivered.push(...output.finish(engineReason));
  return { delivered, stoppedAt };
}

const textOf = (events: ChoiceEvent[]) => events.flatMap((e) => (e.type === "text" ? [e.text] : [])).join("");
const last = (events: ChoiceEvent[]) => events.at(-1);

test("plain text passes through token by token and ends with the engine's reason", () => {
  for (const reason of ["stop", "length"] as const) {
    const { delivered } = run([token("Hel"), token("lo"), token("")], reason);
    assert.deepEqual(delivered, [
      { type: "text", text: "Hel" },
      { type: "text", text: "lo" },
      { type: "end", finishReason: reason },
    ]);
  }
});

test("a stop string split across tokens is never emitted; it ends the choice with stop even at the length limit", () => {
  const { delivered, stoppedAt } = run([token("Hel"), token("lo E"), token("ND more"), token("never read")], "length", { stop: ["END"] });
  assert.equal(stoppedAt, 2);
  assert.equal(textOf(delivered), "Hello ");
  assert.deepEqual(last(delivered), { type: "end", finishReason: "stop" });
  // The possible start of a stop string is held back, not lost, when the stop never completes.
  const held = run([token("abc E"), token("N")], "length", { stop: ["END"] });
  assert.equal(held.stoppedAt, undefined);
  assert.deepEqual(held.delivered, [
    { type: "text", text: "abc " },
    { type: "text", text: "EN" },
    { type: "end", finishReason: "length" },
  ]);
});

test("the earliest of several stop strings wins", () => {
  const { delivered } = run([token("one two three")], "stop", { stop: ["three", "two"] });
  assert.equal(textOf(delivered), "one ");
});

test("logprobs follow the delivered text: held entries wait, entries of cut text are never sent", () => {
  const events = [token("He", [lp("He")]), token("llo", [lp("llo")]), token(" E", [lp(" E")]), token("ND", [lp("ND")])];
  const { delivered } = run(events, "length", { stop: ["END"], logprobs: true });
  assert.deepEqual(delivered, [
    { type: "text", text: "He", logprobs: [lp("He")] },
    { type: "text", text: "llo", logprobs: [lp("llo")] },
    // " E" is only half delivered (the "E" is held back): its entry waits, and the stop string then cuts it.
    { type: "text", text: " ", logprobs: [] },
    { type: "end", finishReason: "stop" },
  ]);
  // Held text released at the end brings its entries along; tokens with several entries keep them all.
  const released = run([token("ab", [lp("a"), lp("b")]), token(" E", [lp(" E")])], "stop", { stop: ["END"], logprobs: true });
  assert.deepEqual(released.delivered.slice(0, 2), [
    { type: "text", text: "ab", logprobs: [lp("a"), lp("b")] },
    { type: "text", text: " ", logprobs: [] },
  ]);
  assert.deepEqual(released.delivered[2], { type: "text", text: "E", logprobs: [lp(" E")] });
});

test("without logprobs asked for, text events carry no logprobs key even when the engine sends entries", () => {
  const { delivered } = run([token("Hi", [lp("Hi")])], "stop");
  assert.deepEqual(delivered[0], { type: "text", text: "Hi" });
});

test("trailing whitespace is held and dropped at the end when trimming (JSON output), kept inside the text", () => {
  const { delivered } = run([token('{"a": '), token("1}"), token(" \n"), token("\n")], "stop", { trim: true });
  assert.equal(textOf(delivered), '{"a": 1}');
  const untrimmed = run([token("a "), token("\n")], "stop");
  assert.equal(textOf(untrimmed.delivered), "a \n");
});

test("native-auto: text until the tool-call token, then the constrained JSON becomes tool calls (finish tool_calls)", () => {
  const events: StepEvent[] = [token("Let me check"), token(" E"), { type: "constrained", tokenCount: 1 }, token('[{"name":"get_weather",'), token('"arguments":{"city":"Paris"}}]')];
  const { delivered } = run(events, "stop", { reading: "native-auto", stop: ["END"] });
  // The held " E" is flushed when the call opens; the JSON is never delivered as text.
  assert.equal(textOf(delivered), "Let me check E");
  const calls = delivered.find((e) => e.type === "tool_calls");
  assert.ok(calls?.type === "tool_calls");
  assert.equal(calls.calls.length, 1);
  assert.match(calls.calls[0]!.id, /^call_[0-9a-f]{24}$/);
  assert.deepEqual({ name: calls.calls[0]!.name, arguments: calls.calls[0]!.arguments }, { name: "get_weather", arguments: '{"city":"Paris"}' });
  assert.deepEqual(last(delivered), { type: "end", finishReason: "tool_calls" });
  // The held text goes out the moment the call opens, not only at the end of the generation.
  const output = new ChoiceOutput("native-auto", ["END"], false, false);
  assert.deepEqual(output.accept(token("Hi E")).events, [{ type: "text", text: "Hi " }]);
  assert.deepEqual(output.accept({ type: "constrained", tokenCount: 1 }), { events: [{ type: "text", text: "E" }], stopped: false });
  assert.deepEqual(output.accept(token("[]")), { events: [], stopped: false });
  // No call opened: plain text, plain reason.
  const plain = run([token("Sunny.")], "stop", { reading: "native-auto" });
  assert.deepEqual(plain.delivered, [{ type: "text", text: "Sunny." }, { type: "end", finishReason: "stop" }]);
});

test("native-forced: all output is the call array; calls without arguments get {}; a JSON cut by the length limit gives no calls", () => {
  const { delivered } = run([token('[{"name":"a","arguments":{"x":1}},'), token('{"name":"b"}]')], "stop", { reading: "native-forced" });
  assert.deepEqual(textOf(delivered), "");
  const calls = delivered.find((e) => e.type === "tool_calls");
  assert.ok(calls?.type === "tool_calls");
  assert.deepEqual(calls.calls.map((c) => [c.name, c.arguments]), [["a", '{"x":1}'], ["b", "{}"]]);
  assert.notEqual(calls.calls[0]!.id, calls.calls[1]!.id);
  assert.deepEqual(last(delivered), { type: "end", finishReason: "tool_calls" });
  const cut = run([token('[{"name":"a","argu')], "length", { reading: "native-forced" });
  assert.deepEqual(cut.delivered, [{ type: "end", finishReason: "length" }]);
});

test("emulated: {content} becomes text, {tool_calls} becomes calls; the length limit keeps its reason", () => {
  const answer = run([token('{"content":'), token('"Hello"}')], "stop", { reading: "emulated" });
  assert.deepEqual(answer.delivered, [{ type: "text", text: "Hello" }, { type: "end", finishReason: "stop" }]);
  const called = run([token('{"tool_calls":[{"name":"f","arguments":{}}]}')], "stop", { reading: "emulated" });
  assert.deepEqual(called.delivered.map((e) => e.type), ["tool_calls", "end"]);
  assert.deepEqual(last(called.delivered), { type: "end", finishReason: "tool_calls" });
  // A complete call that ended on the length limit is still delivered, but the reason says length.
  const atLimit = run([token('{"tool_calls":[{"name":"f","arguments":{}}]}')], "length", { reading: "emulated" });
  assert.deepEqual(atLimit.delivered.map((e) => e.type), ["tool_calls", "end"]);
  assert.deepEqual(last(atLimit.delivered), { type: "end", finishReason: "length" });
  // Emulated output never goes through the stop strings (it is all JSON).
  const noStop = run([token('{"content":"a END b"}')], "stop", { reading: "emulated", stop: ["END"] });
  assert.deepEqual(noStop.delivered, [{ type: "text", text: "a END b" }, { type: "end", finishReason: "stop" }]);
});
