import { test } from "node:test";
import assert from "node:assert/strict";
import { AppError } from "../errors/app-error.ts";
import type { ChatCompletionsRequest } from "../protocol/chat-completions.schema.ts";
import { DEFAULT_TEMPERATURE, toChatCommand, type ModelCapabilities } from "./chat-command.ts";

const CAPABILITIES: ModelCapabilities = { supportsVision: false, toolMode: "none", supportsJsonOutput: true, maxChoices: 4 };
const HI: ChatCompletionsRequest["messages"] = [{ role: "user", content: "hi" }];
const TOOL = { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };

function body(extra: Partial<ChatCompletionsRequest> = {}): ChatCompletionsRequest {
  return { messages: HI, ...extra };
}

/** Runs `fn`, expecting an AppError; returns it for closer checks. */
function appError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof AppError, String(error));
    return error;
  }
  assert.fail("expected an AppError");
}

test("defaults: Azure's temperature, top_p 1, no penalties, no stop, one choice, no logprobs, no constraint, no tools", () => {
  assert.deepEqual(toChatCommand(body(), {}, CAPABILITIES), {
    messages: [{ role: "user", content: "hi" }],
    maxTokens: undefined,
    temperature: DEFAULT_TEMPERATURE,
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
    tools: undefined,
  });
  assert.equal(DEFAULT_TEMPERATURE, 0.7);
});

test("nulls count as absent; given values are mapped to camelCase", () => {
  const nulls = toChatCommand(body({ temperature: null, top_p: null, max_tokens: null, seed: null, stream: null, stop: null, presence_penalty: null, frequency_penalty: null }), {}, CAPABILITIES);
  assert.equal(nulls.temperature, DEFAULT_TEMPERATURE);
  assert.equal(nulls.topP, 1);
  assert.equal(nulls.maxTokens, undefined);
  assert.equal(nulls.seed, undefined);
  assert.equal(nulls.stream, false);
  assert.deepEqual(nulls.stop, []);
  const given = toChatCommand(body({ temperature: 0, top_p: 0.5, max_tokens: 0, seed: 7, stream: true, presence_penalty: -2, frequency_penalty: 1.5 }), {}, CAPABILITIES);
  assert.deepEqual(
    [given.temperature, given.topP, given.maxTokens, given.seed, given.stream, given.presencePenalty, given.frequencyPenalty],
    [0, 0.5, 0, 7, true, -2, 1.5],
  );
});

test("stop: a string becomes a one-item list; a list passes as is", () => {
  assert.deepEqual(toChatCommand(body({ stop: "END" }), {}, CAPABILITIES).stop, ["END"]);
  assert.deepEqual(toChatCommand(body({ stop: ["a", "b"] }), {}, CAPABILITIES).stop, ["a", "b"]);
});

test("messages: developer becomes system, text parts are joined, tool calls and ids are kept, a null assistant content is empty", () => {
  const call = { id: "call_1", type: "function" as const, function: { name: "f", arguments: "{}" } };
  const command = toChatCommand(
    body({
      messages: [
        { role: "developer", content: "D" },
        { role: "user", content: [{ type: "text", text: "one" }, { type: "text", text: "two" }] },
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", content: "42", tool_call_id: "call_1" },
        { role: "assistant", tool_calls: [] },
      ],
    }),
    {},
    CAPABILITIES,
  );
  assert.deepEqual(command.messages, [
    { role: "system", content: "D" },
    { role: "user", content: "one\ntwo" },
    { role: "assistant", content: "", toolCalls: [call] },
    { role: "tool", content: "42", toolCallId: "call_1" },
    { role: "assistant", content: "" },
  ]);
});

test("a user message without content → 422 naming its index", () => {
  const error = appError(() => toChatCommand(body({ messages: [{ role: "user", content: "a" }, { role: "user", content: null }] }), {}, CAPABILITIES));
  assert.equal(error.code, "INVALID_REQUEST");
  assert.deepEqual(error.details?.[0]?.loc, ["body", "messages", 1, "content"]);
});

