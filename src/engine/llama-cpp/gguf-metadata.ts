/** Reads a GGUF's header (no weights loaded): what start-up needs to pick a template and a context size. */
import { readGgufFileInfo } from "node-llama-cpp";

export interface GgufSummary {
  architecture?: string;
  name?: string;
  chatTemplate?: string;
  contextLength?: number;
}

export async function readGgufSummary(modelPath: string): Promise<GgufSummary> {
  const info = await readGgufFileInfo(modelPath, { readTensorInfo: false });
  const metadata = info.metadata as unknown as Record<string, Record<string, unknown> | undefined>;
  const architecture = metadata.general?.architecture;
  const name = metadata.general?.name;
  const template = metadata.tokenizer?.chat_template;
  const context = typeof architecture === "string" ? metadata[architecture]?.context_length : undefined;
  return {
    ...(typeof architecture === "string" ? { architecture } : {}),
    ...(typeof name === "string" ? { name } : {}),
    ...(typeof template === "string" ? { chatTemplate: template } : {}),
    ...(typeof context === "number" ? { contextLength: context } : {}),
  };
}
