/**
 * What the engine reads from a loaded model: the facts it reports above the engine boundary
 * (`EngineModelInfo`) and what its decoding paths need (stop token ids, the vocabulary for logprobs).
 */
import type { LlamaModel, Token } from "node-llama-cpp";
import type { EngineModelInfo } from "../engine.ts";
import { TokenDescriber } from "./token-text.ts";

export interface LoadedModelFacts {
  info: EngineModelInfo;
  /** Ids of the extra stop token texts that are exactly one token. */
  stopTokenIds: Set<Token>;
  describer: TokenDescriber;
}

export function readModelFacts(model: LlamaModel, contextLength: number, extraStopTokens: readonly string[]): LoadedModelFacts {
  const metadata = model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { model?: string; tokens?: string[] } } };
  const vocab = metadata.tokenizer?.ggml?.tokens ?? [];
  const special = (token: Token | null): string => (token === null ? "" : model.detokenize([token], true));
  const info: EngineModelInfo = {
    contextLength,
    bosToken: special(model.tokens.bos),
    eosToken: special(model.tokens.eos),
    addBosToken: addsBosToken(model),
    vocabSize: vocab.length,
  };
  const stopTokenIds = new Set(extraStopTokens.flatMap((text) => {
    const tokens = model.tokenize(text, true);
    return tokens.length === 1 ? tokens : [];
  }));
  return { info, stopTokenIds, describer: new TokenDescriber(vocab, metadata.tokenizer?.ggml?.model ?? "llama") };
}

/**
 * Whether llama.cpp prepends BOS to this model's prompts: `tokenizer.ggml.add_bos_token`, or
 * llama.cpp's default when the GGUF lacks the key (docs/ENGINE-NOTES.md "Tokenization and BOS").
 * `shouldPrependBosToken` is llama.cpp's own answer (the addon returns `llama_vocab_get_add_bos`,
 * llama/addon/AddonModel.cpp), so the defaulting is the loaded llama.cpp's, not a copy of it:
 * llama-vocab.cpp (release v0.5.0, bundled with node-llama-cpp 3.22.1) starts from true for SPM
 * ("llama") and WPM vocabularies and, for BPE ("gpt2"), from false except a few pre-tokenizers
 * (llama3, tekken, chameleon, …); the key, when present, decides. node-llama-cpp also answers
 * false when the model has no BOS token at all.
 *
 * The engine never adds BOS itself: `model.tokenize(text, true)` ends in the addon's Tokenize,
 * which calls `common_tokenize(vocab, text, add_special = false, parse_special)` (AddonModel.cpp),
 * so no BOS or EOS is added whatever the flag (test/integration/llama-cpp-model-info.test.ts
 * checks it). The prompt is evaluated exactly as rendered: the renderer prepends BOS when this is
 * true and the template has not rendered one.
 */
function addsBosToken(model: LlamaModel): boolean {
  return model.tokens.shouldPrependBosToken;
}
