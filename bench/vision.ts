/**
 * Phi-3-vision through the server vs the ONNX engine driven directly (figures, not tests), on the
 * generated Phi-3-vision test model (random weights, hidden 32: docs/VISION.md "Test model").
 *
 * 1. Tokens/s: the same requests (the Azure docs' chart question, text only and with a 1900×1069 JPEG
 *    at num_crops 16; greedy, and temperature 0.8 / top_p 0.95 with a seed; concurrency 1 and 2) sent
 *    to `phiserve serve` in a child process (streamed, usage from the last chunk), and run in this
 *    process on an engine built by the same factory with the same threads, context, batch size and
 *    stop tokens. The direct path does the work the server does for a request besides HTTP: it
 *    decodes the data URL, preprocesses the image, counts the prompt's tokens and generates, with the
 *    prompt rendered by the catalog template. Both outputs are compared: they must be identical.
 *    Server and direct waves alternate; each figure is the median over `--repeats` waves. CPU time per
 *    token is summed over all waves of both processes (server + this client, or this process alone):
 *    it moves less than wall time when other work shares the machine.
 * 2. The image request's first token: the server's TTFT (max_tokens 1), the direct path's, and each
 *    phase timed alone on the same functions and onnxruntime sessions the engine uses (onnx-graphs.ts).
 *
 *   node --import tsx bench/vision.ts [--repeats 5] [--max-tokens 128] [--threads 2] [--ttft-repeats 9]
 *                                     [--only throughput|ttft] [--content-safety off|annotate|filter] [--json]
 * The server runs with `--content-safety off` unless asked: with the filter on (the server's default), streamed
 * text is released in vetted windows of 128 characters (docs/SAFETY.md), so the first text a client sees waits
 * for about 25 of the test model's tokens; that is the filter's cost, not the engine path's.
 */
import { parseArgs } from "node:util";
import { sseChunks } from "./sse-chunks.ts";
import os from "node:os";
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { ensurePhi3vTestModel } from "../src/model-factory/phi3v-test-model.ts";
import { createOnnxEngineFactory } from "../src/engine/onnx/onnx-engine-factory.ts";
import { readOnnxModelFolder } from "../src/engine/onnx/onnx-model-folder.ts";
import { DecoderBuffers, decodeStep, embedTokens, emptyKvCache, encodeImage, loadOnnxGraphs, releaseOnnxGraphs, sliceEmbeds } from "../src/engine/onnx/onnx-graphs.ts";
import { OnnxTokenizer } from "../src/engine/onnx/onnx-tokenizer.ts";
import { LogitSampler } from "../src/engine/onnx/onnx-sampler.ts";
import type { Engine, GenerationRequest, PromptText } from "../src/engine/engine.ts";
import { CHAT_TEMPLATES, renderChatPrompt } from "../src/catalog/chat-templates.ts";
import { findCatalogModel } from "../src/catalog/phi-models.ts";
import { withBos } from "../src/serving/chat-generation.ts";
import { IMAGE_TAG } from "../src/serving/prompt-plan.ts";
import { DEFAULT_IMAGE_LIMITS } from "../src/config/serve-config.ts";
import { parseImageDataUrl } from "../src/vision/data-url.ts";
import { preprocessPhi3vImage } from "../src/vision/phi3v-preprocess.ts";
import { Cancellation } from "../src/lib/cancellation.ts";
import { startServer } from "../test/helpers/start-server.ts";
import { chartJpeg } from "./chart-image.ts";