test("image parts → parameter_not_supported on a model without vision; dropped from the text on one with it", () => {
  const messages: ChatCompletionsRequest["messages"] = [
    { role: "user", content: [{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] },
  ];
  const error = appError(() => toChatCommand(body({ messages }), {}, CAPABILITIES));
  assert.equal(error.code, "PARAMETER_NOT_SUPPORTED");
  assert.deepEqual(error.details?.[0]?.loc, ["body", "messages", 0, "content", 1]);
  assert.deepEqual(toChatCommand(body({ messages }), {}, { ...CAPABILITIES, supportsVision: true }).messages, [
    { role: "user", content: "What is this?", image: { url: "data:image/png;base64,AA==", detail: undefined, loc: ["body", "messages", 0, "content", 1] } },
  ]);
});

const VISION = { ...CAPABILITIES, supportsVision: true };
const image = (url: string, detail?: "auto" | "low" | "high") => ({ type: "image_url" as const, image_url: detail ? { url, detail } : { url } });

test("vision: the image goes with its turn whatever the part order; text parts are joined", () => {
  const messages: ChatCompletionsRequest["messages"] = [
    { role: "user", content: [{ type: "text", text: "first" }, image("data:image/png;base64,AA==", "high"), { type: "text", text: "second" }] },
  ];
  const [message] = toChatCommand(body({ messages }), {}, VISION).messages;
  assert.equal(message?.content, "first\nsecond");
  assert.deepEqual(message?.image, { url: "data:image/png;base64,AA==", detail: "high", loc: ["body", "messages", 0, "content", 1] });
});

test("vision: two images in one turn → 400 invalid_image naming the second part", () => {
  const messages: ChatCompletionsRequest["messages"] = [
    { role: "user", content: [image("data:image/png;base64,AA=="), { type: "text", text: "compare" }, image("data:image/png;base64,AB==")] },
  ];
  const error = appError(() => toChatCommand(body({ messages }), {}, VISION));
  assert.equal(error.code, "INVALID_IMAGE");
  assert.match(error.message, /only one image per turn; message 0 has 2 images/);
  assert.deepEqual(error.details?.[0]?.loc, ["body", "messages", 0, "content", 2]);
  assert.equal(error.details?.[0]?.type, "too_many_images");
});

test("vision: only the last image is kept; earlier turns keep their text", () => {
  const messages: ChatCompletionsRequest["messages"] = [
    { role: "user", content: [image("data:image/png;base64,AA=="), { type: "text", text: "one" }] },
    { role: "assistant", content: "a cat" },
    { role: "user", content: [{ type: "text", text: "two" }, image("data:image/png;base64,AB==")] },
    { role: "assistant", content: "a dog" },
    { role: "user", content: "and now?" },
  ];
  const out = toChatCommand(body({ messages }), {}, VISION).messages;
  assert.deepEqual(out.map((m) => m.image?.url), [undefined, undefined, "data:image/png;base64,AB==", undefined, undefined]);
  assert.deepEqual(out.map((m) => m.content), ["one", "a cat", "two", "a dog", "and now?"]);
});

test("vision: an image outside a user turn → 400", () => {
  const messages = [{ role: "system", content: [image("data:image/png;base64,AA==")] }, { role: "user", content: "hi" }] as unknown as ChatCompletionsRequest["messages"];
  const error = appError(() => toChatCommand(body({ messages }), {}, VISION));
  assert.equal(error.code, "INVALID_IMAGE");
  assert.equal(error.details?.[0]?.type, "image_not_in_user_turn");
});

test("extra parameters: n, logprobs/top_logprobs and logit_bias are read; other passed-through keys are ignored", () => {
  const command = toChatCommand(body(), { n: 3, logprobs: true, top_logprobs: 2, logit_bias: { "15": -100, "7": "2.5" }, best_of: 5, user: "u1" }, CAPABILITIES);
  assert.equal(command.n, 3);
  assert.equal(command.topLogprobs, 2);
  assert.deepEqual(command.logitBias, new Map([[15, -100], [7, 2.5]]));
  // Numeric strings are accepted, as on the body; logprobs without top_logprobs means 0 alternatives.
  const strings = toChatCommand(body(), { n: "2", logprobs: true }, CAPABILITIES);
  assert.equal(strings.n, 2);
  assert.equal(strings.topLogprobs, 0);
  assert.equal(toChatCommand(body(), { logprobs: false, top_logprobs: null }, CAPABILITIES).topLogprobs, undefined);
});

test("extra parameters out of range → 422 listing every bad one", () => {
  const n = appError(() => toChatCommand(body(), { n: 5 }, CAPABILITIES));
  assert.equal(n.code, "INVALID_REQUEST");
  assert.equal(n.param, "n");
  assert.deepEqual(n.details?.[0], { type: "less_than_equal", loc: ["body", "n"], msg: "Input should be less than or equal to 4", input: 5, ctx: { le: 4 } });
  assert.equal(appError(() => toChatCommand(body(), { n: 0 }, CAPABILITIES)).details?.[0]?.type, "greater_than_equal");
  assert.equal(appError(() => toChatCommand(body(), { n: 1.5 }, CAPABILITIES)).details?.[0]?.type, "int_type");
  const several = appError(() => toChatCommand(body(), { logprobs: "maybe", top_logprobs: 21, logit_bias: { abc: 1, "3": 101 } }, CAPABILITIES));
  assert.deepEqual(
    several.details?.map((d) => d.loc),
    // (object keys that are integers come first in JavaScript's key order)
    [["body", "logprobs"], ["body", "top_logprobs"], ["body", "top_logprobs"], ["body", "logit_bias", "3"], ["body", "logit_bias", "abc"]],
  );
  assert.equal(appError(() => toChatCommand(body(), { top_logprobs: 2 }, CAPABILITIES)).details?.[0]?.msg, "top_logprobs requires logprobs to be true");
  assert.equal(appError(() => toChatCommand(body(), { logit_bias: [1] }, CAPABILITIES)).details?.[0]?.type, "dict_type");
});

test("response_format: text → no constraint; json_object → json; json_schema → the normalised schema", () => {
  assert.equal(toChatCommand(body({ response_format: { type: "text" } }), {}, CAPABILITIES).constraint, undefined);
  assert.deepEqual(toChatCommand(body({ response_format: { type: "json_object" } }), {}, CAPABILITIES).constraint, { type: "json" });
  const schema = { type: "object", properties: { a: { type: "string", description: "dropped annotation" } }, required: ["a"] };
  const constraint = toChatCommand(body({ response_format: { type: "json_schema", json_schema: { name: "s", schema } } }), {}, CAPABILITIES).constraint;
  assert.equal(constraint?.type, "json_schema");
  assert.deepEqual(constraint?.type === "json_schema" ? constraint.schema.required : undefined, ["a"]);
  // Without a schema: any JSON value.
  assert.deepEqual(toChatCommand(body({ response_format: { type: "json_schema", json_schema: { name: "s" } } }), {}, CAPABILITIES).constraint, { type: "json_schema", schema: {} });
});

test("response_format: unsupported keywords → 422 at the keyword; the azure JSON policy → parameter_not_supported", () => {
  const unsupported = appError(() =>
    toChatCommand(body({ response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "string", pattern: "x" } } } }), {}, CAPABILITIES),
  );
  assert.deepEqual(unsupported.details?.[0]?.loc, ["body", "response_format", "json_schema", "schema", "pattern"]);
  for (const type of ["json_object", "json_schema"] as const) {
    const format = type === "json_object" ? { type } : { type, json_schema: { name: "s" } };
    const error = appError(() => toChatCommand(body({ response_format: format }), {}, { ...CAPABILITIES, supportsJsonOutput: false }));
    assert.equal(error.code, "PARAMETER_NOT_SUPPORTED");
    assert.deepEqual(error.details?.[0]?.loc, ["body", "response_format"]);
  }
});

