/** The engine contract on the ONNX vision engine, built by its factory over the seeded Phi-3-vision test model. */
import { runEngineContract } from "../engine.contract.ts";
import { ensurePhi3vTestModel } from "../../model-factory/phi3v-test-model.ts";
import { createOnnxEngineFactory } from "./onnx-engine-factory.ts";

runEngineContract({
  name: "onnx",
  factory: async () => createOnnxEngineFactory(),
  modelPath: () => ensurePhi3vTestModel(),
  prompt: "<|user|>\nHow many languages are in the world?<|end|>\n<|assistant|>\n",
  specialToken: "<|end|>",
});
