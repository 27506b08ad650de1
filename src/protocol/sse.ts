/**
 * Server-sent-event framing for chat streams. The Python client's parser is strict (docs/AZURE-API.md "Streaming"):
 * only `data: ` lines, LF endings, one JSON per line, no comments or other fields, and a final
 * `data: [DONE]`. Everything streamed goes through these two functions.
 */
export function encodeSseData(payload: unknown): string {
  // JSON.stringify never emits raw newlines (they are escaped), so one event is one line.
  return `data: ${JSON.stringify(payload)}\n\n`;
}

export const SSE_DONE = "data: [DONE]\n\n";
