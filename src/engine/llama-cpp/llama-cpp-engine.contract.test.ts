/** The engine contract on the llama.cpp engine, built by its factory over the seeded Phi-3 test model. */
import { runEngineContract } from "../engine.contract.ts";
import { ensureTestModel } from "../../model-factory/test-models.ts";
import { createLlamaCppEngineFactory } from "./llama-cpp-engine-factory.ts";

runEngineContract({
  name: "llama.cpp",
  factory: async () => createLlamaCppEngineFactory(),
  modelPath: () => ensureTestModel(),
  prompt: "<|user|>\nHow many languages are in the world?<|end|>\n<|assistant|>\n",
  specialToken: "<|end|>",
});
