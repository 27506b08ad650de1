/**
 * Reads a vocabulary's marker tokens and longest token (prompt-partition.ts) from a loaded model:
 * one pass over the token list (0.3 s for 32k tokens, 0.7 s for 200k), done on the tokenizer
 * worker at load, not on the event loop.
 */
import type { LlamaModel, Token } from "node-llama-cpp";
import type { MarkerToken, VocabularyFacts } from "./prompt-partition.ts";

export function readVocabularyFacts(model: LlamaModel): VocabularyFacts {
  const metadata = model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: string[] } } };
  const texts = metadata.tokenizer?.ggml?.tokens ?? [];
  const markers: MarkerToken[] = [];
  let maxTokenBytes = 1;
  for (let id = 0; id < texts.length; id++) {
    const text = texts[id]!;
    maxTokenBytes = Math.max(maxTokenBytes, Buffer.byteLength(text));
    const attributes = model.getTokenAttributes(id as Token);
    // llama.cpp's special-token cache: control, user-defined and unknown tokens (llama-vocab.cpp).
    if (attributes.control || attributes.userDefined || attributes.unknown) {
      markers.push({ id, text, userDefined: attributes.userDefined && !attributes.control && !attributes.unknown, lstrip: attributes.lstrip, rstrip: attributes.rstrip });
    }
  }
  return { markers, maxTokenBytes };
}
