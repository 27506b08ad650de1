/**
 * Where a streamed response puts its usage, by route: Azure's routes always on the finish chunk
 * (docs/AZURE-API.md "Streaming"); the OpenAI route only when `stream_options.include_usage` asks,
 * in one extra `choices: []` chunk (docs/AZURE-API.md "OpenAI route"). On /v1 `stream_options`
 * arrives as a pass-through key, like OpenAI's other own parameters (`n`, `logprobs`).
 */
import { AppError, type ValidationDetail } from "../errors/app-error.ts";
import type { StreamUsage } from "./to-protocol.ts";

/** Which API a route serves: `openai` (/v1) follows OpenAI where it differs from Azure. */
export type ChatApi = "azure" | "openai";

export function toStreamUsage(api: ChatApi, stream: boolean, streamOptions: unknown): StreamUsage {
  if (api === "azure") return "finish-chunk";
  if (streamOptions === undefined || streamOptions === null) return "none";
  const fail = (detail: ValidationDetail) => new AppError("INVALID_REQUEST", detail.msg, { param: "stream_options", details: [detail] });
  if (typeof streamOptions !== "object" || Array.isArray(streamOptions)) {
    throw fail({ type: "dict_type", loc: ["body", "stream_options"], msg: "Input should be a valid dictionary", input: streamOptions });
  }
  // OpenAI's own words for stream_options on a request that does not stream.
  if (!stream) throw fail({ type: "invalid_value", loc: ["body", "stream_options"], msg: "The 'stream_options' parameter is only allowed when 'stream' is enabled.", input: streamOptions });
  const includeUsage = (streamOptions as Record<string, unknown>).include_usage;
  if (includeUsage !== undefined && includeUsage !== null && typeof includeUsage !== "boolean") {
    throw fail({ type: "bool_type", loc: ["body", "stream_options", "include_usage"], msg: "Input should be a valid boolean", input: includeUsage });
  }
  return includeUsage === true ? "usage-chunk" : "none";
}
