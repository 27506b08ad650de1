/**
 * Content-safety classifier quality and cost on the labelled corpus (figures, not tests): every text
 * of bench/safety-corpus.jsonl is classified by each backend, and per backend it prints
 * - per harm category: precision, recall and false-positive rate at the threshold, where a text is a
 *   positive when its label reaches the threshold and is flagged when the classifier's severity
 *   reaches it (Azure's buckets: 0–1 safe, 2–3 low, 4–5 medium, 6–7 high);
 * - "filtered", the policy's view: a text is blocked when any category reaches the threshold or, on a
 *   prompt, a jailbreak is detected (Azure's default policy at the default threshold);
 * - jailbreak precision / recall / false-positive rate, on prompts only;
 * - the false-positive rate on the benign look-alikes (and on the plain benign texts);
 * - the added latency of one classification, mean and p95, after a warm-up pass;
 * - for a backend that reports profanity, its hit rate on harmful and on benign texts;
 * then the ids of the texts it missed and of its false alarms.
 *
 *   node --import tsx bench/safety.ts [--backend SPEC]... [--threshold low|medium|high] [--repeat 3] [--json]
 *
 * SPEC: `lexicon` (the built-in lexicon, what runs by default), `blocklist` (obscenity's profanity
 * list), `onnx=<folder>` (a local text-classification folder; KoalaAI/Text-Moderation's labels unless
 * --onnx-labels names a JSON file of label → category), `azure=<endpoint>` (Azure AI Content Safety,
 * key in $AZURE_CONTENT_SAFETY_KEY, Prompt Shields on), `judge=<url>` (an OpenAI-compatible server,
 * phiserve included, as the judge: its /v1/chat/completions with a json_schema response format;
 * --judge-model names the model, default the first of its /v1/models; a key in $JUDGE_API_KEY is sent
 * as `api-key` and as a bearer token). Without --backend: lexicon and blocklist.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createAzureContentSafetyClassifier } from "../src/safety/azure-content-safety-classifier.ts";
import { createBlocklistClassifier } from "../src/safety/blocklist-classifier.ts";
import { HARM_CATEGORIES, type Classification, type HarmCategory, type TextClassifier, type TextRole } from "../src/safety/classifier.ts";
import { reaches, type Threshold } from "../src/safety/content-policy.ts";
import type { GuardCompletion } from "../src/safety/guard-classifier.ts";
import { createJudgeClassifier } from "../src/safety/judge-classifier.ts";
import { createLexiconClassifier } from "../src/safety/lexicon-classifier.ts";
import { createOnnxTextClassifier, KOALA_TEXT_MODERATION_LABELS, ONNX_LABEL_TARGETS, type OnnxLabelMap } from "../src/safety/onnx-text-classifier.ts";

// ---------------------------------------------------------------------------------------------------
// The corpus

type Kind = "harmful" | "benign-lookalike" | "benign";
const KINDS: readonly Kind[] = ["harmful", "benign-lookalike", "benign"];

export interface CorpusItem {
  id: string;
  text: string;
  role: TextRole;
  labels: Record<HarmCategory, number>;
  jailbreak: boolean;
  kind: Kind;
  note?: string;
}

/** Reads the corpus (JSON lines; a line with `_comment` is the header), checking every field. */
export function loadCorpus(path: string): CorpusItem[] {
  const items: CorpusItem[] = [];
  const ids = new Set<string>();
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((line, index) => {
      if (line.trim() === "") return;
      const where = `${path} line ${index + 1}`;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (error) {
        throw new Error(`${where} is not JSON: ${(error as Error).message}`);
      }
      const o = value as Record<string, unknown>;
      if ("_comment" in o) return;
      const labels = o.labels as Record<string, unknown> | undefined;
      const bad = (what: string) => new Error(`${where}: ${what}`);
      if (typeof o.id !== "string" || o.id === "") throw bad("id must be a non-empty string");
      if (ids.has(o.id)) throw bad(`id ${o.id} is used twice`);
      if (typeof o.text !== "string" || o.text.trim() === "") throw bad("text must be a non-empty string");
      if (o.role !== "prompt" && o.role !== "completion") throw bad('role must be "prompt" or "completion"');
      if (typeof labels !== "object" || labels === null) throw bad("labels must be an object");
      for (const c of HARM_CATEGORIES) {
        const s = labels[c];
        if (typeof s !== "number" || !Number.isInteger(s) || s < 0 || s > 7) throw bad(`labels.${c} must be an integer 0–7`);
      }
      if (typeof o.jailbreak !== "boolean") throw bad("jailbreak must be true or false");
      if (o.jailbreak && o.role !== "prompt") throw bad("only a prompt can be a jailbreak");
      if (!KINDS.includes(o.kind as Kind)) throw bad(`kind must be one of ${KINDS.join(", ")}`);
      const harmful = o.jailbreak || HARM_CATEGORIES.some((c) => (labels[c] as number) >= 2);
      if (harmful !== (o.kind === "harmful")) throw bad('kind must be "harmful" exactly when a label is 2 or more or it is a jailbreak');
      ids.add(o.id);
      items.push(value as CorpusItem);
    });
  return items;
}