const { values: args } = parseArgs({
  options: {
    repeats: { type: "string", default: "5" },
    "max-tokens": { type: "string", default: "128" },
    threads: { type: "string", default: "2" },
    "batch-size": { type: "string", default: "512" },
    context: { type: "string", default: "4096" },
    "ttft-repeats": { type: "string", default: "9" },
    only: { type: "string" },
    "content-safety": { type: "string", default: "off" },
    json: { type: "boolean", default: false },
  },
});
const repeats = Number(args.repeats);
const maxTokens = Number(args["max-tokens"]);
const threads = Number(args.threads);
const batchSize = Number(args["batch-size"]);
const contextSize = Number(args.context);
const ttftRepeats = Number(args["ttft-repeats"]);
const NUM_CROPS = 16;
const MODEL_NAME = "phi-3-vision-128k-instruct";
/** The Azure docs' Phi-3-vision sample question (2380 prompt tokens with the 1900×1069 chart). */
const QUESTION = "Which peculiar conclusion about LLMs and SLMs can be extracted from the following chart?";
const CATALOG = findCatalogModel(MODEL_NAME)!;

// ---------------------------------------------------------------------------------------------
// Inputs


type PromptKind = "text" | "image";
type SamplingKind = "greedy" | "sampled";
interface Scenario {
  prompt: PromptKind;
  sampling: SamplingKind;
  concurrency: number;
}

const sampling = (kind: SamplingKind, stream: number) =>
  kind === "greedy" ? { temperature: 0, top_p: 1 } : { temperature: 0.8, top_p: 0.95, seed: 1000 + stream };

function requestBody(prompt: PromptKind, kind: SamplingKind, stream: number, dataUrl: string, tokens: number): string {
  const content = prompt === "text" ? QUESTION : [{ type: "text", text: QUESTION }, { type: "image_url", image_url: { url: dataUrl } }];
  return JSON.stringify({ model: MODEL_NAME, messages: [{ role: "user", content }], max_tokens: tokens, stream: true, stream_options: { include_usage: true }, ...sampling(kind, stream) });
}

/** The prompt as the server renders it: catalog template, image tag as markup, message text literal, BOS added. */
function renderPrompt(prompt: PromptKind, info: { bosToken: string; eosToken: string; addBosToken: boolean }): Required<Pick<PromptText, "prompt" | "literalSpans">> {
  const content = prompt === "image" ? `${IMAGE_TAG}\n${QUESTION}` : QUESTION;
  const markup = prompt === "image" ? [{ start: 0, end: IMAGE_TAG.length }] : undefined;
  const rendered = renderChatPrompt(CHAT_TEMPLATES[CATALOG.chatTemplate], [{ role: "user", content, ...(markup ? { markup } : {}) }], info);
  const text = withBos(rendered.prompt, info);
  const shift = text.length - rendered.prompt.length;
  return { prompt: text, literalSpans: rendered.literalSpans.map((s) => ({ start: s.start + shift, end: s.end + shift })) };
}

// ---------------------------------------------------------------------------------------------
// One request, either way

interface Sample {
  ttftMs: number;
  tokens: number;
  /** performance.now() of the first and last text piece. */
  firstAt: number;
  endAt: number;
  text: string;
  promptTokens: number;
}

async function serverRequest(baseUrl: string, body: string): Promise<Sample> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let firstAt = 0, endAt = 0, tokens = 0, promptTokens = 0, text = "";
  for await (const chunk of sseChunks(res.body)) {
    const piece = chunk.choices?.[0]?.delta?.content;
    if (piece) {
      endAt = performance.now();
      firstAt ||= endAt;
      text += piece;
    }
    if (chunk.usage) ({ completion_tokens: tokens, prompt_tokens: promptTokens } = chunk.usage);
  }
  return { ttftMs: firstAt - started, tokens, firstAt, endAt, text, promptTokens };
}

interface DirectDeps {
  engine: Engine;
  rendered: Record<PromptKind, Required<Pick<PromptText, "prompt" | "literalSpans">>>;
  dataUrl: string;
}

