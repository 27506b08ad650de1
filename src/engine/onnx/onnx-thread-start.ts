/**
 * Starts one of the ONNX engine's worker entries (onnx-tokenizer-worker, onnx-graph-worker): the
 * compiled `.js` beside this module, or, running from source under tsx, the `.ts` entry behind a
 * bootstrap that registers tsx first (Node 20 workers do not inherit the parent's `--import tsx`;
 * docs/ENGINE-NOTES.md "Tokenizing off the event loop").
 */
import { Worker } from "node:worker_threads";

export type OnnxWorkerEntry = "onnx-tokenizer-worker" | "onnx-graph-worker";

export function startOnnxWorker(entryName: OnnxWorkerEntry, workerData: unknown): Worker {
  const fromSource = import.meta.url.endsWith(".ts");
  const entry = new URL(`./${entryName}.${fromSource ? "ts" : "js"}`, import.meta.url);
  if (!fromSource) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