// ---------------------------------------------------------------------------------------------------
// Backends

interface Backend {
  label: string;
  classifier: TextClassifier;
  /** Passes counted for latency (remote backends: 1). */
  repeat: number;
}

/** A GuardCompletion over an OpenAI-compatible server's chat completions, greedy, schema-constrained. */
export function openAiCompatibleCompletion(baseUrl: string, model: string | undefined, apiKey: string | undefined): GuardCompletion {
  const url = `${baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "")}/v1/chat/completions`;
  return async (request, signal) => {
    const response = await fetch(url, {
      method: "POST",
      signal,
      headers: { "content-type": "application/json", ...(apiKey === undefined ? {} : { "api-key": apiKey, authorization: `Bearer ${apiKey}` }) },
      body: JSON.stringify({
        ...(model === undefined ? {} : { model }),
        messages: request.messages,
        max_tokens: request.maxTokens,
        temperature: 0,
        ...(request.jsonSchema === undefined
          ? {}
          : { response_format: { type: "json_schema", json_schema: { name: "content_safety_rating", schema: request.jsonSchema, strict: true } } }),
      }),
    });
    const body = (await response.json().catch(() => undefined)) as { choices?: { message?: { content?: unknown } }[]; error?: { message?: string } } | undefined;
    if (!response.ok) throw new Error(`judge server answered ${response.status}: ${body?.error?.message ?? "no error message"}`);
    const content = body?.choices?.[0]?.message?.content;
    if (typeof content !== "string") throw new Error("judge server's answer has no choices[0].message.content");
    return content;
  };
}