/** The request's work without HTTP: data URL → image → token count → generation (as ChatGeneration does it). */
async function directRequest(deps: DirectDeps, prompt: PromptKind, kind: SamplingKind, stream: number, tokens: number): Promise<Sample> {
  const started = performance.now();
  const { engine } = deps;
  let images: GenerationRequest["images"];
  if (prompt === "image") {
    const { bytes, declaredMime } = parseImageDataUrl(deps.dataUrl, DEFAULT_IMAGE_LIMITS.maxBytes);
    images = [await preprocessPhi3vImage(bytes, declaredMime, { numCrops: NUM_CROPS, maxPixels: DEFAULT_IMAGE_LIMITS.maxPixels })];
  }
  const promptText = { ...deps.rendered[prompt], images };
  const count = await engine.countTokens(promptText, contextSize - tokens);
  const s = sampling(kind, stream);
  const request: GenerationRequest = { ...promptText, maxTokens: tokens, temperature: s.temperature, topP: s.top_p, seed: "seed" in s ? s.seed : undefined, presencePenalty: 0, frequencyPenalty: 0 };
  let firstAt = 0, endAt = 0, generated = 0, text = "";
  for await (const event of engine.generate(request, new Cancellation())) {
    if (event.type !== "token") continue;
    generated += event.tokenCount;
    if (event.text) {
      endAt = performance.now();
      firstAt ||= endAt;
      text += event.text;
    }
  }
  return { ttftMs: firstAt - started, tokens: generated, firstAt, endAt, text, promptTokens: count.tokens };
}

// ---------------------------------------------------------------------------------------------
// Part 1: tokens/s

interface Wave {
  /** CPU time of this process and the server process during the wave. */
  cpuMs: number;
  tokens: number;
  /** Σ tokens / (last piece of any stream − start). */
  aggregate: number;
  /** Mean over streams of (tokens − 1) / (last − first piece). */
  decode: number;
  ttftMs: number;
  samples: Sample[];
}

