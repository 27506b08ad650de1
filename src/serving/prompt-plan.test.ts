import { test } from "node:test";
import assert from "node:assert/strict";
import { CHAT_TEMPLATES, renderChatTemplate, type ChatTemplateId } from "../catalog/chat-templates.ts";
import { CATALOG, findCatalogModel } from "../catalog/phi-models.ts";
import type { ChatCommand, ChatMessage, ModelCapabilities } from "./chat-command.ts";
import { planPrompt } from "./prompt-plan.ts";
import type { ServedModel } from "./served-model.ts";
import { callsSchema, emulatedConstraint, emulatedInstructions, TOOL_CALL_OPEN, type ToolChoice, type ToolSpec } from "./tools.ts";

const SYSTEM = "You are a helpful assistant.";
const QUESTION = "How many languages are in the world?";
/** The Azure docs' REST sample; Azure counts 19 prompt tokens for it on Phi-3.5-Mini-Instruct. */
const REST_SAMPLE: ChatMessage[] = [
  { role: "system", content: SYSTEM },
  { role: "user", content: QUESTION },
];

function command(messages: ChatMessage[], tools?: { tools: ToolSpec[]; choice: ToolChoice }): ChatCommand {
  return {
    messages,
    maxTokens: undefined,
    temperature: 0.7,
    topP: 1,
    stop: [],
    presencePenalty: 0,
    frequencyPenalty: 0,
    seed: undefined,
    stream: false,
    n: 1,
    topLogprobs: undefined,
    logitBias: new Map(),
    constraint: undefined,
    tools,
  };
}

function served(template: ChatTemplateId, supportsSystemRole: boolean, toolMode: ModelCapabilities["toolMode"] = "none"): ServedModel {
  return {
    deploymentName: "d",
    azureName: "m",
    chatTemplate: CHAT_TEMPLATES[template],
    supportsSystemRole,
    capabilities: { supportsVision: false, toolMode, supportsJsonOutput: true, maxChoices: 4 },
  };
}

/** A catalog model as an `azure`-policy deployment serves it. */
function servedCatalog(id: string, toolMode: ModelCapabilities["toolMode"] = "none"): ServedModel {
  const model = findCatalogModel(id);
  assert.ok(model, id);
  return served(model.chatTemplate, model.supportsSystemRole, toolMode);
}

const render = (model: ServedModel, messages: ChatCommand["messages"] | ReturnType<typeof planPrompt>["messages"]) =>
  renderChatTemplate(model.chatTemplate, messages, { bosToken: "<s>", eosToken: "<|endoftext|>" });

const WEATHER: ToolSpec = { name: "get_weather", description: "Weather for a city", parameters: { type: "object", properties: { city: { type: "string" } } } };

test("Phi-3.5-mini: the REST sample's system message becomes a user message of its own (19 tokens, as Azure counts)", () => {
  const model = servedCatalog("phi-3.5-mini-instruct");
  assert.equal(model.supportsSystemRole, false);
  const plan = planPrompt(command(REST_SAMPLE), model);
  assert.deepEqual(plan.messages, [
    { role: "user", content: SYSTEM },
    { role: "user", content: QUESTION },
  ]);
  assert.equal(render(model, plan.messages), `<|user|>\n${SYSTEM}<|end|>\n<|user|>\n${QUESTION}<|end|>\n<|assistant|>\n`);
  assert.deepEqual(
    { promptSuffix: plan.promptSuffix, constraint: plan.constraint, constrainAfter: plan.constrainAfter, suppressTokens: plan.suppressTokens, reading: plan.reading },
    { promptSuffix: "", constraint: undefined, constrainAfter: undefined, suppressTokens: [], reading: "text" },
  );
});

test("Phi-3-mini-4k (T1) and Phi-3-medium (T4): the system text is folded into the first user turn", () => {
  for (const id of ["phi-3-mini-4k-instruct", "phi-3-medium-4k-instruct"]) {
    const model = servedCatalog(id);
    const plan = planPrompt(command(REST_SAMPLE), model);
    assert.deepEqual(plan.messages, [{ role: "user", content: `${SYSTEM}\n${QUESTION}` }], id);
    assert.ok(!render(model, plan.messages).includes("<|assistant|>\n<|user|>"), id);
  }
  assert.equal(
    render(servedCatalog("phi-3-mini-4k-instruct"), planPrompt(command(REST_SAMPLE), servedCatalog("phi-3-mini-4k-instruct")).messages),
    `<s><|user|>\n${SYSTEM}\n${QUESTION}<|end|>\n<|assistant|>\n`,
  );
});

