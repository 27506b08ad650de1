import { writeTestModel, type TestModelOptions } from "../../model-factory/test-models.ts";

interface TestModelFlags {
  family: "phi3";
  out: string;
  layers?: number;
  embd?: number;
  ff?: number;
  heads?: number;
  ctx?: number;
  quant?: "f16" | "q8_0" | "q4_0";
  seed?: number;
}

export async function runTestModel(flags: TestModelFlags): Promise<void> {
  const options: TestModelOptions = { family: flags.family };
  for (const key of ["layers", "embd", "ff", "heads", "ctx", "quant", "seed"] as const) {
    if (flags[key] !== undefined) Object.assign(options, { [key]: flags[key] });
  }
  const started = Date.now();
  const result = await writeTestModel(flags.out, options);
  process.stdout.write(`wrote ${result.file} (${result.bytes} bytes) in ${Date.now() - started} ms\n`);
}
