/**
 * The fast decoding path, `sequence.evaluate()`: native sampling, grammar-constrained when asked.
 * It runs in up to two phases: free (or constrained) generation, then, when the `constrainAfter`
 * token appears, a constrained continuation on the same sequence. Constrained JSON ends as soon
 * as the value closes (`JsonCloseDetector`).
 */
import { LlamaGrammarEvaluationState, type LlamaContextSequence, type LlamaGrammar, type Token } from "node-llama-cpp";
import type { EngineEvent, OutputConstraint } from "../engine.ts";
import { repeatPenalty, type DecodeTools, type Run } from "./decode-steps.ts";
import { singleToken } from "./token-text.ts";
import { NO_TOP_K } from "./node-llama-cpp-internals.ts";

/** Compiles (or returns the cached) grammar of a constraint. */
export type GrammarSource = (constraint: OutputConstraint) => Promise<LlamaGrammar>;

export async function* generateFast(
  tools: DecodeTools,
  sequence: LlamaContextSequence,
  run: Run,
  grammar: LlamaGrammar | undefined,
  grammarFor: GrammarSource,
): AsyncGenerator<EngineEvent> {
  const { request, decoder } = run;
  const trigger = request.constrainAfter ? singleToken(tools.model, request.constrainAfter.token) : undefined;
  let input: Token[] = run.inputTokens;
  let active = grammar;
  let json = grammar ? new JsonCloseDetector() : undefined;
  for (;;) {
    let switchTo: Token | undefined;
    const evaluation = sequence.evaluate(input, {
      temperature: request.temperature,
      topP: request.topP,
      topK: NO_TOP_K, // OpenAI's API has no top-k: the whole vocabulary, without the sort a top-k of it costs
      minP: 0,
      seed: run.seed,
      // node-llama-cpp's option types say absent, not undefined (exactOptionalPropertyTypes).
      ...(run.tokenBias ? { tokenBias: run.tokenBias } : {}),
      ...repeatPenalty(request, decoder),
      ...(active ? { grammarEvaluationState: new LlamaGrammarEvaluationState({ model: tools.model, grammar: active }) } : {}),
    });
    // What ends this phase after a token (asked before it is pushed: the tokens before it are in the decoder).
    const switches = (token: Token) => !active && trigger !== undefined && token === trigger;
    const reachesLimit = () => decoder.tokens.length + 1 >= request.maxTokens;
    // No step is asked for beyond a token that ends this phase.
    const isFinal = (token: Token) => tools.stopTokenIds.has(token) || switches(token) || reachesLimit();
    for await (const token of tools.steps.tokens(evaluation, run.sequenceId, isFinal)) {
      if (run.signal.aborted) return;
      if (tools.stopTokenIds.has(token)) break;
      if (switches(token)) {
        switchTo = token;
        break;
      }
      const isLast = reachesLimit();
      const text = decoder.push(token, isLast);
      yield { type: "token", text, tokenCount: 1 };
      if (json?.push(text)) break; // the constrained JSON closed: done, whatever padding the grammar allows
      if (isLast) {
        yield { type: "done", finishReason: "length" };
        return;
      }
    }
    if (switchTo === undefined || !request.constrainAfter) break;
    // The trigger token counts as generated; it is evaluated as the first input of the constrained phase.
    decoder.skip(switchTo);
    yield { type: "constrained", tokenCount: 1 };
    if (decoder.tokens.length >= request.maxTokens) {
      yield { type: "done", finishReason: "length" };
      return;
    }
    active = await grammarFor(request.constrainAfter.constraint);
    json = new JsonCloseDetector();
    input = [switchTo];
  }
  if (!run.signal.aborted) yield { type: "done", finishReason: "stop" };
}

/**
 * Ends constrained JSON generation as soon as the top-level object or array closes, instead of
 * waiting for the model to choose an end token (the grammar allows padding after it).
 */
export class JsonCloseDetector {
  private text = "";

  /** Adds generated text; true once it is a complete JSON object or array. */
  push(piece: string): boolean {
    this.text += piece;
    const trimmed = this.text.trimEnd();
    if (!trimmed.endsWith("}") && !trimmed.endsWith("]")) return false;
    try {
      JSON.parse(trimmed);
      return true;
    } catch {
      return false;
    }
  }
}
