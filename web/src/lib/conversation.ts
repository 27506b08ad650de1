/**
 * The playground's data: a conversation (system message, parameters, one pane per compared deployment) and
 * how it becomes a request body. Empty parameter fields are left out, so the server's defaults apply
 * (docs/AZURE-API.md "Request body").
 */
import type { TokenLogprob } from "./api.ts";

export interface Params {
  temperature: string;
  topP: string;
  maxTokens: string;
  /** One stop sequence per line (at most 4). */
  stop: string;
  seed: string;
  presencePenalty: string;
  frequencyPenalty: string;
  responseFormat: "text" | "json_object" | "json_schema";
  schemaName: string;
  /** The JSON schema, as typed. */
  schema: string;
  schemaStrict: boolean;
  logprobs: boolean;
  topLogprobs: string;
}

export const DEFAULT_PARAMS: Params = {
  temperature: "",
  topP: "",
  maxTokens: "256",
  stop: "",
  seed: "",
  presencePenalty: "",
  frequencyPenalty: "",
  responseFormat: "text",
  schemaName: "answer",
  schema: JSON.stringify({ type: "object", properties: { answer: { type: "string" } }, required: ["answer"] }, null, 2),
  schemaStrict: true,
  logprobs: false,
  topLogprobs: "3",
};

export interface AnswerStats {
  promptTokens?: number;
  completionTokens?: number;
  /** Time to first token, ms, measured in the browser from sending the request. */
  ttftMs?: number;
  tokensPerSecond?: number;
  finishReason?: string;
}

export interface Message {
  role: "user" | "assistant";
  content: string;
  /** A data: URL; one image per user turn (docs/VISION.md). */
  image?: string;
  stats?: AnswerStats;
  logprobs?: TokenLogprob[];
  promptFilter?: Record<string, unknown>;
  contentFilter?: Record<string, unknown>;
  error?: string;
}

export interface Pane {
  deployment: string;
  messages: Message[];
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  updatedAt: number;
  system: string;
  params: Params;
  panes: Pane[];
}

export function newConversation(deployment: string): Conversation {
  const now = Date.now();
  return { id: crypto.randomUUID(), title: "New conversation", createdAt: now, updatedAt: now, system: "", params: { ...DEFAULT_PARAMS }, panes: [{ deployment, messages: [] }] };
}

export class ParamError extends Error {
  constructor(readonly field: keyof Params, message: string) {
    super(message);
  }
}

function number(params: Params, field: keyof Params, wire: string, out: Record<string, unknown>, integer = false): void {
  const text = String(params[field]).trim();
  if (text === "") return;
  const value = Number(text);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) throw new ParamError(field, `${wire} must be ${integer ? "an integer" : "a number"}.`);
  out[wire] = value;
}

/** The request's parameters (not its messages), as the wire names them. Throws ParamError on a bad field. */
export function toWireParams(params: Params): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  number(params, "temperature", "temperature", out);
  number(params, "topP", "top_p", out);
  number(params, "maxTokens", "max_tokens", out, true);
  number(params, "seed", "seed", out, true);
  number(params, "presencePenalty", "presence_penalty", out);
  number(params, "frequencyPenalty", "frequency_penalty", out);
  const stops = params.stop.split("\n").filter((s) => s !== "");
  if (stops.length > 4) throw new ParamError("stop", "At most 4 stop sequences.");
  if (stops.length > 0) out.stop = stops;
  if (params.responseFormat === "json_object") out.response_format = { type: "json_object" };
  if (params.responseFormat === "json_schema") {
    let schema: unknown;
    try {
      schema = JSON.parse(params.schema);
    } catch (error) {
      throw new ParamError("schema", `The JSON schema does not parse: ${(error as Error).message}`);
    }
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(params.schemaName)) throw new ParamError("schemaName", "The schema name must be 1-64 letters, digits, _ or -.");
    out.response_format = { type: "json_schema", json_schema: { name: params.schemaName, schema, strict: params.schemaStrict } };
  }
  if (params.logprobs) {
    out.logprobs = true;
    number(params, "topLogprobs", "top_logprobs", out, true);
  }
  return out;
}

/** Whether the request needs `extra-parameters: pass-through` (Phi's extra parameters; docs/AZURE-API.md "extra-parameters"). */
export const needsPassThrough = (params: Params): boolean => params.logprobs;

export type WireMessage = { role: string; content: string | ({ type: "text"; text: string } | { type: "image_url"; image_url: { url: string } })[] };

export function toWireMessages(system: string, messages: readonly Message[]): WireMessage[] {
  const out: WireMessage[] = system.trim() ? [{ role: "system", content: system }] : [];
  for (const m of messages) {
    if (m.error !== undefined && m.role === "assistant") continue;
    if (m.role === "user" && m.image) out.push({ role: "user", content: [{ type: "text", text: m.content }, { type: "image_url", image_url: { url: m.image } }] });
    else out.push({ role: m.role, content: m.content });
  }
  return out;
}

/** The whole body for one pane (without `stream`). */
export function toRequestBody(conversation: Conversation, pane: Pane): Record<string, unknown> {
  return { model: pane.deployment, messages: toWireMessages(conversation.system, pane.messages), ...toWireParams(conversation.params) };
}

export function titleOf(text: string): string {
  const line = text.trim().split("\n")[0] ?? "";
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "Image";
}