test("every catalog model without the system role: no system turn is left, and no user turn is followed by an empty assistant turn", () => {
  const conversation: ChatMessage[] = [...REST_SAMPLE, { role: "assistant", content: "Many." }, { role: "system", content: "Be brief." }, { role: "user", content: "Which?" }];
  for (const entry of CATALOG.filter((m) => !m.supportsSystemRole)) {
    const model = servedCatalog(entry.id);
    const plan = planPrompt(command(conversation), model);
    assert.ok(plan.messages.every((m) => m.role !== "system"), entry.id);
    const text = render(model, plan.messages);
    for (const content of [SYSTEM, QUESTION, "Many.", "Be brief.", "Which?"]) assert.ok(text.includes(content), `${entry.id}: ${content}`);
    assert.doesNotMatch(text, /<\|assistant\|>\n?<\|user\|>|assistant<\|im_sep\|><\|im_start\|>user/, entry.id);
  }
});

test("a model with the system role keeps its messages untouched", () => {
  const messages: ChatMessage[] = [...REST_SAMPLE, { role: "assistant", content: "Many." }, { role: "system", content: "Be brief." }];
  for (const template of ["phi3.5-mini", "phi3-mini-jul2024", "phi4", "phi4-mini"] as const) {
    assert.deepEqual(planPrompt(command(messages), served(template, true)).messages, messages, template);
  }
  assert.equal(
    render(served("phi3.5-mini", true), planPrompt(command(REST_SAMPLE), served("phi3.5-mini", true)).messages),
    `<|system|>\n${SYSTEM}<|end|>\n<|user|>\n${QUESTION}<|end|>\n<|assistant|>\n`,
  );
});

test("native tools (Phi-4-mini): the system turn carries the tools, kept even though the system role is translated otherwise", () => {
  const model = servedCatalog("phi-4-mini-instruct", "native");
  assert.equal(model.supportsSystemRole, false);
  const tools = { tools: [WEATHER], choice: "auto" as ToolChoice };
  const auto = planPrompt(command(REST_SAMPLE, tools), model);
  assert.equal(auto.messages[0]?.role, "system");
  assert.equal(auto.messages[0]?.content, SYSTEM);
  assert.equal(auto.messages[0]?.tools, JSON.stringify([WEATHER]));
  assert.deepEqual(auto.messages.slice(1), [{ role: "user", content: QUESTION }]);
  assert.equal(auto.reading, "native-auto");
  assert.deepEqual(auto.constrainAfter, { token: TOOL_CALL_OPEN, constraint: { type: "json_schema", schema: callsSchema([WEATHER], "auto") } });
  assert.equal(auto.promptSuffix, "");

  const forced = planPrompt(command(REST_SAMPLE, { tools: [WEATHER], choice: "required" }), model);
  assert.equal(forced.reading, "native-forced");
  assert.equal(forced.promptSuffix, TOOL_CALL_OPEN);
  assert.deepEqual(forced.constraint, { type: "json_schema", schema: callsSchema([WEATHER], "required") });

  const none = planPrompt(command(REST_SAMPLE, { tools: [WEATHER], choice: "none" }), model);
  assert.equal(none.reading, "text");
  assert.deepEqual(none.suppressTokens, [TOOL_CALL_OPEN]);
  assert.equal(none.messages[0]?.tools, JSON.stringify([WEATHER]));

  // No system message: the model card's default system text holds the tools.
  const bare = planPrompt(command([{ role: "user", content: QUESTION }], tools), model);
  assert.equal(bare.messages[0]?.content, "You are a helpful assistant with some tools.");
  assert.equal(
    render(model, bare.messages),
    `<|system|>You are a helpful assistant with some tools.<|tool|>${JSON.stringify([WEATHER])}<|/tool|><|end|><|user|>${QUESTION}<|end|><|assistant|>`,
  );
});

test("native tool mode without tools: system messages are translated like any other", () => {
  const model = servedCatalog("phi-4-mini-instruct", "native");
  const plan = planPrompt(command(REST_SAMPLE), model);
  assert.deepEqual(plan.messages, [
    { role: "user", content: SYSTEM },
    { role: "user", content: QUESTION },
  ]);
});

