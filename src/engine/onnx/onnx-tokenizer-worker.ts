/**
 * The ONNX engine's tokenizer thread entry (started by onnx-tokenizer-thread.ts): builds an
 * OnnxTokenizer from the engine's tokenizer.json and tokenizer_config.json, then encodes the text
 * runs of large prompts (`encodeRuns`), so they never hold the server's event loop
 * (docs/ENGINE-NOTES.md "ONNX engine batching").
 */
import { parentPort, workerData } from "node:worker_threads";
import type { OnnxTokenizerReply, OnnxTokenizerRequest, OnnxTokenizerWorkerData } from "./onnx-tokenizer-thread.ts";
import { OnnxTokenizer } from "./onnx-tokenizer.ts";

const port = parentPort!;
const { tokenizerJson, tokenizerConfig } = workerData as OnnxTokenizerWorkerData;
const post = (reply: OnnxTokenizerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(reply, transfer);

const tokenizer = new OnnxTokenizer(tokenizerJson, tokenizerConfig);
post({ type: "ready" });

port.on("message", (request: OnnxTokenizerRequest) => {
  try {
    const parts = tokenizer.encodeRuns(request.runs);
    const ids = new Uint32Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      ids.set(part, at);
      at += part.length;
    }
    post({ type: "ids", id: request.id, ids, lengths: parts.map((part) => part.length) }, [ids.buffer]);
  } catch (error) {
    post({ type: "failed", id: request.id, message: error instanceof Error ? error.message : String(error) });
  }
});
