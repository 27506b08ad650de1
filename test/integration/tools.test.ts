/**
 * Tool calling through the real engine: constrained emulation on the Phi-3 test model
 * (`--tool-emulation`), and Phi-4-mini's native format on its test model (o200k vocabulary,
 * `<|tool_call|>` tokens). Random weights: calls are checked for shape and schema, never sense.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Ajv } from "ajv";
import { ensureTestModel } from "../../src/model-factory/test-models.ts";
import { startServer, type RunningServer } from "../helpers/start-server.ts";

const KEY = "tools-key-0123456789";
let emulated: RunningServer;
let native: RunningServer;

before(async () => {
  emulated = await startServer(["--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct", "--api-key", KEY, "--tool-emulation", "--deployment", "m"]);
  native = await startServer(["--model", await ensureTestModel({ family: "phi4-mini" }), "--model-name", "phi-4-mini-instruct", "--api-key", KEY, "--deployment", "m"]);
});
after(async () => {
  await emulated?.close();
  await native?.close();
});

const WEATHER = {
  type: "object",
  properties: { city: { type: "string", maxLength: 8 }, unit: { enum: ["c", "f"] }, days: { type: "integer" } },
  required: ["city", "unit", "days"],
} as const;
const TOOLS: OpenAI.ChatCompletionTool[] = [
  { type: "function", function: { name: "get_weather", description: "Weather for a city", parameters: WEATHER } },
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } },
];
const validators = { get_weather: new Ajv().compile(WEATHER), get_time: new Ajv().compile({ type: "object", additionalProperties: false }) };

function client(server: RunningServer): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
}

function checkCalls(calls: OpenAI.ChatCompletionMessageToolCall[] | undefined, only?: string): void {
  assert.ok(calls && calls.length >= 1);
  for (const call of calls) {
    assert.equal(call.type, "function");
    assert.match(call.id, /^call_[0-9a-f]{24}$/);
    const name = call.function.name as keyof typeof validators;
    if (only) assert.equal(name, only);
    const validate = validators[name];
    assert.ok(validate, `unknown tool ${name}`);
    const args = JSON.parse(call.function.arguments);
    assert.ok(validate(args), `${name} ${call.function.arguments} ${JSON.stringify(validate.errors)}`);
  }
}

for (const [label, server] of [["emulated (Phi-3.5-mini)", () => emulated], ["native (Phi-4-mini)", () => native]] as const) {
  test(`${label}: required and named tool_choice give schema-valid calls for 20 seeds`, async () => {
    const openai = client(server());
    for (let seed = 0; seed < 20; seed++) {
      const tool_choice: OpenAI.ChatCompletionToolChoiceOption = seed % 2 === 0 ? "required" : { type: "function", function: { name: "get_weather" } };
      const res = await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Weather in Paris?" }], tools: TOOLS, tool_choice, temperature: 1, seed, max_tokens: 400 });
      const choice = res.choices[0]!;
      assert.equal(choice.finish_reason, "tool_calls", `seed ${seed}: ${JSON.stringify(choice)}`);
      assert.equal(choice.message.content, null);
      checkCalls(choice.message.tool_calls, seed % 2 === 0 ? undefined : "get_weather");
    }
  });

  test(`${label}: streamed tool calls arrive as deltas and match the non-streamed ones`, async () => {
    const openai = client(server());
    const params = { model: "m", messages: [{ role: "user" as const, content: "Time?" }], tools: TOOLS, tool_choice: "required" as const, temperature: 0, max_tokens: 400 };
    const whole = await openai.chat.completions.create(params);
    const deltas: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
    let finish: string | null = null;
    for await (const chunk of await openai.chat.completions.create({ ...params, stream: true })) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      deltas.push(...(choice.delta.tool_calls ?? []));
      finish = choice.finish_reason ?? finish;
    }
    assert.equal(finish, "tool_calls");
    assert.deepEqual(deltas.map((d) => [d.index, d.type, d.function?.name, d.function?.arguments]), (whole.choices[0]!.message.tool_calls as OpenAI.ChatCompletionMessageFunctionToolCall[]).map((c, i) => [i, "function", c.function.name, c.function.arguments]));
  });

  test(`${label}: a tool round trip (assistant tool_calls + tool result) is accepted`, async () => {
    const openai = client(server());
    const first = await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Weather?" }], tools: TOOLS, tool_choice: "required", temperature: 0, max_tokens: 400 });
    const call = first.choices[0]!.message.tool_calls![0]!;
    const second = await openai.chat.completions.create({
      model: "m",
      tools: TOOLS,
      tool_choice: "none",
      max_tokens: 5,
      messages: [{ role: "user", content: "Weather?" }, { role: "assistant", content: null, tool_calls: [call] }, { role: "tool", tool_call_id: call.id, content: "21 degrees" }],
    });
    assert.equal(second.choices[0]!.message.tool_calls ?? null, null);
    assert.notEqual(second.choices[0]!.finish_reason, "tool_calls");
    // The call and its result are part of the prompt.
    const alone = await openai.chat.completions.create({ model: "m", tools: TOOLS, tool_choice: "none", max_tokens: 1, messages: [{ role: "user", content: "Weather?" }] });
    assert.ok(second.usage!.prompt_tokens > alone.usage!.prompt_tokens + 10);
  });
}

test("native: tool_choice auto lets the model answer or call; calls are always schema-valid", async () => {
  const openai = client(native);
  // Random weights decide which way each seed goes; whichever it is must be well-formed.
  for (let seed = 0; seed < 6; seed++) {
    const res = await openai.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Weather?" }], tools: TOOLS, temperature: 1, seed, max_tokens: 200 });
    const choice = res.choices[0]!;
    if (choice.finish_reason === "tool_calls") checkCalls(choice.message.tool_calls);
    else {
      assert.equal(choice.message.tool_calls ?? null, null);
      assert.equal(typeof choice.message.content, "string");
    }
  }
});

test("tools on a model without native support and without emulation → 422, as Azure", async () => {
  const plain = await startServer(["--model", await ensureTestModel(), "--model-name", "phi-3.5-mini-instruct"]);
  try {
    const res = await fetch(`${plain.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content: "x" }], tools: TOOLS }) });
    assert.equal(res.status, 422);
    assert.equal((await res.json()).error.code, "parameter_not_supported");
  } finally {
    await plain.close();
  }
});

test("invalid tool definitions and choices → 422 with loc", async () => {
  const cases: [unknown, unknown, (string | number)[]][] = [
    [[{ type: "function", function: { name: "bad name!" } }], "auto", ["body", "tools", 0, "function", "name"]],
    [TOOLS, { type: "function", function: { name: "nope" } }, ["body", "tool_choice", "function", "name"]],
    [[{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { type: "string", pattern: "x" } } } } }], "auto", ["body", "tools", 0, "function", "parameters", "properties", "a", "pattern"]],
  ];
  for (const [tools, tool_choice, loc] of cases) {
    const res = await fetch(`${emulated.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", "api-key": KEY }, body: JSON.stringify({ messages: [{ role: "user", content: "x" }], tools, tool_choice }) });
    assert.equal(res.status, 422);
    assert.deepEqual((await res.json()).error.details[0].loc, loc);
  }
});
