/**
 * Tool calling (`tools`, `tool_choice`, `tool` messages). Two modes:
 * - native (Phi-4-mini): tools are rendered into the system turn between `<|tool|>`…`<|/tool|>`
 *   as the model card shows; the model opens a call with `<|tool_call|>`, after which its output
 *   is constrained to a JSON array of calls whose arguments match each tool's parameter schema;
 * - emulated (other models, when the deployment enables it): the tools are described in the
 *   prompt and the whole answer is constrained to `{"tool_calls":[…]}` or `{"content":"…"}`.
 */
import { randomBytes } from "node:crypto";
import { AppError } from "../errors/app-error.ts";
import type { OutputConstraint } from "../engine/engine.ts";
import { toGrammarSchema } from "./json-schema-subset.ts";

export interface ToolSpec {
  name: string;
  description: string | undefined;
  /** Parameter schema, normalised to the grammar subset. */
  parameters: Record<string, unknown>;
}

/** `none`: never call; `auto`: the model decides; `required`: at least one call; `{ name }`: exactly that function. */
export type ToolChoice = "none" | "auto" | "required" | { name: string };

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text, as the wire carries it. */
  arguments: string;
}

export const TOOL_CALL_OPEN = "<|tool_call|>";
export const TOOL_CALL_CLOSE = "<|/tool_call|>";
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;
/** Calls per turn at most (parallel tool calls). */
const MAX_CALLS = 4;

export function parseTools(tools: unknown[] | undefined, toolChoice: unknown): { tools: ToolSpec[]; choice: ToolChoice } | undefined {
  if (tools === undefined) {
    if (toolChoice !== undefined && toolChoice !== null && toolChoice !== "none") throw invalid(["body", "tool_choice"], toolChoice, "tool_choice requires tools");
    return undefined;
  }
  const specs = tools.map((tool, i) => parseTool(tool, i));
  const names = new Set(specs.map((s) => s.name));
  if (names.size !== specs.length) throw invalid(["body", "tools"], tools, "tool names must be unique");
  const choice = parseChoice(toolChoice, names);
  return { tools: specs, choice };
}

function parseTool(tool: unknown, index: number): ToolSpec {
  const at = ["body", "tools", index];
  const t = tool as { type?: unknown; function?: { name?: unknown; description?: unknown; parameters?: unknown } } | null;
  if (!t || typeof t !== "object" || t.type !== "function") throw invalid([...at, "type"], t?.type, "Input should be 'function'");
  const fn = t.function;
  if (!fn || typeof fn !== "object") throw invalid([...at, "function"], fn, "Field required");
  if (typeof fn.name !== "string" || !NAME.test(fn.name)) throw invalid([...at, "function", "name"], fn.name, "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'");
  const parameters = fn.parameters === undefined ? { type: "object", properties: {} } : toGrammarSchema(fn.parameters, [...at, "function", "parameters"]);
  return { name: fn.name, description: typeof fn.description === "string" ? fn.description : undefined, parameters };
}

function parseChoice(value: unknown, names: Set<string>): ToolChoice {
  if (value === undefined || value === null) return "auto";
  if (value === "none" || value === "auto" || value === "required") return value;
  const named = value as { type?: unknown; function?: { name?: unknown } };
  if (typeof value === "object" && named.type === "function" && typeof named.function?.name === "string") {
    if (!names.has(named.function.name)) throw invalid(["body", "tool_choice", "function", "name"], named.function.name, `no tool named '${named.function.name}'`);
    return { name: named.function.name };
  }
  throw invalid(["body", "tool_choice"], value, "Input should be 'none', 'auto', 'required' or {type: 'function', function: {name}}");
}

function invalid(loc: (string | number)[], input: unknown, msg: string): AppError {
  return new AppError("INVALID_REQUEST", `Invalid input (${loc.join(".")}: ${msg})`, { param: String(loc[1]), details: [{ type: "value_error", loc, msg, input }] });
}

/** The tool list as the model card renders it in the system turn. */
export function renderToolList(tools: readonly ToolSpec[]): string {
  return JSON.stringify(tools.map((t) => ({ name: t.name, description: t.description || undefined, parameters: t.parameters })));
}

/** Schema of a JSON array of calls to the allowed tools (arguments constrained per tool). */
export function callsSchema(tools: readonly ToolSpec[], choice: ToolChoice): Record<string, unknown> {
  const allowed = typeof choice === "object" ? tools.filter((t) => t.name === choice.name) : tools;
  const call = (t: ToolSpec) => ({ type: "object", properties: { name: { const: t.name }, arguments: t.parameters }, required: ["name", "arguments"], additionalProperties: false });
  return { type: "array", items: allowed.length === 1 ? call(allowed[0]!) : { oneOf: allowed.map(call) }, minItems: 1, maxItems: MAX_CALLS };
}

/** Emulated mode: the whole answer is either calls or plain content. */
export function emulatedConstraint(tools: readonly ToolSpec[], choice: ToolChoice): OutputConstraint {
  const calls = { type: "object", properties: { tool_calls: callsSchema(tools, choice) }, required: ["tool_calls"], additionalProperties: false };
  const content = { type: "object", properties: { content: { type: "string" } }, required: ["content"], additionalProperties: false };
  return { type: "json_schema", schema: choice === "auto" ? { oneOf: [calls, content] } : calls };
}

/** Instructions that describe the tools to a model without native tool support. */
export function emulatedInstructions(tools: readonly ToolSpec[], choice: ToolChoice): string {
  const must = choice === "auto" ? "either call tools or answer" : "call the tools";
  return `You can use these tools: ${renderToolList(tools)}\nAnswer with JSON only; ${must}: {"tool_calls":[{"name":"<tool>","arguments":{…}}]}${choice === "auto" ? ' or {"content":"<answer>"}' : ""}.`;
}

/** Parses the constrained JSON into wire-ready calls. */
export function toToolCalls(json: unknown): ToolCall[] {
  const list = Array.isArray(json) ? json : [];
  return list.map((call: { name: string; arguments: unknown }) => ({ id: `call_${randomBytes(12).toString("hex")}`, name: call.name, arguments: JSON.stringify(call.arguments ?? {}) }));
}

/** An assistant turn that made calls, rendered back the way the model emits them. */
export function renderAssistantCalls(content: string, calls: readonly { function: { name: string; arguments: string } }[]): string {
  const list = calls.map((c) => ({ name: c.function.name, arguments: safeJson(c.function.arguments) }));
  return `${content}${TOOL_CALL_OPEN}${JSON.stringify(list)}${TOOL_CALL_CLOSE}`;
}

export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
