/**
 * What the ONNX classifier's thread does (onnx-classifier-worker.ts wires it to messages; tests use
 * it in process): tokenize a text with the folder's tokenizer, cut it into windows of at most
 * `maxTokens` tokens (special tokens included), and run the windows through the session, giving
 * each window's logits (docs/SAFETY.md "ONNX classifier").
 *
 * Windows: the text's ids without special tokens are cut into bodies of `maxTokens` minus the
 * special tokens the tokenizer's post-processor puts around one text (BERT's `[CLS] … [SEP]`,
 * Phi-3's `<s> …`); consecutive bodies overlap by an eighth of a body, so a phrase of up to that
 * many tokens at a cut is seen whole in one window. The full windows are run in batches of
 * {@link BATCH_WINDOWS}, the shorter last one on its own (no padding, so the logits are what the
 * window alone gives).
 */
import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";
import { float16ToFloat32 } from "../lib/float16.ts";

/** Cloneable into the thread: what loading needs. */
export interface OnnxClassifierSpec {
  modelFile: string;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** Scores the model must give per window (config.json's `id2label`). */
  labelCount: number;
  maxTokens: number;
  /** ONNX Runtime intra-op threads. */
  threads: number;
}

/** Full windows run together, at most this many a run. */
export const BATCH_WINDOWS = 8;

/** A text's logits: `windows` rows of `labelCount` scores. */
export interface WindowLogits {
  logits: Float32Array;
  windows: number;
}

/** The special tokens the tokenizer puts before and after one text. */
export interface SpecialTokens {
  prefix: number[];
  suffix: number[];
}

/**
 * Finds them by encoding a probe text with and without special tokens: the plain ids sit inside
 * the full ones, and what is around them is the post-processor's.
 */
export function specialTokensOf(tokenizer: Tokenizer): SpecialTokens {
  for (const probe of ["a", "hello", "0"]) {
    const plain: number[] = tokenizer.encode(probe, { add_special_tokens: false }).ids;
    const full: number[] = tokenizer.encode(probe, { add_special_tokens: true }).ids;
    if (plain.length === 0) continue;
    for (let at = 0; at + plain.length <= full.length; at++) {
      if (plain.every((id, i) => full[at + i] === id)) return { prefix: full.slice(0, at), suffix: full.slice(at + plain.length) };
    }
  }
  throw new Error("cannot tell the tokenizer's special tokens apart from a text's tokens");
}

/** The windows of a text's ids (see the module comment); an empty text gives one window of special tokens alone. */
export function tokenWindows(ids: ArrayLike<number>, special: SpecialTokens, maxTokens: number): number[][] {
  const body = maxTokens - special.prefix.length - special.suffix.length;
  if (body < 1) throw new Error(`maxTokens ${maxTokens} leaves no room for text besides the ${maxTokens - body} special tokens`);
  const stride = body - Math.floor(body / 8);
  const windows: number[][] = [];
  for (let start = 0; ; start += stride) {
    const end = Math.min(ids.length, start + body);
    windows.push([...special.prefix, ...Array.prototype.slice.call(ids, start, end), ...special.suffix]);
    if (end >= ids.length) return windows;
  }
}

type IdType = "int64" | "int32";

export class OnnxClassifierRunner {
  private constructor(
    private readonly spec: OnnxClassifierSpec,
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: Tokenizer,
    private readonly special: SpecialTokens,
    private readonly idType: IdType,
    private readonly withTokenTypes: boolean,
    private readonly output: string,
  ) {}