/** CPU ms used so far by this process and the server's (clock ticks of /proc, 10 ms resolution on Linux). */
function cpuNow(serverPid: number): number {
  const fields = readFileSync(`/proc/${serverPid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  const own = process.cpuUsage();
  return ticks * 10 + (own.user + own.system) / 1000;
}

async function wave(c: number, serverPid: number, one: (stream: number) => Promise<Sample>): Promise<Wave> {
  const cpu = cpuNow(serverPid);
  const started = performance.now();
  const samples = await Promise.all(Array.from({ length: c }, (_, s) => one(s)));
  const end = Math.max(...samples.map((s) => s.endAt));
  return {
    cpuMs: cpuNow(serverPid) - cpu,
    tokens: samples.reduce((a, s) => a + s.tokens, 0),
    aggregate: samples.reduce((a, s) => a + s.tokens, 0) / ((end - started) / 1000),
    decode: samples.reduce((a, s) => a + (s.tokens - 1) / ((s.endAt - s.firstAt) / 1000), 0) / c,
    ttftMs: median(samples.map((s) => s.ttftMs)),
    samples,
  };
}

interface PathFigures {
  aggregate: number[];
  decode: number[];
  ttftMs: number[];
  /** Totals over the timed waves. */
  cpuMs: number;
  tokens: number;
}

interface ScenarioResult extends Scenario {
  promptTokens: number;
  server: PathFigures;
  direct: PathFigures;
  identicalOutputs: boolean;
}

async function throughput(baseUrl: string, serverPid: number, deps: DirectDeps): Promise<ScenarioResult[]> {
  const scenarios: Scenario[] = [];
  for (const prompt of ["text", "image"] as const) for (const s of ["greedy", "sampled"] as const) for (const c of [1, 2]) scenarios.push({ prompt, sampling: s, concurrency: c });
  const results: ScenarioResult[] = scenarios.map((s) => ({ ...s, promptTokens: 0, server: { aggregate: [], decode: [], ttftMs: [], cpuMs: 0, tokens: 0 }, direct: { aggregate: [], decode: [], ttftMs: [], cpuMs: 0, tokens: 0 }, identicalOutputs: true }));
  const bodies = new Map<string, string>();
  const body = (s: Scenario, stream: number) => {
    const key = `${s.prompt}/${s.sampling}/${stream}`;
    if (!bodies.has(key)) bodies.set(key, requestBody(s.prompt, s.sampling, stream, deps.dataUrl, maxTokens));
    return bodies.get(key)!;
  };
  const run = (s: Scenario, path: "server" | "direct") =>
    wave(s.concurrency, serverPid, (stream) => (path === "server" ? serverRequest(baseUrl, body(s, stream)) : directRequest(deps, s.prompt, s.sampling, stream, maxTokens)));
  for (const s of scenarios) { await run(s, "server"); await run(s, "direct"); } // warm-up
  for (let r = 0; r < repeats; r++) {
    for (const [i, s] of scenarios.entries()) {
      const order = (r + i) % 2 === 0 ? (["server", "direct"] as const) : (["direct", "server"] as const);
      const waves: Partial<Record<"server" | "direct", Wave>> = {};
      for (const path of order) waves[path] = await run(s, path);
      const result = results[i]!;
      for (const path of order) {
        const w = waves[path]!;
        result[path].aggregate.push(w.aggregate);
        result[path].decode.push(w.decode);
        result[path].ttftMs.push(w.ttftMs);
        result[path].cpuMs += w.cpuMs;
        result[path].tokens += w.tokens;
      }
      const [sv, dv] = [waves.server!.samples, waves.direct!.samples];
      result.promptTokens = sv[0]!.promptTokens;
      if (sv.some((x, k) => x.text !== dv[k]!.text || x.tokens !== dv[k]!.tokens || x.promptTokens !== dv[k]!.promptTokens)) result.identicalOutputs = false;
    }
    process.stderr.write(`throughput: repeat ${r + 1}/${repeats} done\n`);
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Part 2: the image request's first token, phase by phase

interface Phases {
  jsonParseMs: number;
  dataUrlMs: number;
  imageDecodeMs: number;
  preprocessMs: number;
  tokenizeMs: number;
  visionMs: number;
  embedMs: number;
  prefillMs: number;
  firstTokenMs: number;
  /** Not part of the TTFT: the cost of each later token (embedding + one decoder run + sampling). */
  nextTokenMs: number;
}

async function imageTtft(baseUrl: string, deps: DirectDeps, modelDir: string) {
  const folder = readOnnxModelFolder(modelDir);
  const graphs = await loadOnnxGraphs(folder, threads);
  const names = folder.graphs;
  const serverTtft: number[] = [];
  const directTtft: number[] = [];
  const phases: Phases[] = [];
  const body = requestBody("image", "greedy", 0, deps.dataUrl, 1);
  const rendered = deps.rendered.image;
  try {
    for (let r = -1; r < ttftRepeats; r++) {
      const server = await serverRequest(baseUrl, body);
      const direct = await directRequest(deps, "image", "greedy", 0, 1);
      const tokenizer = new OnnxTokenizer(folder.tokenizerJson, folder.tokenizerConfig); // fresh: no cached count
      const p = {} as Phases;
      let t = performance.now();
      const lap = () => { const now = performance.now(); const ms = now - t; t = now; return ms; };
      const parsed = JSON.parse(body) as { messages: [{ content: [unknown, { image_url: { url: string } }] }] };
      p.jsonParseMs = lap();
      const { bytes, declaredMime } = parseImageDataUrl(parsed.messages[0].content[1].image_url.url, DEFAULT_IMAGE_LIMITS.maxBytes);
      p.dataUrlMs = lap();
      const image = await preprocessPhi3vImage(bytes, declaredMime, { numCrops: NUM_CROPS, maxPixels: DEFAULT_IMAGE_LIMITS.maxPixels });
      lap();
      p.imageDecodeMs = image.timings.decodeMs;
      p.preprocessMs = image.timings.preprocessMs;
      const promptText = { ...rendered, images: [image] };
      tokenizer.count(promptText, contextSize - 1);
      const ids = tokenizer.encode(promptText);
      p.tokenizeMs = lap();
      const features = await encodeImage(graphs, names, image);
      p.visionMs = lap();
      const embeds = await embedTokens(graphs, names, BigInt64Array.from(ids, BigInt), [features]);
      p.embedMs = lap();
      const cache = emptyKvCache(graphs);
      const buffers = new DecoderBuffers(contextSize, batchSize);
      let logits: Float32Array | undefined;
      for (let from = 0; from < ids.length; from += batchSize) logits = await decodeStep(graphs, names, cache, sliceEmbeds(embeds, from, Math.min(ids.length, from + batchSize)), buffers);
      p.prefillMs = lap();
      const sampler = new LogitSampler({ vocabSize: folder.vocabSize ?? logits!.length, temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0, bias: new Map(), topLogprobs: undefined, seed: 0 });
      const choice = sampler.choose(logits!);
      sampler.accept(choice.token);
      p.firstTokenMs = lap();
      const next = BigInt64Array.of(BigInt(choice.token));
      sampler.choose(await decodeStep(graphs, names, cache, await embedTokens(graphs, names, next, []), buffers));
      p.nextTokenMs = lap();
      if (ids.length !== server.promptTokens || direct.promptTokens !== server.promptTokens) throw new Error(`prompt tokens differ: phases ${ids.length}, direct ${direct.promptTokens}, server ${server.promptTokens}`);
      if (r < 0) continue; // warm-up
      process.stderr.write(`ttft ${r + 1}/${ttftRepeats}: server ${server.ttftMs.toFixed(0)} ms, direct ${direct.ttftMs.toFixed(0)} ms, phases ${JSON.stringify(p, (_k, v: unknown) => (typeof v === "number" ? Math.round(v * 10) / 10 : v))}\n`);
      serverTtft.push(server.ttftMs);
      directTtft.push(direct.ttftMs);
      phases.push(p);
    }
  } finally {
    await releaseOnnxGraphs(graphs);
  }
  const phaseMedians = Object.fromEntries(Object.keys(phases[0]!).map((k) => [k, median(phases.map((p) => p[k as keyof Phases]))])) as unknown as Phases;
  return { serverTtftMs: median(serverTtft), directTtftMs: median(directTtft), phases: phaseMedians };
}

// ---------------------------------------------------------------------------------------------
// Output

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function throughputTable(results: ScenarioResult[]): string {
  const head = "prompt  sampling  conc  prompt tok   server tok/s  direct tok/s  ratio   server decode  direct decode  ratio   TTFT server/direct ms   CPU ms/token server/direct  same output";
  const rows = results.map((r) => {
    const [sa, da, sd, dd] = [median(r.server.aggregate), median(r.direct.aggregate), median(r.server.decode), median(r.direct.decode)];
    return [
      r.prompt.padEnd(6), r.sampling.padEnd(9), String(r.concurrency).padStart(4), String(r.promptTokens).padStart(11),
      sa.toFixed(1).padStart(14), da.toFixed(1).padStart(13), (sa / da).toFixed(3).padStart(6),
      sd.toFixed(1).padStart(15), dd.toFixed(1).padStart(14), (sd / dd).toFixed(3).padStart(6),
      `${median(r.server.ttftMs).toFixed(1)}/${median(r.direct.ttftMs).toFixed(1)}`.padStart(23),
      `${(r.server.cpuMs / r.server.tokens).toFixed(2)}/${(r.direct.cpuMs / r.direct.tokens).toFixed(2)}`.padStart(28), (r.identicalOutputs ? "yes" : "NO").padStart(12),
    ].join(" ");
  });
  return [head, ...rows].join("\n");
}

function ttftTable(ttft: Awaited<ReturnType<typeof imageTtft>>): string {
  const { phases: p, serverTtftMs } = ttft;
  const rows: [string, number][] = [
    ["request body JSON.parse (236 KB)", p.jsonParseMs],
    ["data URL → bytes (base64)", p.dataUrlMs],
    ["image decode (sharp)", p.imageDecodeMs],
    ["preprocess (HD resize, pad, tiles, global view, normalise)", p.preprocessMs],
    ["tokenize (count + ids, uncached)", p.tokenizeMs],
    ["vision encoder (17 crops)", p.visionMs],
    ["embedding graph (whole prompt)", p.embedMs],
    [`prefill (decoder, chunks of ${batchSize})`, p.prefillMs],
    ["first token (sampling)", p.firstTokenMs],
  ];
  const sum = rows.reduce((a, [, ms]) => a + ms, 0);
  const lines = rows.map(([name, ms]) => `${name.padEnd(60)} ${ms.toFixed(2).padStart(8)} ms  ${((ms / serverTtftMs) * 100).toFixed(1).padStart(5)} %`);
  return [
    ...lines,
    `${"sum of the phases".padEnd(60)} ${sum.toFixed(2).padStart(8)} ms  ${((sum / serverTtftMs) * 100).toFixed(1).padStart(5)} %`,
    `${"direct path TTFT (data URL → first token, in process)".padEnd(60)} ${ttft.directTtftMs.toFixed(2).padStart(8)} ms`,
    `${"server TTFT (HTTP request → first content chunk)".padEnd(60)} ${serverTtftMs.toFixed(2).padStart(8)} ms  100.0 %`,
    `${"rest: HTTP, validation, admission, SSE, scheduling".padEnd(60)} ${(serverTtftMs - sum).toFixed(2).padStart(8)} ms  ${(((serverTtftMs - sum) / serverTtftMs) * 100).toFixed(1).padStart(5)} %`,
    `${"(each later token: embedding + decoder + sampling)".padEnd(60)} ${p.nextTokenMs.toFixed(2).padStart(8)} ms`,
  ].join("\n");
}

async function main(): Promise<void> {
  const modelDir = await ensurePhi3vTestModel();
  const jpeg = await chartJpeg(1900, 1069);
  const dataUrl = `data:image/jpeg;base64,${jpeg.toString("base64")}`;
  const load = os.loadavg().map((l) => l.toFixed(2)).join(" ");
  process.stderr.write(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), load ${load}; image 1900×1069 JPEG ${jpeg.length} bytes\n`);
  const engine = await createOnnxEngineFactory().create({
    modelPath: modelDir, modelContextLength: undefined, contextSize, parallel: 2, threads, batchSize, decodeBatch: undefined, gpu: "cpu",
    extraStopTokens: CATALOG.stopTokens, logger: pino({ level: "silent" }),
  });
  await engine.load();
  const info = engine.modelInfo();
  const deps: DirectDeps = { engine, dataUrl, rendered: { text: renderPrompt("text", info), image: renderPrompt("image", info) } };
  const server = await startServer([
    "--model", modelDir, "--model-name", MODEL_NAME, "--threads", String(threads), "--parallel", "2", "--context", String(contextSize),
    "--batch-size", String(batchSize), "--num-crops", String(NUM_CROPS), "--rpm", "1000000", "--tpm", "1000000000", "--log-level", "info",
    "--content-safety", args["content-safety"],
  ], { timeoutMs: 300_000 });
  try {
    const results = args.only === "ttft" ? [] : await throughput(server.url, server.process.pid!, deps);
    const ttft = args.only === "throughput" ? undefined : await imageTtft(server.url, deps, modelDir);
    const loadAfter = os.loadavg().map((l) => l.toFixed(2)).join(" ");
    const report = { contentSafety: args["content-safety"], maxTokens, repeats, threads, batchSize, contextSize, loadBefore: load, loadAfter, results, ttft };
    if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      process.stdout.write(`max_tokens ${maxTokens}, threads ${threads}, server --content-safety ${args["content-safety"]}, medians of ${repeats} waves; load before ${load}, after ${loadAfter}\n\n`);
      if (results.length > 0) process.stdout.write(`${throughputTable(results)}\n\n`);
      if (ttft) process.stdout.write(`image request, first token (max_tokens 1, greedy; medians of ${ttftRepeats}):\n${ttftTable(ttft)}\n\n`);
      process.stdout.write(`${JSON.stringify(report)}\n`);
    }
  } finally {
    await server.close();
    await engine.close();
  }
}

await main();
