/**
 * From a command to what the engine sees: template messages (system role policy applied, tools
 * rendered the way the model expects), a prompt suffix, and the decoding constraints. Also says
 * how the output must be read back (plain text, native tool calls, or emulated JSON).
 *
 * System role: a model that doesn't support it gets its system messages as user messages of their
 * own, as Azure words it, or folded into the next user turn where the template opens an assistant
 * turn after every user message (`translateSystemMessages` in the catalog's chat templates).
 */
import type { OutputConstraint } from "../engine/engine.ts";
import { translateSystemMessages, type TemplateMessage } from "../catalog/chat-templates.ts";
import type { ChatCommand, ChatMessage } from "./chat-command.ts";
import type { ServedModel } from "./served-model.ts";
import { callsSchema, emulatedConstraint, emulatedInstructions, renderAssistantCalls, renderToolList, safeJson, TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from "./tools.ts";

/** How generated text is interpreted. */
export type OutputReading =
  | "text"
  /** Text until `<|tool_call|>`, then a JSON array of calls. */
  | "native-auto"
  /** The prompt opened the call: everything generated is the JSON array of calls. */
  | "native-forced"
  /** `{"tool_calls":[…]}` or `{"content":"…"}`. */
  | "emulated";

export interface PromptPlan {
  messages: TemplateMessage[];
  /** Appended after the rendered template (e.g. `<|tool_call|>` to force a call). */
  promptSuffix: string;
  constraint: OutputConstraint | undefined;
  constrainAfter: { token: string; constraint: OutputConstraint } | undefined;
  suppressTokens: string[];
  reading: OutputReading;
}

/** Phi-4-mini's model card example of a tool-bearing system turn. */
const DEFAULT_TOOL_SYSTEM = "You are a helpful assistant with some tools.";

export function planPrompt(command: ChatCommand, model: ServedModel): PromptPlan {
  const plain = (messages: TemplateMessage[]): TemplateMessage[] => (model.supportsSystemRole ? messages : translateSystemMessages(model.chatTemplate, messages));
  const base = { promptSuffix: "", constraint: command.constraint, constrainAfter: undefined, suppressTokens: [], reading: "text" as OutputReading };
  const tools = command.tools;
  if (model.capabilities.toolMode === "native") {
    const history = command.messages.map(nativeHistory);
    if (!tools) return { ...base, messages: plain(history) };
    const system = history.filter((m) => m.role === "system").map((m) => m.content).filter(Boolean).join("\n");
    // The template's only tool slot is the system turn, so with tools it is kept (not folded).
    const messages = [{ role: "system" as const, content: system || DEFAULT_TOOL_SYSTEM, tools: renderToolList(tools.tools) }, ...history.filter((m) => m.role !== "system")];
    const calls: OutputConstraint = { type: "json_schema", schema: callsSchema(tools.tools, tools.choice) };
    if (tools.choice === "none") return { ...base, messages, suppressTokens: [TOOL_CALL_OPEN] };
    if (tools.choice === "auto") return { ...base, messages, constrainAfter: { token: TOOL_CALL_OPEN, constraint: calls }, reading: "native-auto" };
    return { ...base, messages, promptSuffix: TOOL_CALL_OPEN, constraint: calls, reading: "native-forced" };
  }
  const history = command.messages.map(emulatedHistory);
  if (!tools || tools.choice === "none") return { ...base, messages: plain(history) };
  const messages = plain(withInstructions(history, emulatedInstructions(tools.tools, tools.choice)));
  return { ...base, messages, constraint: emulatedConstraint(tools.tools, tools.choice), reading: "emulated" };
}

/**
 * Emulated tools: the instructions extend the conversation's leading system text (after it), as one
 * system message. A model with the system role gets one system turn; one without gets the same text
 * as one user message (or folded into the first user turn), not a run of user messages.
 */
function withInstructions(history: readonly TemplateMessage[], instructions: string): TemplateMessage[] {
  const firstOther = history.findIndex((m) => m.role !== "system");
  const leading = firstOther === -1 ? history.length : firstOther;
  const system = [...history.slice(0, leading).map((m) => m.content).filter(Boolean), instructions].join("\n");
  return [{ role: "system", content: system }, ...history.slice(leading)];
}

function nativeHistory(message: ChatMessage): TemplateMessage {
  if (message.role === "assistant" && message.toolCalls) {
    // The call markers are the server's markup, parsed as special tokens; the text and the calls' JSON are not.
    const content = renderAssistantCalls(message.content, message.toolCalls);
    const open = message.content.length;
    const markup = [{ start: open, end: open + TOOL_CALL_OPEN.length }, { start: content.length - TOOL_CALL_CLOSE.length, end: content.length }];
    return { role: "assistant", content, markup };
  }
  return withImage(message);
}

/** Without native tools the templates know no `tool` role: calls and results become plain turns. */
function emulatedHistory(message: ChatMessage): TemplateMessage {
  if (message.role === "assistant" && message.toolCalls) {
    const calls = message.toolCalls.map((c) => ({ name: c.function.name, arguments: safeJson(c.function.arguments) }));
    return { role: "assistant", content: JSON.stringify({ tool_calls: calls }) };
  }
  if (message.role === "tool") return { role: "user", content: `Tool result${message.toolCallId ? ` (${message.toolCallId})` : ""}: ${message.content}` };
  return withImage(message);
}

/** Phi-3/3.5-vision's image tag: `<|image_N|>` for the request's N-th image, a line of its own before the turn's text. */
export const IMAGE_TAG = "<|image_1|>";

/**
 * A user turn with an image gets the tag on a line before its text, as the model card's prompt format
 * (docs/VISION.md "Prompt format"). The tag is the server's markup (the engine puts the image there);
 * the text stays literal. Only one image is kept per request, so the tag is always `<|image_1|>`.
 */
function withImage(message: ChatMessage): TemplateMessage {
  if (!message.image) return { role: message.role, content: message.content };
  return { role: message.role, content: `${IMAGE_TAG}\n${message.content}`, markup: [{ start: 0, end: IMAGE_TAG.length }] };
}
