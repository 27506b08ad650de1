/**
 * What the two decoding paths (fast-decode.ts, logprob-decode.ts) share: the run they carry out,
 * the engine facilities they use, the OpenAI penalties both apply the same way, and how they take
 * their evaluation steps (`DecodeSteps`).
 *
 * A generation's first step evaluates the input (the prompt); after it the sequence is decoding
 * and takes part in the decode gate (decode-gate.ts), which steps decoding sequences in groups so
 * llama.cpp evaluates them in one pass. Every step is also held while a KV-cache edit is pending
 * (kv-maintenance.ts).
 */
import type { LlamaContextSequenceRepeatPenalty, LlamaModel, Token, TokenBias } from "node-llama-cpp";
import type { GenerationRequest } from "../engine.ts";
import type { CancelSignal } from "../../lib/cancellation.ts";
import type { DecodeGate, DecodeSlot } from "./decode-gate.ts";
import type { KvMaintenance } from "./kv-maintenance.ts";
import type { TokenDescriber, TokenTextDecoder } from "./token-text.ts";

/** Everything one generation needs besides the sequence. */
export interface Run {
  request: GenerationRequest;
  signal: CancelSignal;
  promptTokens: Token[];
  /** The part of the prompt the sequence does not hold yet: what is evaluated. */
  inputTokens: Token[];
  seed: number;
  /** The sequence's id in the context (the batch strategy's, the decode gate's). */
  sequenceId: number;
  tokenBias: TokenBias | undefined;
  decoder: TokenTextDecoder;
}

/** What the decoding paths use of the loaded engine. */
export interface DecodeTools {
  model: LlamaModel;
  /** Token ids that end a generation besides the model's own end-of-generation tokens. */
  stopTokenIds: ReadonlySet<Token>;
  describer: TokenDescriber;
  steps: DecodeSteps;
}

/**
 * OpenAI penalties over the generated tokens (not the prompt), as llama.cpp's penalties sampler applies them;
 * none when both are 0, so no step copies the generated tokens into a penalty list that changes nothing.
 */
export function repeatPenalty(request: GenerationRequest, decoder: TokenTextDecoder): { repeatPenalty: LlamaContextSequenceRepeatPenalty } | Record<string, never> {
  if (request.presencePenalty === 0 && request.frequencyPenalty === 0) return {};
  return { repeatPenalty: {
    punishTokens: () => decoder.tokens as Token[],
    maxPunishTokens: Math.max(64, Math.min(request.maxTokens, 4096)),
    penalty: 1,
    frequencyPenalty: request.frequencyPenalty,
    presencePenalty: request.presencePenalty,
  } };
}

/** Steps a generation through the decode gate and around KV-cache edits. */
export class DecodeSteps {
  /**
   * @param joined hears of each sequence that joins the gate (its first token came back).
   * @param ended hears of each sequence whose generation takes no more steps.
   */
  constructor(
    private readonly gate: DecodeGate,
    private readonly maintenance: KvMaintenance,
    private readonly joined: (sequenceId: number) => void = () => undefined,
    private readonly ended: (sequenceId: number) => void = () => undefined,
  ) {}

  /** The sequence is decoding now (its first step came back): it joins the decode gate. */
  join(sequenceId: number): DecodeSlot {
    this.joined(sequenceId);
    return this.gate.join();
  }

  /** The generation takes no more steps: it leaves the gate (when it had joined). */
  end(slot: DecodeSlot | undefined, sequenceId: number): void {
    slot?.leave();
    this.ended(sequenceId);
  }

  /**
   * Iterates a `sequence.evaluate()` evaluation step by step (the fast path): joins the gate after
   * the first step, leaves it and ends the evaluation however the iteration stops.
   *
   * It runs one step ahead of its consumer: as soon as a token comes back, the step that samples the
   * next one is asked for, before the token is handed on, so the native decode of token n + 1 runs
   * while the token n is turned into text, matched against stops and written to the client (as
   * llama-server's decode loop does not wait for its HTTP threads; docs/ENGINE-NOTES.md "Decoding one
   * token ahead"). `isFinal(token)` says when the consumer will stop after this token whatever comes
   * next (a length limit, a stop token): then no step is asked for beyond it.
   */
  async *tokens(evaluation: AsyncGenerator<Token, void, void | Token | Token[]>, sequenceId: number, isFinal: (token: Token) => boolean = () => false): AsyncGenerator<Token> {
    let slot: DecodeSlot | undefined;
    let ahead: Promise<IteratorResult<Token, void>> | undefined;
    try {
      ahead = this.step(slot, () => evaluation.next());
      for (;;) {
        // Not asked for ahead only after a final token, which the consumer does not go past.
        const step = await (ahead ?? this.step(slot, () => evaluation.next()));
        ahead = undefined;
        if (step.done) return;
        slot ??= this.join(sequenceId);
        if (!isFinal(step.value)) {
          ahead = this.step(slot, () => evaluation.next());
          // Awaited in `finally` when the consumer stops first; never an unhandled rejection meanwhile.
          ahead.catch(() => undefined);
        }
        yield step.value;
      }
    } finally {
      // A step already asked for runs to its end before the evaluation is ended (the library's generator cannot be
      // returned mid-step); its token is discarded.
      if (ahead) await ahead.catch(() => undefined);
      this.end(slot, sequenceId);
      await evaluation.return();
    }
  }

  /**
   * One evaluation step: waits for the decode gate when the sequence is decoding (`slot`), then
   * while a KV-cache edit is pending, then runs it. Neither wait costs an await when there is
   * nothing to wait for (the gate's grouping depends on when steps reach the library's queue).
   */
  async step<T>(slot: DecodeSlot | undefined, run: () => Promise<T>): Promise<T> {
    const gated = slot?.ready();
    if (gated) await gated;
    try {
      if (this.maintenance.isPending) await this.maintenance.idle();
      return await run();
    } finally {
      slot?.returned();
    }
  }
}
