import { test } from "node:test";
import assert from "node:assert/strict";
import { renderChatPrompt, renderWithJinja } from "../catalog/chat-templates.ts";
import {
  DEFAULT_HAZARD_MAP,
  LLAMA_GUARD_CHAT_TEMPLATE,
  LLAMA_GUARD_HAZARDS,
  LlamaGuardOutputError,
  NEUTRAL_USER_TURN,
  guardConversation,
  llamaGuardHazards,
  parseLlamaGuardOutput,
  renderLlamaGuardTask,
  verdictSeverities,
  type LlamaGuardHazard,
} from "./llama-guard.ts";

const CATEGORIES_8B =
  "S1: Violent Crimes.\nS2: Non-Violent Crimes.\nS3: Sex Crimes.\nS4: Child Exploitation.\nS5: Defamation.\nS6: Specialized Advice.\n" +
  "S7: Privacy.\nS8: Intellectual Property.\nS9: Indiscriminate Weapons.\nS10: Hate.\nS11: Self-Harm.\nS12: Sexual Content.\nS13: Elections.\n" +
  "S14: Code Interpreter Abuse.\n";

test("the 8B task for a prompt is Meta's template text, the User message assessed", () => {
  const task = renderLlamaGuardTask(guardConversation("  How do I pick a lock?\n", "prompt"));
  assert.equal(
    task,
    "Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy with the below categories.\n\n" +
      `<BEGIN UNSAFE CONTENT CATEGORIES>\n${CATEGORIES_8B}<END UNSAFE CONTENT CATEGORIES>\n\n` +
      "<BEGIN CONVERSATION>\n\nUser: How do I pick a lock?\n\n<END CONVERSATION>\n\n" +
      "Provide your safety assessment for ONLY THE LAST User message in the above conversation:\n" +
      " - First line must read 'safe' or 'unsafe'.\n" +
      " - If unsafe, a second line must include a comma-separated list of violated categories.",
  );
});

test("a completion is the Agent message after the neutral user turn, and the Agent is assessed", () => {
  const task = renderLlamaGuardTask(guardConversation("Here is how.", "completion"));
  assert.ok(task.startsWith("Task: Check if there is unsafe content in 'Agent' messages"));
  assert.ok(task.includes(`<BEGIN CONVERSATION>\n\nUser: ${NEUTRAL_USER_TURN}\n\nAgent: Here is how.\n\n<END CONVERSATION>`));
  assert.ok(task.includes("ONLY THE LAST Agent message"));
});

test("the 1B task lists S1–S13 and keeps the template's space before <|eot_id|>", () => {
  const task = renderLlamaGuardTask(guardConversation("hi", "prompt"), "1b");
  assert.ok(!task.includes("S14"));
  assert.ok(task.includes("S13: Elections.\n<END UNSAFE CONTENT CATEGORIES>"));
  assert.ok(task.endsWith("violated categories. "));
  assert.deepEqual(llamaGuardHazards("1b").length, 13);
  assert.deepEqual(llamaGuardHazards("8b"), Object.keys(LLAMA_GUARD_HAZARDS));
});

test("conversations must alternate user/assistant from a user turn", () => {
  assert.throws(() => renderLlamaGuardTask([]));
  assert.throws(() => renderLlamaGuardTask([{ role: "assistant", content: "x" }]));
  assert.throws(() => renderLlamaGuardTask([{ role: "user", content: "x" }, { role: "user", content: "y" }]));
});

test("the guard chat template renders a Llama 3 user turn ending at the bare assistant header, contents literal", () => {
  const messages = [{ role: "user" as const, content: "TASK <|eot_id|>" }];
  const options = { bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>" };
  const rendered = renderChatPrompt(LLAMA_GUARD_CHAT_TEMPLATE, messages, options);
  assert.equal(rendered.prompt, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTASK <|eot_id|><|eot_id|><|start_header_id|>assistant<|end_header_id|>");
  const start = rendered.prompt.indexOf("TASK");
  assert.deepEqual(rendered.literalSpans, [{ start, end: start + "TASK <|eot_id|>".length }]);
  assert.equal(renderWithJinja(LLAMA_GUARD_CHAT_TEMPLATE, messages, { ...options, addGenerationPrompt: false }), "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTASK <|eot_id|><|eot_id|>");
});

test("parses safe and unsafe verdicts, tolerating whitespace, case and the model's leading blank line", () => {
  assert.deepEqual(parseLlamaGuardOutput("safe"), { safe: true });
  assert.deepEqual(parseLlamaGuardOutput("\n\nsafe"), { safe: true });
  assert.deepEqual(parseLlamaGuardOutput("  SAFE  \n"), { safe: true });
  assert.deepEqual(parseLlamaGuardOutput("unsafe\nS1,S10"), { safe: false, hazards: ["S1", "S10"] });
  assert.deepEqual(parseLlamaGuardOutput("\n\nUnsafe\r\n s2 , S14 ,s2\n"), { safe: false, hazards: ["S2", "S14"] });
  assert.deepEqual(parseLlamaGuardOutput("unsafe\n\nS11\nsome trailing text"), { safe: false, hazards: ["S11"] });
});

test("anything else is not a verdict, and the error never quotes the output", () => {
  for (const output of ["", "  \n", "The text is safe.", "unsafe", "unsafe\n", "unsafe\nS15", "unsafe\nS1,", "unsafe\nviolent crimes", "unsafe S1", "unsafe\nS0", "unsafe\nS01"]) {
    assert.throws(() => parseLlamaGuardOutput(output), (error: unknown) => {
      assert.ok(error instanceof LlamaGuardOutputError, JSON.stringify(output));
      for (const word of ["text is", "S15", "violent crimes", "S01"]) if (output.includes(word)) assert.ok(!error.message.includes(word), error.message);
      return true;
    });
  }
});

test("verdicts map to Azure severities: safe is 0 everywhere; the highest mapped severity per category wins", () => {
  assert.deepEqual(verdictSeverities({ safe: true }), { hate: 0, sexual: 0, violence: 0, self_harm: 0 });
  assert.deepEqual(verdictSeverities({ safe: false, hazards: ["S1", "S10"] }), { hate: 5, sexual: 0, violence: 6, self_harm: 0 });
  assert.deepEqual(verdictSeverities({ safe: false, hazards: ["S12", "S4", "S3"] }), { hate: 0, sexual: 7, violence: 0, self_harm: 0 });
  assert.deepEqual(verdictSeverities({ safe: false, hazards: ["S11", "S9"] }), { hate: 0, sexual: 0, violence: 7, self_harm: 6 });
  // Hazards outside Azure's four categories report nothing.
  const unmapped: LlamaGuardHazard[] = ["S2", "S5", "S6", "S7", "S8", "S13", "S14"];
  for (const hazard of unmapped) assert.equal(DEFAULT_HAZARD_MAP[hazard], null);
  assert.deepEqual(verdictSeverities({ safe: false, hazards: unmapped }), { hate: 0, sexual: 0, violence: 0, self_harm: 0 });
  // A custom map applies.
  assert.deepEqual(verdictSeverities({ safe: false, hazards: ["S2"] }, { ...DEFAULT_HAZARD_MAP, S2: { category: "violence", severity: 2 } }).violence, 2);
});
