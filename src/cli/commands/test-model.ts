import { writePhi3vTestModel } from "../../model-factory/phi3v-test-model.ts";
import { PHI3_MINI_SHAPE, writeTestModel, type TestModelFamily, type TestModelOptions } from "../../model-factory/test-models.ts";

const FLAG_KEYS = ["layers", "embd", "ff", "heads", "headsKv", "ctx", "quant", "seed"] as const;

type TestModelFlags = Pick<TestModelOptions, (typeof FLAG_KEYS)[number]> & { family: TestModelFamily | "phi3v"; out: string; shape: "tiny" | "phi3-mini" };

export async function runTestModel(flags: TestModelFlags): Promise<void> {
  const started = Date.now();
  if (flags.family === "phi3v") {
    if (flags.shape !== "tiny" || flags.quant !== undefined) throw new Error("--family phi3v writes a tiny float32 ONNX model: --shape and --quant do not apply");
    const result = await writePhi3vTestModel(flags.out, {
      hidden: flags.embd,
      layers: flags.layers,
      ff: flags.ff,
      heads: flags.heads,
      kvHeads: flags.headsKv,
      contextLength: flags.ctx,
      seed: flags.seed,
    });
    process.stdout.write(`wrote ${result.dir}/ (${result.bytes} bytes) in ${Date.now() - started} ms\n`);
    return;
  }
  const options: TestModelOptions = { ...(flags.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}), family: flags.family };
  for (const key of FLAG_KEYS) {
    if (flags[key] !== undefined) Object.assign(options, { [key]: flags[key] });
  }
  const result = await writeTestModel(flags.out, options);
  process.stdout.write(`wrote ${result.file} (${result.bytes} bytes) in ${Date.now() - started} ms\n`);
}
