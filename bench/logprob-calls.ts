/**
 * What each native sampling call of the logprobs path costs (figures, not tests). One sequence generates greedily
 * through `LogitSteps`; on every step's logits it also runs, in a rotating order and each timed on its own, the
 * calls that the plain and the logprobs paths make (docs/ENGINE-NOTES.md "Logprobs from native samplers"):
 *
 * - `greedy pick`: the plain path's call at temperature 0 (greedy chain, nothing returned but the token);
 * - `greedy pick + Σ`: the logprobs path's at temperature 0 without a top list (the softmax normaliser too);
 * - `draw`: the plain path's at temperature 1 (temperature, top-p 1, a seeded draw);
 * - `raw logit + Σ`: the second call of the logprobs path above temperature 0 (the pick's raw logit, the maximum, Σ);
 * - `top N`: the top list's call (llama.cpp's top-k, temperature 1).
 *
 * It prints the median time of a whole step with the plain greedy call alone (the decode included) and each call's
 * median, then the slowdown each logprobs request type cannot go below with these calls: (step − its plain call + the
 * logprobs path's calls) ÷ step. The step is what one token costs without HTTP.
 *
 *   npm run bench:logprob-calls -- [--shape tiny|phi3-mini | --model FILE] [--steps 400] [--top 5] [--threads 1]
 */
import { parseArgs } from "node:util";
import { getLlama, type Token } from "node-llama-cpp";
import { ensureTestModel, PHI3_MINI_SHAPE } from "../src/model-factory/test-models.ts";
import { LogitSteps, NO_TOP_K, type LogitRequest, type NativeSampler, type SampleLogits } from "../src/engine/llama-cpp/node-llama-cpp-internals.ts";
import { median } from "./median.ts";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    shape: { type: "string", default: "tiny" },
    steps: { type: "string", default: "400" },
    top: { type: "string", default: "5" },
    threads: { type: "string", default: "1" },
  },
});

async function main(): Promise<void> {
  const modelPath = args.model ?? (await ensureTestModel(args.shape === "phi3-mini" ? PHI3_MINI_SHAPE : {}));
  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ sequences: 1, contextSize: 2048, threads: Number(args.threads) });
  const sequence = context.getSequence();
  const steps = new LogitSteps(sequence);
  const top = Number(args.top);
  const sampler = (options: Parameters<NativeSampler["configure"]>[0]): NativeSampler => {
    const made = steps.sampler();
    made.configure(options);
    return made;
  };
  const greedy = sampler({ temperature: 0, topK: 0, topP: 1, minP: 0, seed: 1 });
  const calls: Record<string, [NativeSampler, (picked: Token) => LogitRequest]> = {
    "greedy pick + Σ": [sampler({ temperature: 0, topK: 0, topP: 1, minP: 0, seed: 1 }), () => ({ totalLogitWeight: true })],
    draw: [sampler({ temperature: 1, topK: NO_TOP_K, topP: 1, minP: 0, seed: 1 }), () => ({})],
    "raw logit + Σ": [sampler({ temperature: 0, topK: 0, topP: 1, minP: 0, seed: 1 }), (picked) => ({ tokens: [picked], includeSelected: true, totalLogitWeight: true })],
    [`top ${top}`]: [sampler({ temperature: 1, topK: top, topP: 1, minP: 0, seed: 1 }), () => ({ tokens: [], top })],
  };
  const names = Object.keys(calls);
  const times: Record<string, number[]> = { step: [], "greedy pick": [], ...Object.fromEntries(names.map((name) => [name, []])) };
  const time = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    const result = await work();
    times[name]!.push(performance.now() - start);
    return result;
  };
  const prompt = model.tokenize("time river stone light garden window silver market music paper forest engine winter story");
  let next = await steps.step(prompt, (sample: SampleLogits) => sample(greedy, {}).then((s) => s.token!));
  const count = Number(args.steps);
  for (let i = 0; i < count; i++) {
    // Plain steps (the decode and the plain greedy call) alternate with steps that time every call on the same logits.
    const measureCalls = i % 2 === 1;
    const start = performance.now();
    next = await steps.step([next], async (sample: SampleLogits) => {
      if (!measureCalls) return (await time("greedy pick", () => sample(greedy, {}))).token!;
      const picked = (await sample(greedy, {})).token!;
      const order = names.map((_, k) => names[(k + i) % names.length]!);
      for (const name of order) {
        const [chain, request] = calls[name]!;
        await time(name, () => sample(chain, request(picked)));
      }
      return picked;
    });
    if (!measureCalls) times.step!.push(performance.now() - start);
    if (sequence.nextTokenIndex > 1900) await sequence.clearHistory();
  }
  const step = median(times.step!), pick = median(times["greedy pick"]!);
  const cost = (name: string) => median(times[name]!);
  console.log(`model ${modelPath}, ${args.threads} thread(s), binary ${llama.buildType}, ${count / 2} steps of each kind`);
  console.log(`step (decode + greedy pick)  ${step.toFixed(3)} ms`);
  for (const name of ["greedy pick", ...names]) console.log(`${name.padEnd(28)} ${cost(name).toFixed(3)} ms`);
  const floor = (calls: number) => ((step - pick + calls) / step).toFixed(2);
  console.log("least slowdown with these calls:");
  console.log(`  temperature 0, no top list   ${floor(cost("greedy pick + Σ"))}×`);
  console.log(`  temperature 0, top ${top}        ${floor(cost("greedy pick + Σ") + cost(`top ${top}`))}×`);
  // Above temperature 0 the plain path's call is the draw, not the greedy pick: the step is priced with it.
  const drawStep = (calls: number) => ((step - pick + calls) / (step - pick + cost("draw"))).toFixed(2);
  console.log(`  temperature 1, no top list   ${drawStep(cost("draw") + cost("raw logit + Σ"))}×`);
  console.log(`  temperature 1, top ${top}        ${drawStep(cost("draw") + cost("raw logit + Σ") + cost(`top ${top}`))}×`);
  for (const made of [greedy, ...Object.values(calls).map(([chain]) => chain)]) made.dispose();
  await context.dispose();
  await model.dispose();
}

await main();
