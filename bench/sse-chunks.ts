/**
 * The benchmarks' reader of a streamed chat completion: each `data: {…}` event of an SSE body,
 * parsed, as it arrives (`data: [DONE]` and comments are skipped). The chunk's fields the
 * benchmarks read are typed; the rest is there as sent.
 */
export interface ChatChunk {
  choices?: { delta?: { content?: string } }[];
  usage?: { prompt_tokens: number; completion_tokens: number };
}

export async function* sseChunks(body: AsyncIterable<Uint8Array>): AsyncGenerator<ChatChunk> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) !== -1) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (event.startsWith("data: {")) yield JSON.parse(event.slice(6)) as ChatChunk;
    }
  }
}
