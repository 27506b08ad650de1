import { test } from "node:test";
import assert from "node:assert/strict";
import { coerceLax, toLaxBoolean, toLaxInteger, toLaxNumber } from "./lax-coercion.ts";
import { ChatCompletionsRequestSchema } from "./chat-completions.schema.ts";

test("numbers: numeric strings and booleans convert; '', words, non-finite values and other types do not (pydantic lax)", () => {
  assert.equal(toLaxNumber("0.5"), 0.5);
  assert.equal(toLaxNumber(" -2e-1 "), -0.2);
  assert.equal(toLaxNumber(".5"), 0.5);
  assert.equal(toLaxNumber(true), 1);
  assert.equal(toLaxNumber(false), 0);
  for (const value of ["", "  ", "abc", "0x10", "1e999", "Infinity", "NaN", Infinity, NaN, null, [], {}, [1]]) {
    assert.equal(toLaxNumber(value), undefined, JSON.stringify(value));
  }
});

test("integers: integer strings, booleans and whole numbers; not fractions or exponent strings", () => {
  assert.equal(toLaxInteger("42"), 42);
  assert.equal(toLaxInteger("-3"), -3);
  assert.equal(toLaxInteger(true), 1);
  assert.equal(toLaxInteger(7), 7);
  for (const value of ["1.5", "1e3", "", 1.5, Infinity, "1e999"]) assert.equal(toLaxInteger(value), undefined, String(value));
});

test("booleans: pydantic's words and 0/1", () => {
  for (const word of ["true", "TRUE", "yes", "on", "1", "t", "y"]) assert.equal(toLaxBoolean(word), true, word);
  for (const word of ["false", "no", "off", "0", "f", "n"]) assert.equal(toLaxBoolean(word), false, word);
  assert.equal(toLaxBoolean(1), true);
  assert.equal(toLaxBoolean(0), false);
  for (const value of ["", "maybe", 2, null]) assert.equal(toLaxBoolean(value), undefined, String(value));
});

test("the request schema: numbers convert, text stays text, null on an optional non-null field means absent", () => {
  const body = {
    messages: [{ role: "tool", content: 5, tool_call_id: null, name: null }, { role: "user", content: "hi" }],
    temperature: "0.5",
    top_p: true,
    max_tokens: "7",
    stream: "false",
    stop: [null, 5],
    seed: "1e999",
    presence_penalty: "",
    model: null,
  };
  const out = coerceLax(ChatCompletionsRequestSchema, body) as Record<string, unknown>;
  assert.deepEqual(out, {
    messages: [{ role: "tool", content: 5 }, { role: "user", content: "hi" }],
    temperature: 0.5,
    top_p: 1,
    max_tokens: 7,
    stream: false,
    stop: [null, 5],
    seed: "1e999",
    presence_penalty: "",
  });
});

test("values of the wrong shape are left for validation to refuse", () => {
  assert.equal(coerceLax(ChatCompletionsRequestSchema, "text"), "text");
  assert.deepEqual(coerceLax(ChatCompletionsRequestSchema, { messages: "x" }), { messages: "x" });
  const nested = { messages: [{ role: "user", content: [[[["x"]]]] }] };
  assert.deepEqual(coerceLax(ChatCompletionsRequestSchema, structuredClone(nested)), nested);
});
