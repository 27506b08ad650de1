/** The engine contract on the scripted fake engine (what the layers above are unit-tested against). */
import { runEngineContract } from "../engine.contract.ts";
import { createFakeEngineFactory } from "./fake-engine-factory.ts";

runEngineContract({
  name: "fake",
  factory: async () => createFakeEngineFactory({ tokens: Array.from({ length: 300 }, (_, i) => `t${i} `), contextLength: 256 }),
  modelPath: async () => "fake.gguf",
  prompt: "<|user|>\nhello<|end|>\n<|assistant|>\n",
});