test("tools: validated into specs with a choice; refused on a model without tool support", () => {
  const native = { ...CAPABILITIES, toolMode: "native" as const };
  const command = toChatCommand(body({ tools: [TOOL] }), {}, native);
  // Parameter schemas are normalised to the grammar subset: declared properties only.
  const parameters = { ...TOOL.function.parameters, additionalProperties: false };
  assert.deepEqual(command.tools, { tools: [{ name: "get_weather", description: undefined, parameters }], choice: "auto" });
  assert.deepEqual(toChatCommand(body({ tools: [TOOL], tool_choice: { type: "function", function: { name: "get_weather" } } }), {}, native).tools?.choice, { name: "get_weather" });
  const refused = appError(() => toChatCommand(body({ tools: [TOOL] }), {}, CAPABILITIES));
  assert.equal(refused.code, "PARAMETER_NOT_SUPPORTED");
  assert.deepEqual(refused.details?.[0]?.loc, ["body", "tools"]);
  const badName = appError(() => toChatCommand(body({ tools: [{ type: "function", function: { name: "bad name" } }] }), {}, native));
  assert.deepEqual(badName.details?.[0]?.loc, ["body", "tools", 0, "function", "name"]);
  const unknownChoice = appError(() => toChatCommand(body({ tools: [TOOL], tool_choice: { type: "function", function: { name: "nope" } } }), {}, native));
  assert.deepEqual(unknownChoice.details?.[0]?.loc, ["body", "tool_choice", "function", "name"]);
  const choiceWithoutTools = appError(() => toChatCommand(body({ tool_choice: "required" }), {}, native));
  assert.deepEqual(choiceWithoutTools.details?.[0]?.loc, ["body", "tool_choice"]);
});

test("constrained decoding excludes logprobs, and a JSON response_format excludes active tools", () => {
  const native = { ...CAPABILITIES, toolMode: "native" as const };
  for (const request of [body({ response_format: { type: "json_object" } }), body({ tools: [TOOL] })]) {
    const error = appError(() => toChatCommand(request, { logprobs: true }, native));
    assert.equal(error.code, "PARAMETER_NOT_SUPPORTED");
    assert.deepEqual(error.details?.[0]?.loc, ["body", "logprobs"]);
  }
  const both = appError(() => toChatCommand(body({ response_format: { type: "json_object" }, tools: [TOOL] }), {}, native));
  assert.deepEqual(both.details?.[0]?.loc, ["body", "response_format"]);
  // tool_choice "none" constrains nothing: logprobs and a JSON format are then allowed.
  const none = toChatCommand(body({ response_format: { type: "json_object" }, tools: [TOOL], tool_choice: "none" }), {}, native);
  assert.equal(none.tools?.choice, "none");
  assert.equal(toChatCommand(body({ tools: [TOOL], tool_choice: "none" }), { logprobs: true }, native).topLogprobs, 0);
});