test("native tools: an assistant turn that made calls is rendered back as the model emits them; tool results keep their role", () => {
  const model = servedCatalog("phi-4-mini-instruct", "native");
  const history: ChatMessage[] = [
    { role: "user", content: "Weather?" },
    { role: "assistant", content: "", toolCalls: [{ id: "call_1", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
    { role: "tool", content: "21 degrees", toolCallId: "call_1" },
  ];
  const plan = planPrompt(command(history, { tools: [WEATHER], choice: "auto" }), model);
  assert.deepEqual(plan.messages.slice(1), [
    { role: "user", content: "Weather?" },
    // The call markers are markup (parsed as special tokens), the calls' JSON is message text.
    { role: "assistant", content: `${TOOL_CALL_OPEN}[{"name":"get_weather","arguments":{"city":"Paris"}}]<|/tool_call|>`, markup: [{ start: 0, end: 13 }, { start: 66, end: 80 }] },
    { role: "tool", content: "21 degrees" },
  ]);
});

test("emulated tools: the instructions extend the client's system text, translated as one user message", () => {
  const model = servedCatalog("phi-3.5-mini-instruct", "emulated");
  const instructions = emulatedInstructions([WEATHER], "required");
  const plan = planPrompt(command(REST_SAMPLE, { tools: [WEATHER], choice: "required" }), model);
  assert.deepEqual(plan.messages, [
    { role: "user", content: `${SYSTEM}\n${instructions}` },
    { role: "user", content: QUESTION },
  ]);
  assert.equal(plan.reading, "emulated");
  assert.deepEqual(plan.constraint, emulatedConstraint([WEATHER], "required"));
  // Without a system message the instructions alone stand before the question.
  assert.deepEqual(planPrompt(command([{ role: "user", content: QUESTION }], { tools: [WEATHER], choice: "required" }), model).messages, [
    { role: "user", content: instructions },
    { role: "user", content: QUESTION },
  ]);
});

test("emulated tools: folded on T1, one system turn on a model with the system role", () => {
  const tools = { tools: [WEATHER], choice: "auto" as ToolChoice };
  const instructions = emulatedInstructions([WEATHER], "auto");
  const twoSystems: ChatMessage[] = [{ role: "system", content: "A" }, { role: "system", content: "B" }, { role: "user", content: QUESTION }];
  assert.deepEqual(planPrompt(command(twoSystems, tools), servedCatalog("phi-3-mini-4k-instruct", "emulated")).messages, [
    { role: "user", content: `A\nB\n${instructions}\n${QUESTION}` },
  ]);
  assert.deepEqual(planPrompt(command(twoSystems, tools), served("phi3.5-mini", true, "emulated")).messages, [
    { role: "system", content: `A\nB\n${instructions}` },
    { role: "user", content: QUESTION },
  ]);
});

test("emulated tools: calls and results become plain turns; tool_choice none sends no instructions", () => {
  const model = servedCatalog("phi-3.5-mini-instruct", "emulated");
  const history: ChatMessage[] = [
    { role: "user", content: "Weather?" },
    { role: "assistant", content: "", toolCalls: [{ id: "call_1", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
    { role: "tool", content: "21 degrees", toolCallId: "call_1" },
  ];
  const none = planPrompt(command(history, { tools: [WEATHER], choice: "none" }), model);
  assert.equal(none.reading, "text");
  assert.equal(none.constraint, undefined);
  assert.deepEqual(none.messages, [
    { role: "user", content: "Weather?" },
    { role: "assistant", content: '{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}' },
    { role: "user", content: "Tool result (call_1): 21 degrees" },
  ]);
});

test("a response_format constraint passes through to the plan", () => {
  const constrained = { ...command(REST_SAMPLE), constraint: { type: "json" } as const };
  assert.deepEqual(planPrompt(constrained, servedCatalog("phi-3.5-mini-instruct")).constraint, { type: "json" });
});

test("vision: the image tag opens its user turn as markup; a system message becomes a user turn before it", async () => {
  const { renderChatPrompt } = await import("../catalog/chat-templates.ts");
  const image = { url: "data:image/png;base64,AA==", detail: undefined, loc: ["body", "messages", 1, "content", 0] };
  const plan = planPrompt(command([{ role: "system", content: SYSTEM }, { role: "user", content: "What is <|end|> here?", image }]), served("phi3-vision", false));
  assert.deepEqual(plan.messages, [
    { role: "user", content: SYSTEM },
    { role: "user", content: "<|image_1|>\nWhat is <|end|> here?", markup: [{ start: 0, end: "<|image_1|>".length }] },
  ]);
  const rendered = renderChatPrompt(CHAT_TEMPLATES["phi3-vision"], plan.messages, { bosToken: "<s>", eosToken: "<|endoftext|>" });
  assert.equal(rendered.prompt, `<|user|>\n${SYSTEM}<|end|>\n<|user|>\n<|image_1|>\nWhat is <|end|> here?<|end|>\n<|assistant|>\n`);
  // The tag is template text (the engine puts the image there); the user's own `<|end|>` stays literal.
  const tag = rendered.prompt.indexOf("<|image_1|>");
  assert.ok(rendered.literalSpans.every((s) => s.end <= tag || s.start >= tag + "<|image_1|>".length));
  const userEnd = rendered.prompt.indexOf("<|end|> here");
  assert.ok(rendered.literalSpans.some((s) => s.start <= userEnd && s.end >= userEnd + 7));
});

test("system fold: markup moves with the user text it marks", async () => {
  const { foldSystemIntoUser } = await import("../catalog/chat-templates.ts");
  const [folded] = foldSystemIntoUser([{ role: "system", content: "sys" }, { role: "user", content: "<|image_1|>\nq", markup: [{ start: 0, end: 11 }] }]);
  assert.equal(folded?.content, "sys\n<|image_1|>\nq");
  assert.deepEqual(folded?.markup, [{ start: 4, end: 15 }]);
});
