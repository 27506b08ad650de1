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
  /** The turn's image (vision models; at most one per turn, and only the conversation's last is kept). */
  image?: ChatImage | undefined;
}

/** An `image_url` part as received: loaded and preprocessed later, by the deployment that serves it. */
export interface ChatImage {
  /** A `data:` URL, or an `http(s)` URL where the operator allows them. */
  url: string;
  detail: "auto" | "low" | "high" | undefined;
  /** Where the part is in the request, for errors: `["body", "messages", i, "content", j]`. */
  loc: (string | number)[];
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
    messages: keepLastImage(body.messages.map((m, i) => toChatMessage(m, i))),
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
  const image = toImage(message, index);
  if (image) out.image = image;
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

/**
 * A turn's image: Phi-3/3.5-vision on Azure take one image per turn, in user turns only
 * (docs/VISION.md "Requests"); parts were already refused above on a model without vision.
 */
function toImage(message: WireMessage, index: number): ChatImage | undefined {
  if (!Array.isArray(message.content)) return undefined;
  const images = message.content.flatMap((part, j) => (part.type === "image_url" ? [{ part, j }] : []));
  if (images.length === 0) return undefined;
  const loc = (j: number) => ["body", "messages", index, "content", j];
  if (message.role !== "user") {
    throw imageError(loc(images[0]!.j), "image_not_in_user_turn", `Images are accepted in user messages only; message ${index} is a ${message.role} message.`);
  }
  if (images.length > 1) {
    throw imageError(
      loc(images[1]!.j),
      "too_many_images",
      `This model supports only one image per turn; message ${index} has ${images.length} images. Send one image per user message.`,
    );
  }
  const { part, j } = images[0]!;
  return { url: part.image_url.url, detail: part.image_url.detail, loc: loc(j) };
}

/** Only the last image is retained in context, as Azure documents for Phi-3-vision: earlier turns' images are dropped. */
function keepLastImage(messages: ChatMessage[]): ChatMessage[] {
  let last = -1;
  messages.forEach((m, i) => {
    if (m.image) last = i;
  });
  return messages.map((m, i) => {
    if (!m.image || i === last) return m;
    const { image: _dropped, ...rest } = m;
    return rest;
  });
}

function imageError(loc: (string | number)[], type: string, message: string): AppError {
  return new AppError("INVALID_IMAGE", message, { param: "messages", details: [{ type, loc, msg: message }] });
}
