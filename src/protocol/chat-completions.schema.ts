/**
 * Wire contract of POST /chat/completions (docs/AZURE-API.md "Request body", "Messages", "Response", "Streaming").
 * JSON Schema is the single source: fastify validates with it (after the lax-mode conversions of
 * ./lax-coercion.ts, which follow Azure's pydantic), and the TypeScript types below mirror it.
 * Field names keep the spec's snake_case.
 */
import { Type, type Static } from "@sinclair/typebox";

/**
 * `seed`'s range: a signed 64-bit integer. JSON numbers beyond 2^53 are rounded when parsed, and
 * 9223372036854775807 (the int64 maximum) parses to 2^63 itself, so that is the inclusive bound.
 */
export const SEED_MIN = -(2 ** 63);
export const SEED_MAX = 2 ** 63;

const nullableNumber = (options: { minimum?: number; maximum?: number }) =>
  Type.Unsafe<number | null>({ type: ["number", "null"], ...options });

const TextPart = Type.Object({ type: Type.Literal("text"), text: Type.String() });
const ImageUrlPart = Type.Object({
  type: Type.Literal("image_url"),
  image_url: Type.Object({
    url: Type.String(),
    detail: Type.Optional(Type.Union([Type.Literal("auto"), Type.Literal("low"), Type.Literal("high")])),
  }),
});
export type ContentPart = Static<typeof TextPart> | Static<typeof ImageUrlPart>;

const ContentPartSchema = Type.Unsafe<ContentPart>({
  type: "object",
  required: ["type"],
  properties: {
    type: { type: "string", enum: ["text", "image_url"] },
    text: { type: "string" },
    image_url: ImageUrlPart.properties.image_url,
  },
  allOf: [
    { if: { properties: { type: { const: "text" } } }, then: { required: ["text"] } },
    { if: { properties: { type: { const: "image_url" } } }, then: { required: ["image_url"] } },
  ],
});

const ToolCall = Type.Object({
  id: Type.String(),
  type: Type.Literal("function"),
  function: Type.Object({ name: Type.String(), arguments: Type.String() }),
});

export type MessageRole = "system" | "developer" | "user" | "assistant" | "tool";

export interface WireMessage {
  role: MessageRole;
  content?: string | ContentPart[] | null;
  name?: string;
  tool_calls?: Static<typeof ToolCall>[];
  tool_call_id?: string;
}

const MessageSchema = Type.Unsafe<WireMessage>({
  type: "object",
  required: ["role"],
  properties: {
    role: { type: "string", enum: ["system", "developer", "user", "assistant", "tool"] },
    content: { type: ["string", "array", "null"], items: ContentPartSchema },
    name: { type: "string" },
    tool_calls: { type: "array", items: ToolCall },
    tool_call_id: { type: "string" },
  },
  allOf: [
    { if: { properties: { role: { enum: ["system", "developer", "user"] } } }, then: { required: ["content"] } },
    { if: { properties: { role: { const: "tool" } } }, then: { required: ["tool_call_id"] } },
  ],
});

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; json_schema: { name: string; schema?: Record<string, unknown>; description?: string; strict?: boolean } };

// One object schema with if/then (rather than anyOf) so a bad value yields one precise error item.
const ResponseFormatSchema = Type.Unsafe<ResponseFormat>({
  type: "object",
  required: ["type"],
  properties: {
    type: { type: "string", enum: ["text", "json_object", "json_schema"] },
    json_schema: {
      type: "object",
      required: ["name"],
      properties: {
        name: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,64}$" },
        schema: { type: "object" },
        description: { type: "string" },
        strict: { type: "boolean" },
      },
    },
  },
  allOf: [{ if: { properties: { type: { const: "json_schema" } } }, then: { required: ["json_schema"] } }],
});

