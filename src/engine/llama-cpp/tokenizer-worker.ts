/**
 * The tokenizer thread's entry (started by tokenizer-thread.ts): loads the model's vocabulary
 * only (`vocabOnly`, no weights), then tokenizes raw text fragments with special-token parsing
 * off, so long prompts never hold the server's event loop (docs/ENGINE-NOTES.md "Tokenizing off
 * the event loop").
 */
import { parentPort, workerData } from "node:worker_threads";
import { getLlama } from "node-llama-cpp";
import type { TokenizerReply, TokenizerRequest, TokenizerWorkerData } from "./tokenizer-thread.ts";

const port = parentPort!;
const { modelPath } = workerData as TokenizerWorkerData;
const post = (reply: TokenizerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(reply, transfer);

const llama = await getLlama({
  gpu: false,
  build: "never",
  logger: (level, message) => {
    if (level === "error" || level === "fatal" || level === "warn") post({ type: "log", level, message });
  },
});
const model = await llama.loadModel({ modelPath, vocabOnly: true });
post({ type: "ready" });

port.on("message", (request: TokenizerRequest) => {
  if (request.type === "close") {
    // Frees the model while this thread's environment is whole (tokenizer-thread.ts CLOSE_GRACE_MS);
    // not the backend, which is the process's.
    model.dispose().then(
      () => post({ type: "closed" }),
      (error: unknown) => post({ type: "log", level: "error", message: `freeing the vocabulary failed: ${error instanceof Error ? error.message : String(error)}` }),
    );
    return;
  }
  try {
    const parts = request.fragments.map((fragment) => model.tokenize(fragment, false));
    const tokens = new Uint32Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      tokens.set(part, at);
      at += part.length;
    }
    post({ type: "tokens", id: request.id, tokens, lengths: parts.map((part) => part.length) }, [tokens.buffer]);
  } catch (error) {
    post({ type: "failed", id: request.id, message: error instanceof Error ? error.message : String(error) });
  }
});
