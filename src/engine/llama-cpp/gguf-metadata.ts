/** Reads a GGUF's header (no weights loaded): what start-up needs to pick a template and a context size. */
import { readGgufFileInfo } from "node-llama-cpp";

export interface GgufSummary {
  architecture?: string | undefined;
  name?: string | undefined;
  chatTemplate?: string | undefined;
  contextLength?: number | undefined;
  /** f16 KV-cache bytes one token of context takes (2 · layers · kv heads · head size · 2 bytes). */
  kvBytesPerToken?: number | undefined;
}

/**
 * Sequences to run at once when `--parallel` is not given: as many KV caches of `contextSize`
 * as fit in a quarter of the machine's memory, between 1 and 8 (on 2 cores, aggregate decode
 * stops improving past a handful of sequences: docs/ENGINE-NOTES.md "Contexts, sequences and memory").
 */
export function defaultParallel(kvBytesPerToken: number | undefined, contextSize: number, memoryBytes: number): number {
  if (!kvBytesPerToken) return 2;
  return Math.min(8, Math.max(1, Math.floor((0.25 * memoryBytes) / (kvBytesPerToken * contextSize))));
}

export async function readGgufSummary(modelPath: string): Promise<GgufSummary> {
  const info = await readGgufFileInfo(modelPath, { readTensorInfo: false });
  const metadata = info.metadata as unknown as Record<string, Record<string, unknown> | undefined>;
  const architecture = metadata.general?.architecture;
  const name = metadata.general?.name;
  const template = metadata.tokenizer?.chat_template;
  const arch = typeof architecture === "string" ? (metadata[architecture] as Record<string, unknown> | undefined) : undefined;
  const context = arch?.context_length;
  const attention = arch?.attention as Record<string, unknown> | undefined;
  const [layers, embd, heads] = [arch?.block_count, arch?.embedding_length, attention?.head_count];
  const kvHeads = attention?.head_count_kv ?? heads;
  const kvBytesPerToken =
    typeof layers === "number" && typeof embd === "number" && typeof heads === "number" && typeof kvHeads === "number"
      ? 2 * layers * kvHeads * (embd / heads) * 2
      : undefined;
  return {
    architecture: typeof architecture === "string" ? architecture : undefined,
    name: typeof name === "string" ? name : undefined,
    chatTemplate: typeof template === "string" ? template : undefined,
    contextLength: typeof context === "number" ? context : undefined,
    kvBytesPerToken: kvBytesPerToken || undefined,
  };
}
