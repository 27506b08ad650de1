/**
 * CLI: write a seeded random-weight test model.
 *
 *   node --import tsx src/model-factory/make-test-model.ts OUT.gguf [--shape phi3-mini]
 *     [--layers N] [--embd N] [--ff N] [--heads N] [--heads-kv N] [--ctx N]
 *     [--quant f16|q8_0|q4_0] [--seed N] [--name TEXT]
 *
 * Without --shape the tiny test defaults apply; `--shape phi3-mini` gives full Phi-3-mini
 * dimensions (~2.2 GB q4_0) for benchmarks.
 */
import { parseArgs } from "node:util";
import { PHI3_MINI_SHAPE, writeTestModel, type TestModelOptions } from "./test-models.ts";

const QUANTS = ["f16", "q8_0", "q4_0"] as const;

function intOption(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`--${flag} needs an integer, got ${value}`);
  return n;
}

function parseQuant(value: string | undefined): TestModelOptions["quant"] {
  if (value === undefined) return undefined;
  const quant = QUANTS.find((q) => q === value);
  if (!quant) throw new Error(`--quant must be one of ${QUANTS.join(", ")}`);
  return quant;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      shape: { type: "string" }, layers: { type: "string" }, embd: { type: "string" }, ff: { type: "string" },
      heads: { type: "string" }, "heads-kv": { type: "string" }, ctx: { type: "string" },
      quant: { type: "string" }, seed: { type: "string" }, name: { type: "string" },
    },
  });
  const out = positionals[0];
  if (!out) throw new Error("usage: make-test-model.ts OUT.gguf [--shape phi3-mini] [options]");
  if (values.shape !== undefined && values.shape !== "phi3-mini") throw new Error("--shape: only phi3-mini is known");
  const flags: Partial<TestModelOptions> = {
    layers: intOption(values.layers, "layers"), embd: intOption(values.embd, "embd"), ff: intOption(values.ff, "ff"),
    heads: intOption(values.heads, "heads"), headsKv: intOption(values["heads-kv"], "heads-kv"),
    ctx: intOption(values.ctx, "ctx"), quant: parseQuant(values.quant), seed: intOption(values.seed, "seed"), name: values.name,
  };
  // Explicit flags override the shape; drop unset ones so they don't mask it with undefined.
  const setFlags = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as Partial<TestModelOptions>;
  const shape = values.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {};
  const merged: TestModelOptions = { ...shape, ...setFlags, family: "phi3" };
  const started = performance.now();
  const { file, bytes } = await writeTestModel(out, merged);
  const seconds = (performance.now() - started) / 1000;
  console.log(`${file}: ${bytes} bytes (${(bytes / 2 ** 20).toFixed(1)} MiB) in ${seconds.toFixed(2)} s`);
}

await main();
