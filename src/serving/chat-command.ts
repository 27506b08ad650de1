/**
 * The wire request mapped once into a typed domain command (camelCase, defaults applied,
 * content flattened). Capability checks that depend on the served model happen here too.
 */
import type { ChatCompletionsRequest, WireMessage } from "../protocol/chat-completions.schema.ts";
import { AppError } from "../errors/app-error.ts";
import type { OutputConstraint } from "../engine/engine.ts";
import { toDecodingOptions } from "./decoding-options.ts";
import { toGrammarSchema } from "./json-schema-subset.ts";
import { parseTools, type ToolChoice, type ToolSpec } from "./tools.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** Calls an assistant turn made (fed back in a tool round trip). */
  toolCalls?: { id: string; function: { name: string; arguments: string } }[] | undefined;
  /** For `tool` messages: the call answered. */
  toolCallId?: string | undefined;
}

export interface ChatCommand {
  messages: ChatMessage[];
  /** Absent: up to the rest of the context window (Azure: "the model may use up to its context length"). */
  maxTokens: number | undefined;
  temperature: number;
  topP: number;
  stop: string[];
  presencePenalty: number;
  frequencyPenalty: number;
  seed: number | undefined;
  stream: boolean;
  /** Choices to generate (`n`, pass-through). */
  n: number;
  /** Top alternatives per token when `logprobs` is on; undefined when off. */
  topLogprobs: number | undefined;
  /** `logit_bias`: token id → bias. */
  logitBias: Map<number, number>;
  /** Constrained decoding for `response_format` json_object / json_schema. */
  constraint: OutputConstraint | undefined;
  /** `tools` and `tool_choice`, validated. */
  tools: { tools: ToolSpec[]; choice: ToolChoice } | undefined;
}

/** What the served model can do, as far as request mapping is concerned. */
export interface ModelCapabilities {
  supportsVision: boolean;
  /** `native`: the model's own tool format (Phi-4-mini); `emulated`: constrained JSON (deployment opt-in); `none`: 422. */
  toolMode: "native" | "emulated" | "none";
  /** False reproduces Azure's 422 for `response_format` json_object/json_schema on Phi. */
  supportsJsonOutput: boolean;
  /** Largest `n` accepted. */
  maxChoices: number;
}

/** Azure's spec default for temperature (docs/AZURE-API.md "Request body"). */
export const DEFAULT_TEMPERATURE = 0.7;

export function toChatCommand(
  body: ChatCompletionsRequest,
  extraParameters: Record<string, unknown>,
  capabilities: ModelCapabilities,
): ChatCommand {
  rejectUnsupported(body, capabilities);
  const decoding = toDecodingOptions(extraParameters, capabilities.maxChoices);
  const constraint = toConstraint(body);
  const tools = parseTools(body.tools, body.tool_choice);
  if ((constraint || (tools && tools.choice !== "none")) && decoding.topLogprobs !== undefined) {
    throw notSupported(["body", "logprobs"], true, "logprobs cannot be combined with a JSON response_format or tools: constrained decoding samples natively.");
  }
  if (constraint && tools && tools.choice !== "none") {
    throw notSupported(["body", "response_format"], body.response_format?.type, "A JSON response_format cannot be combined with tools.");
  }
  const stop = body.stop === undefined || body.stop === null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  return {
    messages: body.messages.map((m, i) => toChatMessage(m, i)),
    maxTokens: toMaxTokens(body),
    temperature: body.temperature ?? DEFAULT_TEMPERATURE,
    topP: body.top_p ?? 1,
    stop,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    seed: body.seed ?? undefined,
    stream: body.stream ?? false,
    n: decoding.n,
    topLogprobs: decoding.topLogprobs,
    logitBias: decoding.logitBias,
    constraint,
    tools,
  };
}

/**
 * `max_completion_tokens` (OpenAI's newer name) or `max_tokens`. OpenAI refuses the two together;
 * phiserve refuses them only when they disagree (docs/AZURE-API.md "Request body").
 */
function toMaxTokens(body: ChatCompletionsRequest): number | undefined {
  const legacy = body.max_tokens ?? undefined;
  const current = body.max_completion_tokens ?? undefined;
  if (legacy !== undefined && current !== undefined && legacy !== current) {
    const msg = "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.";
    throw new AppError("INVALID_REQUEST", msg, {
      param: "max_tokens",
      details: [{ type: "invalid_parameter_combination", loc: ["body", "max_tokens"], msg, input: legacy }],
    });
  }
  return current ?? legacy;
}

function toConstraint(body: ChatCompletionsRequest): OutputConstraint | undefined {
  const format = body.response_format;
  if (format?.type === "json_object") return { type: "json" };
  if (format?.type !== "json_schema") return undefined;
  const schema = format.json_schema.schema ?? {};
  return { type: "json_schema", schema: toGrammarSchema(schema, ["body", "response_format", "json_schema", "schema"]) };
}

function rejectUnsupported(body: ChatCompletionsRequest, capabilities: ModelCapabilities): void {
  const format = body.response_format?.type;
  if ((format === "json_object" || format === "json_schema") && !capabilities.supportsJsonOutput) {
    throw notSupported(["body", "response_format"], format, "This deployment doesn't support JSON output formatting (response_format); its JSON policy is 'azure'.");
  }
  if (body.tools !== undefined && capabilities.toolMode === "none") {
    throw notSupported(["body", "tools"], "tools", "This model doesn't support tools (function calling).");
  }
  body.messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      if (part.type === "image_url" && !capabilities.supportsVision) {
        throw notSupported(["body", "messages", i, "content", j], "image_url", "This model doesn't support image input.");
      }
    });
  });
}

function notSupported(loc: (string | number)[], input: unknown, message: string): AppError {
  return new AppError("PARAMETER_NOT_SUPPORTED", message, {
    param: String(loc[1]),
    details: [{ type: "parameter_not_supported", loc, msg: message, input }],
  });
}

function toChatMessage(message: WireMessage, index: number): ChatMessage {
  const out: ChatMessage = { role: message.role === "developer" ? "system" : message.role, content: toContent(message, index) };
  if (message.tool_calls?.length) out.toolCalls = message.tool_calls;
  if (message.tool_call_id) out.toolCallId = message.tool_call_id;
  return out;
}

function toContent(message: WireMessage, index: number): string {
  const content = message.content;
  if (typeof content === "string") return content;
  if (content === null || content === undefined) {
    if (message.role === "assistant" || message.role === "tool") return "";
    throw new AppError("INVALID_REQUEST", "Field required", {
      param: "messages",
      details: [{ type: "missing", loc: ["body", "messages", index, "content"], msg: "Field required" }],
    });
  }
  // Text parts are joined; image parts were rejected above unless the model reads images.
  return content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("\n");
}