  static async load(spec: OnnxClassifierSpec): Promise<OnnxClassifierRunner> {
    const tokenizer = new Tokenizer(spec.tokenizerJson, spec.tokenizerConfig);
    const special = specialTokensOf(tokenizer);
    tokenWindows([], special, spec.maxTokens); // maxTokens leaves room for text
    const session = await ort.InferenceSession.create(spec.modelFile, {
      intraOpNumThreads: spec.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      executionProviders: ["cpu"],
      // Idle intra-op threads would otherwise spin after each run, taking cores from the engine.
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    });
    try {
      const inputs = new Map(session.inputMetadata.map((m) => [m.name, m]));
      for (const name of inputs.keys()) {
        if (!["input_ids", "attention_mask", "token_type_ids"].includes(name)) throw new Error(`the model has an input ${name}; a text classifier takes input_ids, attention_mask and token_type_ids only`);
      }
      const ids = inputs.get("input_ids");
      if (!ids?.isTensor || !inputs.has("attention_mask")) throw new Error(`the model's inputs are ${session.inputNames.join(", ")}; a text classifier takes input_ids and attention_mask`);
      if (ids.type !== "int64" && ids.type !== "int32") throw new Error(`the model's input_ids are ${ids.type}; int64 or int32 expected`);
      for (const m of inputs.values()) if (m.isTensor && m.type !== ids.type) throw new Error(`the model's ${m.name} is ${m.type} but input_ids is ${ids.type}`);
      const output = session.outputNames.includes("logits") ? "logits" : session.outputNames.length === 1 ? session.outputNames[0]! : undefined;
      if (output === undefined) throw new Error(`the model has no logits output (it has ${session.outputNames.join(", ")})`);
      return new OnnxClassifierRunner(spec, session, tokenizer, special, ids.type, inputs.has("token_type_ids"), output);
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /** The text's windows of token ids (special tokens included). */
  windows(text: string): number[][] {
    return tokenWindows(this.tokenizer.encode(text, { add_special_tokens: false }).ids, this.special, this.spec.maxTokens);
  }

  /** Each window's logits; `isCancelled` is asked before every run, and true ends it with undefined. */
  async logits(text: string, isCancelled: () => boolean = () => false): Promise<WindowLogits | undefined> {
    const windows = this.windows(text);
    const labels = this.spec.labelCount;
    const logits = new Float32Array(windows.length * labels);
    for (let from = 0; from < windows.length; ) {
      let to = from + 1;
      while (to < windows.length && to - from < BATCH_WINDOWS && windows[to]!.length === windows[from]!.length) to++;
      if (isCancelled()) return undefined;
      logits.set(await this.run(windows.slice(from, to)), from * labels);
      from = to;
    }
    return { logits, windows: windows.length };
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** One run over windows of equal length: rows of `labelCount` logits. */
  private async run(windows: number[][]): Promise<Float32Array> {
    const batch = windows.length;
    const length = windows[0]!.length;
    const tensor = (fill: (i: number) => number) => {
      if (this.idType === "int64") return new ort.Tensor("int64", BigInt64Array.from({ length: batch * length }, (_, i) => BigInt(fill(i))), [batch, length]);
      return new ort.Tensor("int32", Int32Array.from({ length: batch * length }, (_, i) => fill(i)), [batch, length]);
    };
    const feeds: Record<string, ort.Tensor> = {
      input_ids: tensor((i) => windows[Math.floor(i / length)]![i % length]!),
      attention_mask: tensor(() => 1),
    };
    if (this.withTokenTypes) feeds.token_type_ids = tensor(() => 0);
    const result = await this.session.run(feeds);
    const out = result[this.output]!;
    const labels = this.spec.labelCount;
    if (out.type !== "float32" && out.type !== "float16") throw new Error(`the model's ${this.output} are ${out.type}; float32 or float16 expected`);
    if (out.dims.length !== 2 || out.dims[0] !== batch || out.dims[1] !== labels) {
      throw new Error(`the model's ${this.output} have shape [${out.dims.join(", ")}]; [${batch}, ${labels}] expected (config.json's id2label names ${labels} labels)`);
    }
    if (out.type === "float32") return out.data as Float32Array;
    const data = new Float32Array(batch * labels);
    float16ToFloat32(new Uint16Array((out.data as Uint16Array).buffer, (out.data as Uint16Array).byteOffset, batch * labels), data);
    return data;
  }
}
