/**
 * The ONNX classifier's thread entry (started by onnx-classifier-thread.ts): loads the tokenizer
 * and the session (onnx-classifier-runner.ts), then classifies texts one at a time in arrival
 * order, skipping the remaining runs of a text whose caller gave up (docs/SAFETY.md "ONNX
 * classifier"). Never logs or echoes text.
 */
import { parentPort, workerData } from "node:worker_threads";
import { OnnxClassifierRunner, type OnnxClassifierSpec } from "./onnx-classifier-runner.ts";
import type { OnnxClassifierReply, OnnxClassifierRequest } from "./onnx-classifier-thread.ts";

const port = parentPort!;
const spec = workerData as OnnxClassifierSpec;
const post = (reply: OnnxClassifierReply, transfer: ArrayBuffer[] = []): void => port.postMessage(reply, transfer);
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

let runner: OnnxClassifierRunner;
try {
  runner = await OnnxClassifierRunner.load(spec);
} catch (error) {
  post({ type: "loadFailed", message: `cannot load the ONNX classifier ${spec.modelFile}: ${messageOf(error)}` });
  process.exit(1);
}

/** Texts queued or in progress, and those of them whose callers gave up. */
const queued = new Set<number>();
const cancelled = new Set<number>();
let queue: Promise<void> = Promise.resolve();

async function classify(id: number, text: string): Promise<void> {
  try {
    const result = await runner.logits(text, () => cancelled.has(id));
    if (result) post({ type: "logits", id, ...result }, [result.logits.buffer as ArrayBuffer]);
  } catch (error) {
    post({ type: "failed", id, message: messageOf(error) });
  } finally {
    queued.delete(id);
    cancelled.delete(id);
  }
}

port.on("message", (request: OnnxClassifierRequest) => {
  if (request.type === "classify") {
    queued.add(request.id);
    queue = queue.then(() => classify(request.id, request.text));
  } else if (request.type === "cancel") {
    if (queued.has(request.id)) cancelled.add(request.id);
  }
  else {
    port.removeAllListeners("message");
    void queue.then(async () => {
      await runner.release();
      process.exit(0);
    });
  }
});
post({ type: "ready" });
