import { test, after } from "node:test";
import assert from "node:assert/strict";
import { getLlama } from "node-llama-cpp";
import { createJsonGrammar, JsonGrammarCache, tightenJsonGrammar } from "./json-grammar.ts";

const llamaPromise = getLlama({ gpu: false, build: "never" });
after(async () => (await llamaPromise).dispose());

test("integers lose the exponent and other exponents are capped at two digits", async () => {
  const llama = await llamaPromise;
  const schema = await createJsonGrammar(llama, { type: "json_schema", schema: { type: "object", properties: { i: { type: "integer" }, f: { type: "number" } }, required: ["i", "f"] } });
  const integerRule = schema.grammar.split("\n").find((l) => l.startsWith("integer-number-rule"));
  assert.equal(integerRule, 'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15})');
  assert.match(schema.grammar, /fractional-number-rule ::= .*\[eE\] \[-\+\]\? \[1-9\] \[0-9\]\?/);
  const json = await createJsonGrammar(llama, { type: "json" });
  assert.match(json.grammar, /^number ::= .*\(\[eE\] \[-\+\]\? \[1-9\] \[0-9\]\?\)\? ws$/m);
});

test("string characters are Unicode scalar values in the schema grammar and the generic JSON grammar", async () => {
  const llama = await llamaPromise;
  const schema = await createJsonGrammar(llama, { type: "json_schema", schema: { type: "object", properties: { s: { type: "string", maxLength: 4 } }, required: ["s"] } });
  const json = await createJsonGrammar(llama, { type: "json" });
  for (const grammar of [schema.grammar, json.grammar]) {
    assert.ok(grammar.includes(String.raw`[ !#-[\]-~\x80-\uD7FF\uE000-\U0010FFFF]`), grammar);
    assert.ok(!grammar.includes("[^"), grammar);
  }
  assert.throws(() => tightenJsonGrammar('string-char-rule ::= [^"]'), /unexpected JSON string rule shape/);
});

test("an unexpected rule shape fails loudly instead of silently leaving the loose rule", () => {
  assert.throws(() => tightenJsonGrammar('integer-number-rule ::= [0-9]+ ("e" [0-9]+)?'), /unexpected JSON number rule shape/);
});

test("the grammar cache is bounded by bytes, not only entries: big schemas do not pile up", async () => {
  const llama = await llamaPromise;
  const cache = new JsonGrammarCache();
  // 1 MiB of description text per schema: twelve of them would hold well over the 8 MiB bound.
  const schema = (i: number) => ({ type: "object", description: `${i}`.padEnd(1024 * 1024, "x"), properties: { a: { type: "integer" } }, required: ["a"] });
  for (let i = 0; i < 12; i++) await cache.get(llama, { type: "json_schema", schema: schema(i) });
  const held = cache.size();
  assert.ok(held.bytes <= 8 * 1024 * 1024, `${held.bytes} bytes held`);
  assert.ok(held.entries < 12, `${held.entries} entries held`);
  // Small schemas still share one compile.
  const small = { type: "json_schema", schema: { type: "object", properties: { b: { type: "string" } }, required: ["b"] } } as const;
  assert.equal(await cache.get(llama, small), await cache.get(llama, small));
});