async function firstModel(baseUrl: string, apiKey: string | undefined): Promise<string | undefined> {
  const url = `${baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "")}/v1/models`;
  try {
    const response = await fetch(url, { headers: apiKey === undefined ? {} : { "api-key": apiKey, authorization: `Bearer ${apiKey}` } });
    const body = (await response.json()) as { data?: { id?: unknown }[] };
    const id = body.data?.[0]?.id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

function readLabelMap(path: string): OnnxLabelMap {
  const map = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  for (const [label, target] of Object.entries(map)) {
    if (!ONNX_LABEL_TARGETS.includes(target as never)) throw new Error(`--onnx-labels: label ${label} → ${String(target)}: use one of ${ONNX_LABEL_TARGETS.join(", ")}`);
  }
  return map as OnnxLabelMap;
}

interface Options {
  repeat: number;
  timeoutMs: number;
  judgeModel: string | undefined;
  onnxLabels: string | undefined;
}

const BACKEND_ARGUMENT = { lexicon: undefined, blocklist: undefined, onnx: "folder", azure: "endpoint", judge: "url" } as const;
type BackendKind = keyof typeof BACKEND_ARGUMENT;

/** `kind` or `kind=argument`, checked before anything runs. */
function parseBackendSpec(spec: string): { kind: BackendKind; arg: string } {
  const eq = spec.indexOf("=");
  const kind = eq < 0 ? spec : spec.slice(0, eq);
  const arg = eq < 0 ? "" : spec.slice(eq + 1);
  if (!Object.hasOwn(BACKEND_ARGUMENT, kind)) throw new Error(`unknown backend "${spec}": use lexicon, blocklist, onnx=<folder>, azure=<endpoint> or judge=<url>`);
  const what = BACKEND_ARGUMENT[kind as BackendKind];
  if (what !== undefined && arg === "") throw new Error(`--backend ${kind} needs its ${what}: --backend ${kind}=<${what}>`);
  if (what === undefined && arg !== "") throw new Error(`--backend ${kind} takes no argument`);
  return { kind: kind as BackendKind, arg };
}

async function createBackend(spec: string, options: Options): Promise<Backend> {
  const { kind, arg } = parseBackendSpec(spec);
  switch (kind) {
    case "lexicon":
      return { label: "lexicon (built-in)", classifier: createLexiconClassifier({ builtIn: true }), repeat: options.repeat };
    case "blocklist":
      return { label: "blocklist (profanity)", classifier: createBlocklistClassifier({ profanity: true, blocklists: [] }), repeat: options.repeat };
    case "onnx": {
      const folder = arg;
      const labels = options.onnxLabels === undefined ? KOALA_TEXT_MODERATION_LABELS : readLabelMap(options.onnxLabels);
      return { label: `onnx (${folder.split(/[\\/]/).filter(Boolean).pop() ?? folder})`, classifier: await createOnnxTextClassifier({ folder, labels }), repeat: options.repeat };
    }
    case "azure": {
      const endpoint = arg;
      const key = process.env.AZURE_CONTENT_SAFETY_KEY;
      if (!key) throw new Error("--backend azure needs the resource key in the environment variable AZURE_CONTENT_SAFETY_KEY");
      return { label: "azure content safety", classifier: createAzureContentSafetyClassifier({ endpoint, key, promptShields: true, timeoutMs: options.timeoutMs }), repeat: 1 };
    }
    case "judge": {
      const url = arg;
      const apiKey = process.env.JUDGE_API_KEY || undefined;
      const model = options.judgeModel ?? (await firstModel(url, apiKey));
      return { label: `judge (${model ?? "server default model"})`, classifier: createJudgeClassifier(openAiCompatibleCompletion(url, model, apiKey)), repeat: 1 };
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Measuring

interface Outcome {
  item: CorpusItem;
  /** undefined: the classifier rejected (the policy would let the text through, annotated content_filter_error). */
  result: Classification | undefined;
}

interface Run {
  outcomes: Outcome[];
  latenciesMs: number[];
  errors: number;
  firstError: string | undefined;
}

async function classifyAll(backend: Backend, corpus: readonly CorpusItem[], timeoutMs: number): Promise<Run> {
  const once = async (item: CorpusItem): Promise<{ result: Classification | undefined; ms: number; error?: string }> => {
    const signal = AbortSignal.timeout(timeoutMs);
    const start = performance.now();
    try {
      const result = await backend.classifier.classify(item.text, item.role, signal);
      return { result, ms: performance.now() - start };
    } catch (error) {
      return { result: undefined, ms: performance.now() - start, error: (error as Error).message };
    }
  };
  // Warm-up, not counted: a whole pass for local backends (JIT), a few texts for remote ones (connection).
  for (const item of backend.repeat > 1 ? corpus : corpus.slice(0, 4)) await once(item);
  const latenciesMs: number[] = [];
  let outcomes: Outcome[] = [];
  let errors = 0;
  let firstError: string | undefined;
  for (let pass = 0; pass < backend.repeat; pass++) {
    const passOutcomes: Outcome[] = [];
    for (const item of corpus) {
      const r = await once(item);
      latenciesMs.push(r.ms);
      if (r.error !== undefined) {
        if (pass === 0) errors++;
        firstError ??= r.error;
      }
      passOutcomes.push({ item, result: r.result });
    }
    if (pass === 0) outcomes = passOutcomes;
  }
  return { outcomes, latenciesMs, errors, firstError };
}

interface Rates {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

function count(pairs: readonly { positive: boolean; flagged: boolean }[]): Rates {
  const r = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (const { positive, flagged } of pairs) {
    if (positive && flagged) r.tp++;
    else if (flagged) r.fp++;
    else if (positive) r.fn++;
    else r.tn++;
  }
  return r;
}

const ratio = (a: number, b: number): number | undefined => (b === 0 ? undefined : a / b);
const precision = (r: Rates) => ratio(r.tp, r.tp + r.fp);
const recall = (r: Rates) => ratio(r.tp, r.tp + r.fn);
const fpr = (r: Rates) => ratio(r.fp, r.fp + r.tn);

/** Whether the policy would block this text: a category at the threshold, or a jailbreak on a prompt. */
function wouldFilter(result: Classification | undefined, role: TextRole, threshold: Threshold): boolean {
  if (result === undefined) return false;
  return HARM_CATEGORIES.some((c) => reaches(result.severities[c] ?? 0, threshold)) || (role === "prompt" && result.jailbreak === true);
}

function isPositive(item: CorpusItem, threshold: Threshold): boolean {
  return HARM_CATEGORIES.some((c) => reaches(item.labels[c], threshold)) || item.jailbreak;
}

interface Report {
  backend: string;
  threshold: Threshold;
  texts: number;
  errors: number;
  firstError?: string | undefined;
  categories: Record<HarmCategory | "filtered", (Rates & { precision?: number | undefined; recall?: number | undefined; fpr?: number | undefined }) | "not assessed">;
  jailbreak: (Rates & { precision?: number | undefined; recall?: number | undefined; fpr?: number | undefined }) | "not assessed";
  filteredRate: Record<Kind, { filtered: number; of: number }>;
  profanity: Record<Kind, { hits: number; of: number }> | "not assessed";
  latencyMs: { mean: number; p50: number; p95: number; max: number; samples: number };
  /** Texts flagged (policy view) among the positives labelled medium (4–5) and high (6–7) in some category. */
  recallByLabel: { medium: { flagged: number; of: number }; high: { flagged: number; of: number } };
  /** Ids of the texts with profanity found, by kind. */
  profanityIds: Record<Kind, string[]>;
  missed: string[];
  falseAlarms: string[];
  /** Positives caught only at a lower severity than labelled (flagged, but below the label's bucket). */
  underRated: string[];
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function withRates(r: Rates) {
  return { ...r, precision: precision(r), recall: recall(r), fpr: fpr(r) };
}

/** Of the texts whose highest label satisfies `bucket`, how many the policy would block. */
function recallAt(outcomes: readonly Outcome[], threshold: Threshold, bucket: (maxLabel: number) => boolean) {
  const os = outcomes.filter((o) => bucket(Math.max(...HARM_CATEGORIES.map((c) => o.item.labels[c]))));
  return { flagged: os.filter((o) => wouldFilter(o.result, o.item.role, threshold)).length, of: os.length };
}

function measure(label: string, run: Run, threshold: Threshold): Report {
  const answered = run.outcomes.filter((o) => o.result !== undefined);
  const categories = {} as Report["categories"];
  for (const c of HARM_CATEGORIES) {
    const assessed = answered.some((o) => o.result?.severities[c] !== undefined);
    categories[c] = assessed
      ? withRates(count(run.outcomes.map((o) => ({ positive: reaches(o.item.labels[c], threshold), flagged: reaches(o.result?.severities[c] ?? 0, threshold) }))))
      : "not assessed";
  }
  categories.filtered = withRates(count(run.outcomes.map((o) => ({ positive: isPositive(o.item, threshold), flagged: wouldFilter(o.result, o.item.role, threshold) }))));
  const prompts = run.outcomes.filter((o) => o.item.role === "prompt");
  const jailbreakAssessed = answered.some((o) => o.item.role === "prompt" && o.result?.jailbreak !== undefined);
  const jailbreak = jailbreakAssessed ? withRates(count(prompts.map((o) => ({ positive: o.item.jailbreak, flagged: o.result?.jailbreak === true })))) : "not assessed";
  const byKind = <T>(f: (outcomes: Outcome[]) => T) => Object.fromEntries(KINDS.map((k) => [k, f(run.outcomes.filter((o) => o.item.kind === k))])) as Record<Kind, T>;
  const filteredRate = byKind((os) => ({ filtered: os.filter((o) => wouldFilter(o.result, o.item.role, threshold)).length, of: os.length }));
  const profanityAssessed = answered.some((o) => o.result?.profanity !== undefined);
  const profanity = profanityAssessed ? byKind((os) => ({ hits: os.filter((o) => o.result?.profanity === true).length, of: os.length })) : "not assessed";
  const sorted = [...run.latenciesMs].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  const missed: string[] = [];
  const falseAlarms: string[] = [];
  const underRated: string[] = [];
  for (const o of run.outcomes) {
    const positive = isPositive(o.item, threshold);
    const flagged = wouldFilter(o.result, o.item.role, threshold);
    if (positive && !flagged) missed.push(o.item.id);
    if (!positive && flagged) falseAlarms.push(o.item.id);
  }
  for (const o of answered) {
    for (const c of HARM_CATEGORIES) {
      const s = o.result?.severities[c];
      if (s !== undefined && reaches(o.item.labels[c], "high") && reaches(s, threshold) && !reaches(s, "high")) underRated.push(`${o.item.id}:${c}`);
    }
  }
  return {
    backend: label,
    threshold,
    texts: run.outcomes.length,
    errors: run.errors,
    firstError: run.firstError,
    categories,
    jailbreak,
    filteredRate,
    profanity,
    latencyMs: { mean, p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) ?? NaN, samples: sorted.length },
    recallByLabel: {
      medium: recallAt(run.outcomes, threshold, (m) => m >= 4 && m <= 5),
      high: recallAt(run.outcomes, threshold, (m) => m >= 6),
    },
    profanityIds: byKind((os) => os.filter((o) => o.result?.profanity === true).map((o) => o.item.id)),
    missed,
    falseAlarms,
    underRated,
  };
}

// ---------------------------------------------------------------------------------------------------
// Printing

const pct = (x: number | undefined) => (x === undefined ? "n/a" : `${(100 * x).toFixed(0)}%`);
const frac = (a: number, b: number) => `${a}/${b} (${pct(ratio(a, b))})`;

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ")).join("\n");
}

function print(report: Report, corpus: readonly CorpusItem[]): void {
  const lines: string[] = [];
  lines.push(`== ${report.backend} — threshold ${report.threshold}, ${report.texts} texts${report.errors > 0 ? `, ${report.errors} failed (${report.firstError})` : ""}`);
  const rows: string[][] = [["", "positives", "precision", "recall", "FPR", "TP", "FP", "FN"]];
  for (const key of [...HARM_CATEGORIES, "filtered" as const]) {
    const r = report.categories[key];
    rows.push(r === "not assessed" ? [key, "", "not assessed", "", "", "", "", ""] : [key, String(r.tp + r.fn), pct(r.precision), pct(r.recall), pct(r.fpr), String(r.tp), String(r.fp), String(r.fn)]);
  }
  const j = report.jailbreak;
  rows.push(j === "not assessed" ? ["jailbreak (prompts)", "", "not assessed", "", "", "", "", ""] : ["jailbreak (prompts)", String(j.tp + j.fn), pct(j.precision), pct(j.recall), pct(j.fpr), String(j.tp), String(j.fp), String(j.fn)]);
  lines.push(table(rows));
  const f = report.filteredRate;
  lines.push(`filtered: harmful ${frac(f.harmful.filtered, f.harmful.of)}, benign look-alikes ${frac(f["benign-lookalike"].filtered, f["benign-lookalike"].of)} (their FPR), benign ${frac(f.benign.filtered, f.benign.of)}`);
  const p = report.profanity;
  lines.push(p === "not assessed" ? "profanity: not assessed" : `profanity hits: harmful ${frac(p.harmful.hits, p.harmful.of)}, benign look-alikes ${frac(p["benign-lookalike"].hits, p["benign-lookalike"].of)}, benign ${frac(p.benign.hits, p.benign.of)}`);
  const rb = report.recallByLabel;
  lines.push(`filtered by labelled severity (highest category): medium 4–5 ${frac(rb.medium.flagged, rb.medium.of)}, high 6–7 ${frac(rb.high.flagged, rb.high.of)}`);
  if (p !== "not assessed") lines.push(`profanity found in: ${KINDS.map((k) => `${k} [${report.profanityIds[k].join(", ")}]`).join("; ")}`);
  const l = report.latencyMs;
  lines.push(`latency per classification: mean ${l.mean.toFixed(3)} ms, p50 ${l.p50.toFixed(3)}, p95 ${l.p95.toFixed(3)}, max ${l.max.toFixed(1)} (${l.samples} calls)`);
  const note = (id: string) => corpus.find((i) => i.id === id)?.note ?? "";
  const list = (ids: readonly string[]) => (ids.length === 0 ? " none" : ids.map((id) => `\n    ${id}  ${note(id)}`).join(""));
  if (report.categories.filtered !== "not assessed" && (report.categories.filtered.tp > 0 || report.categories.filtered.fp > 0)) {
    lines.push(`missed (${report.missed.length}):${list(report.missed)}`);
    lines.push(`false alarms (${report.falseAlarms.length}):${list(report.falseAlarms)}`);
    if (report.underRated.length > 0) lines.push(`caught below the labelled "high": ${report.underRated.join(", ")}`);
  }
  console.log(`${lines.join("\n")}\n`);
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      backend: { type: "string", multiple: true },
      threshold: { type: "string", default: "medium" },
      repeat: { type: "string", default: "3" },
      corpus: { type: "string", default: fileURLToPath(new URL("safety-corpus.jsonl", import.meta.url)) },
      "timeout-ms": { type: "string", default: "30000" },
      "judge-model": { type: "string" },
      "onnx-labels": { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const threshold = args.threshold as Threshold;
  if (!["low", "medium", "high"].includes(threshold)) throw new Error("--threshold must be low, medium or high");
  const repeat = Number(args.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error("--repeat must be a positive integer");
  const timeoutMs = Number(args["timeout-ms"]);
  if (!(timeoutMs > 0)) throw new Error("--timeout-ms must be positive");
  const specs = args.backend ?? ["lexicon", "blocklist"];
  specs.forEach(parseBackendSpec);
  const corpus = loadCorpus(args.corpus);
  const options: Options = { repeat, timeoutMs, judgeModel: args["judge-model"], onnxLabels: args["onnx-labels"] };

  const kinds = Object.fromEntries(KINDS.map((k) => [k, corpus.filter((i) => i.kind === k).length]));
  if (!args.json) {
    console.log(`corpus: ${corpus.length} texts (${KINDS.map((k) => `${kinds[k]} ${k}`).join(", ")}; ${corpus.filter((i) => i.role === "prompt").length} prompts), threshold ${threshold}`);
    console.log(`positives at ${threshold}: ${HARM_CATEGORIES.map((c) => `${c} ${corpus.filter((i) => reaches(i.labels[c], threshold)).length}`).join(", ")}, jailbreak ${corpus.filter((i) => i.jailbreak).length}\n`);
  }
  const reports: Report[] = [];
  for (const spec of specs) {
    const backend = await createBackend(spec, options);
    try {
      const report = measure(backend.label, await classifyAll(backend, corpus, timeoutMs), threshold);
      reports.push(report);
      if (!args.json) print(report, corpus);
    } finally {
      await backend.classifier.close?.();
    }
  }
  if (args.json) console.log(JSON.stringify({ corpus: { texts: corpus.length, ...kinds }, reports }, null, 2));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(`bench/safety: ${(error as Error).message}`);
    process.exitCode = 1;
  });
}
