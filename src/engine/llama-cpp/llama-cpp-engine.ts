/**
 * GGUF text models through node-llama-cpp (the only importer of it). One model, one context
 * with `parallel` sequences that llama.cpp evaluates together in shared batches.
 */
import { availableParallelism } from "node:os";
import { statSync } from "node:fs";
import { getLlama, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import type { Logger } from "pino";
import type { Engine, EngineEvent, EngineModelInfo, GenerationRequest } from "../engine.ts";
import { AppError } from "../../errors/app-error.ts";
import { SequencePool } from "./sequence-pool.ts";

export type GpuChoice = "auto" | "cpu" | "cuda" | "vulkan" | "metal";

export interface LlamaCppEngineOptions {
  modelPath: string;
  /** Context window per sequence, in tokens. */
  contextSize: number;
  /** Sequences generating at once. */
  parallel: number;
  /** CPU threads for evaluation; default chosen by model size (see `defaultThreads`). */
  threads?: number | undefined;
  gpu: GpuChoice;
  /** Token texts that end a generation besides the model's own end-of-generation tokens (e.g. "<|assistant|>"). */
  extraStopTokens: readonly string[];
}

/**
 * Measured on 2-core machines (shared/spec/engine-notes.md): tiny models run ~150x faster on one
 * thread than on two (the ggml thread pool spins against Node's thread); models of real size
 * need every core.
 */
export function defaultThreads(modelBytes: number): number {
  return modelBytes < 256 * 1024 * 1024 ? 1 : Math.max(1, availableParallelism());
}

/** What a token piece ends with when it stops inside a multi-byte character: held back until complete. */
const REPLACEMENT_CHAR = "\uFFFD";

export class LlamaCppEngine implements Engine {
  private llama: Llama | undefined;
  private model: LlamaModel | undefined;
  private context: LlamaContext | undefined;
  private pool: SequencePool<LlamaContextSequence> | undefined;
  private stopTokenIds = new Set<Token>();
  private info: EngineModelInfo | undefined;

  constructor(
    private readonly options: LlamaCppEngineOptions,
    private readonly logger: Logger,
  ) {}

  async load(): Promise<void> {
    const { options, logger } = this;
    const gpu = options.gpu === "cpu" ? false : options.gpu;
    this.llama = await getLlama({
      gpu,
      build: "never",
      logger: (level, message) => {
        const text = message.trim();
        if (!text) return;
        if (level === "error" || level === "fatal") logger.error({ event: "llama.log" }, text);
        else if (level === "warn") logger.warn({ event: "llama.log" }, text);
        else logger.debug({ event: "llama.log" }, text);
      },
    });
    this.model = await this.llama.loadModel({ modelPath: options.modelPath });
    const threads = options.threads ?? defaultThreads(statSync(options.modelPath).size);
    this.context = await this.model.createContext({ contextSize: options.contextSize, sequences: options.parallel, threads });
    const sequences = Array.from({ length: options.parallel }, () => this.context!.getSequence());
    this.pool = new SequencePool(sequences);
    this.stopTokenIds = new Set(options.extraStopTokens.flatMap((text) => this.singleTokenId(text)));
    this.info = this.readModelInfo(this.model, this.context.contextSize);
    logger.info({ event: "engine.loaded", gpu: this.llama.gpu, threads, contextSize: this.info.contextLength, parallel: options.parallel }, "model loaded");
  }

  isReady(): boolean {
    return this.pool !== undefined;
  }

  modelInfo(): EngineModelInfo {
    if (!this.info) throw new AppError("ENGINE_UNAVAILABLE", "The model is not loaded.");
    return this.info;
  }

  countTokens(prompt: string): number {
    return this.requireModel().tokenize(prompt, true).length;
  }

  async *generate(request: GenerationRequest, signal: AbortSignal): AsyncGenerator<EngineEvent> {
    const model = this.requireModel();
    const pool = this.pool;
    if (!pool) throw new AppError("ENGINE_UNAVAILABLE", "The model is not loaded.");
    const sequence = await pool.acquire(signal);
    try {
      await sequence.clearHistory();
      const promptTokens = model.tokenize(request.prompt, true);
      const generated: Token[] = [];
      let pending: Token[] = [];
      const evaluation = sequence.evaluate(promptTokens, {
        temperature: request.temperature,
        topP: request.topP,
        ...(request.seed === undefined ? {} : { seed: request.seed }),
        repeatPenalty: {
          punishTokens: () => generated,
          maxPunishTokens: Math.max(64, Math.min(request.maxTokens, 4096)),
          penalty: 1,
          frequencyPenalty: request.frequencyPenalty,
          presencePenalty: request.presencePenalty,
        },
      });
      for await (const token of evaluation) {
        if (signal.aborted) return;
        if (this.stopTokenIds.has(token)) break;
        generated.push(token);
        pending.push(token);
        // Detokenize with the tokens just before as context, so SPM leading spaces come out right.
        const before = generated.length - pending.length;
        const lastTokens = before > 0 ? generated.slice(Math.max(0, before - 8), before) : promptTokens.slice(-8);
        let text = model.detokenize(pending, false, lastTokens);
        if (text.endsWith(REPLACEMENT_CHAR) && generated.length < request.maxTokens) text = "";
        else pending = [];
        yield { type: "token", text, tokenCount: 1 };
        if (generated.length >= request.maxTokens) {
          yield { type: "done", finishReason: "length" };
          return;
        }
      }
      if (!signal.aborted) yield { type: "done", finishReason: "stop" };
    } finally {
      pool.release(sequence);
    }
  }

  async close(): Promise<void> {
    await this.context?.dispose();
    await this.model?.dispose();
    await this.llama?.dispose();
    this.pool = undefined;
  }

  private requireModel(): LlamaModel {
    if (!this.model || !this.pool) throw new AppError("ENGINE_UNAVAILABLE", "The model is not loaded.");
    return this.model;
  }

  private singleTokenId(text: string): Token[] {
    const tokens = this.model!.tokenize(text, true);
    return tokens.length === 1 ? tokens : [];
  }

  private readModelInfo(model: LlamaModel, contextLength: number): EngineModelInfo {
    const metadata = model.fileInfo.metadata as { general?: { name?: string }; tokenizer?: { chat_template?: string } };
    const special = (token: Token | null): string => (token === null ? "" : model.detokenize([token], true));
    return {
      contextLength,
      ...(metadata.tokenizer?.chat_template ? { chatTemplate: metadata.tokenizer.chat_template } : {}),
      ...(metadata.general?.name ? { fileModelName: metadata.general.name } : {}),
      bosToken: special(model.tokens.bos),
      eosToken: special(model.tokens.eos),
    };
  }
}