/** The request body. Unknown top-level keys are allowed here: `extra-parameters` decides their fate. */
export const ChatCompletionsRequestSchema = Type.Object(
  {
    messages: Type.Array(MessageSchema, { minItems: 1 }),
    model: Type.Optional(Type.String()),
    frequency_penalty: Type.Optional(nullableNumber({ minimum: -2, maximum: 2 })),
    presence_penalty: Type.Optional(nullableNumber({ minimum: -2, maximum: 2 })),
    temperature: Type.Optional(nullableNumber({ minimum: 0, maximum: 2 })),
    top_p: Type.Optional(nullableNumber({ minimum: 0, maximum: 1 })),
    max_tokens: Type.Optional(Type.Unsafe<number | null>({ type: ["integer", "null"], minimum: 0 })),
    // OpenAI's newer name for max_tokens, honoured on every route (docs/AZURE-API.md "Request body").
    max_completion_tokens: Type.Optional(Type.Unsafe<number | null>({ type: ["integer", "null"], minimum: 0 })),
    stop: Type.Optional(
      Type.Unsafe<string | string[] | null>({
        type: ["string", "array", "null"],
        items: { type: "string" },
        minItems: 1,
        maxItems: 4,
      }),
    ),
    stream: Type.Optional(Type.Unsafe<boolean | null>({ type: ["boolean", "null"] })),
    // int64 (docs/AZURE-API.md "Request body"); Infinity and NaN are no numbers at all (ajv strictNumbers).
    seed: Type.Optional(Type.Unsafe<number | null>({ type: ["integer", "null"], minimum: SEED_MIN, maximum: SEED_MAX })),
    response_format: Type.Optional(ResponseFormatSchema),
    tools: Type.Optional(Type.Array(Type.Unknown(), { minItems: 1 })),
    tool_choice: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: true },
);

export type ChatCompletionsRequest = Static<typeof ChatCompletionsRequestSchema>;

/** Top-level keys the API defines; anything else is an "extra parameter". */
export const KNOWN_REQUEST_KEYS: ReadonlySet<string> = new Set([
  ...Object.keys(ChatCompletionsRequestSchema.properties),
  "modalities",
]);

export type WireFinishReason = "stop" | "length" | "content_filter" | "tool_calls";

export interface WireUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface WireToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface WireTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** OpenAI's logprobs shape (not defined by the Azure spec; docs/AZURE-API.md "Response"). */
export interface WireLogprobs {
  content: WireTokenLogprob[];
}

/** Azure's content-filter annotation of one text (docs/SAFETY.md "Annotations"). */
export type WireContentFilterResults = Record<string, unknown>;

/** The prompt's annotation, as Azure lists it (one prompt: index 0). */
export interface WirePromptFilterResult {
  prompt_index: number;
  content_filter_results: WireContentFilterResults;
}

export interface ChatCompletionResponse {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  /** With annotations on (docs/SAFETY.md "Annotations"). */
  prompt_filter_results?: WirePromptFilterResult[];
  choices: {
    index: number;
    message: { role: "assistant"; content: string | null; tool_calls: WireToolCall[] | null };
    finish_reason: WireFinishReason | null;
    logprobs: WireLogprobs | null;
    content_filter_results?: WireContentFilterResults;
  }[];
  usage: WireUsage;
}

export interface ChatCompletionChunk {
  id: string;
  /** "" only on Azure's prompt-annotation chunk, which opens an annotated stream (docs/SAFETY.md "Annotations"). */
  object: "chat.completion.chunk" | "";
  created: number;
  model: string;
  prompt_filter_results?: WirePromptFilterResult[];
  choices: {
    index: number;
    delta: { role?: "assistant"; content?: string; tool_calls?: (WireToolCall & { index: number })[] };
    finish_reason: WireFinishReason | null;
    logprobs: WireLogprobs | null;
    content_filter_results?: WireContentFilterResults;
  }[];
  /** Azure: on the finish chunk. OpenAI with `stream_options.include_usage`: null, then one `choices: []` chunk carries it. */
  usage?: WireUsage | null;
}
