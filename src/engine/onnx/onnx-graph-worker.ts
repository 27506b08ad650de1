/**
 * The ONNX engine's graph thread entry (started by onnx-graph-thread.ts): loads the three
 * Phi-3-vision sessions, holds every sequence's KV cache, and runs the pipeline the engine asks for
 * (docs/VISION.md "ONNX engine"): a prompt's images through the vision encoder, the whole prompt
 * through the embedding graph, the decoder over it in chunks of `batchSize` positions; then one
 * embedding + decoder run per generated token. Each reply writes the last position's logits into the
 * sequence's shared buffer.
 *
 * Graph runs go through one first-come-first-served queue (run-queue.ts), one run at a time: a
 * prompt's chunks take turns with the other sequences' decode steps, and a freed sequence's waiting
 * run is skipped (docs/ENGINE-NOTES.md "ONNX engine batching").
 */
import { parentPort, workerData } from "node:worker_threads";
import type * as ort from "onnxruntime-node";
import { DecoderBuffers, decodeStep, embedTokens, emptyKvCache, encodeImage, loadOnnxGraphs, logitsSize, releaseOnnxGraphs, sliceEmbeds, type KvCache, type OnnxGraphs } from "./onnx-graphs.ts";
import type { OnnxGraphReply, OnnxGraphRequest, OnnxGraphWorkerData, PrefillTimings } from "./onnx-graph-thread.ts";
import { RunQueue } from "./run-queue.ts";

const port = parentPort!;
const { model, threads, contextSize, batchSize } = workerData as OnnxGraphWorkerData;
const names = model.graphs;
const chunk = Math.max(1, batchSize);
const post = (reply: OnnxGraphReply): void => port.postMessage(reply);

class Sequence {
  readonly cache: KvCache;
  readonly buffers = new DecoderBuffers(contextSize, chunk);
  readonly next = new BigInt64Array(1);
  readonly logits: Float32Array;
  freed = false;

  constructor(graphs: OnnxGraphs, logits: SharedArrayBuffer) {
    this.cache = emptyKvCache(graphs);
    this.logits = new Float32Array(logits);
  }

  /** Copies one position's logits out (a longer row is cut to the buffer, a shorter one padded with −∞). */
  write(row: Float32Array): void {
    const n = Math.min(row.length, this.logits.length);
    this.logits.set(row.subarray(0, n));
    this.logits.fill(-Infinity, n);
  }
}

const queue = new RunQueue();
const sequences = new Map<number, Sequence>();
let closing = false;

/** Queues one graph run of `seq`; undefined (nothing run) when the sequence was freed or the thread closes first. */
function run<T>(seq: Sequence, job: () => Promise<T>, timed?: (ms: number) => void): Promise<T | undefined> {
  return queue.run(async () => {
    if (seq.freed || closing) return undefined;
    const started = performance.now();
    const result = await job();
    timed?.(performance.now() - started);
    return result;
  });
}

async function prefill(graphs: OnnxGraphs, request: Extract<OnnxGraphRequest, { type: "prefill" }>): Promise<PrefillTimings | undefined> {
  const seq = new Sequence(graphs, request.logits);
  sequences.set(request.seq, seq);
  const timings: PrefillTimings = { visionMs: 0, embedMs: 0, decodeMs: 0 };
  const features: ort.Tensor[] = [];
  for (const image of request.images) {
    const encoded = await run(seq, () => encodeImage(graphs, names, image), (ms) => (timings.visionMs += ms));
    if (!encoded) return undefined;
    features.push(encoded);
  }
  const { ids } = request;
  const embeds = await run(seq, () => embedTokens(graphs, names, BigInt64Array.from(ids, BigInt), features), (ms) => (timings.embedMs += ms));
  if (!embeds) return undefined;
  let logits: Float32Array | undefined;
  for (let from = 0; from < ids.length; from += chunk) {
    const to = Math.min(ids.length, from + chunk);
    const slice = sliceEmbeds(embeds, from, to);
    // Only the last chunk's logits are used: the others fetch the key/value presents alone.
    const done = to === ids.length
      ? await run(seq, async () => (logits = await decodeStep(graphs, names, seq.cache, slice, seq.buffers)), (ms) => (timings.decodeMs += ms))
      : await run(seq, async () => (await decodeStep(graphs, names, seq.cache, slice, seq.buffers, false), true), (ms) => (timings.decodeMs += ms));
    if (!done) return undefined;
  }
  seq.write(logits!);
  return timings;
}

async function step(graphs: OnnxGraphs, request: Extract<OnnxGraphRequest, { type: "step" }>): Promise<true | undefined> {
  const seq = sequences.get(request.seq);
  if (!seq) throw new Error(`the graph thread has no sequence ${request.seq}`);
  seq.next[0] = BigInt(request.token);
  const logits = await run(seq, async () => decodeStep(graphs, names, seq.cache, await embedTokens(graphs, names, seq.next, []), seq.buffers));
  if (!logits) return undefined;
  seq.write(logits);
  return true;
}

/** Runs a request's work and answers it; a sequence freed meanwhile gets no answer (nobody waits for it). */
async function answer(id: number, work: () => Promise<PrefillTimings | true | undefined>): Promise<void> {
  try {
    const result = await work();
    if (result === undefined) return;
    post(result === true ? { type: "logits", id } : { type: "logits", id, timings: result });
  } catch (error) {
    post({ type: "failed", id, message: error instanceof Error ? error.message : String(error) });
  }
}

function free(id: number): void {
  const seq = sequences.get(id);
  if (!seq) return;
  seq.freed = true;
  sequences.delete(id);
}

async function close(graphs: OnnxGraphs, id: number): Promise<void> {
  closing = true;
  for (const id of [...sequences.keys()]) free(id);
  await queue.run(async () => undefined); // the run in progress finishes; the waiting ones see `closing`
  await releaseOnnxGraphs(graphs);
  post({ type: "closed", id });
}

const loaded = await loadOnnxGraphs(model, threads).catch((error: unknown) => {
  post({ type: "loadFailed", message: error instanceof Error ? error.message : String(error) });
  return undefined;
});
if (loaded) {
  const graphs = loaded;
  port.on("message", (request: OnnxGraphRequest) => {
    if (request.type === "prefill") void answer(request.id, () => prefill(graphs, request));
    else if (request.type === "step") void answer(request.id, () => step(graphs, request));
    else if (request.type === "free") free(request.seq);
    else void close(graphs, request.id);
  });
  post({ type: "ready", facts: { layers: graphs.layers, logitsSize: logitsSize(graphs, names) } });
}
