/**
 * The wire request mapped once into a typed domain command (camelCase, defaults applied,
 * content flattened). Capability checks that depend on the served model happen here too.
 */
import type { ChatCompletionsRequest, WireMessage } from "../protocol/chat-completions.schema.ts";
import { AppError } from "../errors/app-error.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
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
  /** Keys forwarded with `extra-parameters: pass-through`; engines use what they understand. */
  extraParameters: Record<string, unknown>;
}

/** What the served model can do, as far as request mapping is concerned. */
export interface ModelCapabilities {
  supportsVision: boolean;
  supportsTools: boolean;
  supportsJsonOutput: boolean;
}

/** Azure's spec default for temperature (§2). */
export const DEFAULT_TEMPERATURE = 0.7;

export function toChatCommand(
  body: ChatCompletionsRequest,
  extraParameters: Record<string, unknown>,
  capabilities: ModelCapabilities,
): ChatCommand {
  rejectUnsupported(body, capabilities);
  const stop = body.stop === undefined || body.stop === null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  return {
    messages: body.messages.map((m, i) => toChatMessage(m, i)),
    maxTokens: body.max_tokens ?? undefined,
    temperature: body.temperature ?? DEFAULT_TEMPERATURE,
    topP: body.top_p ?? 1,
    stop,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    seed: body.seed ?? undefined,
    stream: body.stream ?? false,
    extraParameters,
  };
}

function rejectUnsupported(body: ChatCompletionsRequest, capabilities: ModelCapabilities): void {
  const format = body.response_format?.type;
  if ((format === "json_object" || format === "json_schema") && !capabilities.supportsJsonOutput) {
    throw notSupported(["body", "response_format"], format, "This model doesn't support JSON output formatting (response_format).");
  }
  if (body.tools !== undefined && !capabilities.supportsTools) {
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
  const role = message.role === "developer" ? "system" : message.role;
  const content = message.content;
  if (typeof content === "string") return { role, content };
  if (content === null || content === undefined) {
    if (role === "assistant" || role === "tool") return { role, content: "" };
    throw new AppError("INVALID_REQUEST", "Field required", {
      param: "messages",
      details: [{ type: "missing", loc: ["body", "messages", index, "content"], msg: "Field required" }],
    });
  }
  // Text parts are joined; image parts were rejected above unless the model reads images.
  const text = content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("\n");
  return { role, content: text };
}
