import { test } from "node:test";
import assert from "node:assert/strict";
import { StepBudget } from "./step-budget.ts";

test("without a budget prompts take whatever room the batch has", () => {
  const budget = new StepBudget(undefined);
  assert.equal(budget.promptTokens(4), Infinity);
});

test("with nothing decoding, prompts are not limited (no stream waits)", () => {
  const budget = new StepBudget(50);
  assert.equal(budget.promptTokens(0), Infinity);
});

test("the budget becomes a token count from the measured step and prompt-token costs", () => {
  const budget = new StepBudget(100);
  assert.equal(budget.promptTokens(2), 32, "before any measurement: a small first chunk");
  budget.observe(2, 0, 20); // a decode step: 20 ms
  budget.observe(0, 100, 200); // a prompt step: 2 ms per token
  assert.equal(budget.promptTokens(2), 40, "(100 − 20) / 2");
  budget.observe(2, 40, 20 + 40 * 2);
  assert.equal(budget.promptTokens(2), 40, "a mixed step that matches the model keeps it");
});

test("a budget smaller than a decode step still lets prompts progress", () => {
  const budget = new StepBudget(10);
  budget.observe(4, 0, 30);
  budget.observe(0, 10, 50);
  assert.equal(budget.promptTokens(4), 8);
});

test("estimates follow changes gradually", () => {
  const budget = new StepBudget(1000);
  budget.observe(1, 0, 10);
  budget.observe(1, 0, 20);
  assert.equal(budget.estimates().decodeMs, 12);
});
