import { PHI3_MINI_SHAPE, writeTestModel, type TestModelOptions } from "../../model-factory/test-models.ts";

const FLAG_KEYS = ["layers", "embd", "ff", "heads", "headsKv", "ctx", "quant", "seed"] as const;

type TestModelFlags = Pick<TestModelOptions, "family" | (typeof FLAG_KEYS)[number]> & { out: string; shape: "tiny" | "phi3-mini" };

export async function runTestModel(flags: TestModelFlags): Promise<void> {
  const options: TestModelOptions = { ...(flags.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}), family: flags.family };
  for (const key of FLAG_KEYS) {
    if (flags[key] !== undefined) Object.assign(options, { [key]: flags[key] });
  }
  const started = Date.now();
  const result = await writeTestModel(flags.out, options);
  process.stdout.write(`wrote ${result.file} (${result.bytes} bytes) in ${Date.now() - started} ms\n`);
}
