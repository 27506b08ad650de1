import { getLlama, LlamaCompletion } from "node-llama-cpp";
import llamaTokenizer from "llama-tokenizer-js";
const files = process.argv.slice(2);
const logs: string[] = [];
const t0 = performance.now();
const llama = await getLlama({ gpu: false, build: "never", logLevel: "debug" as never, logger: (level, message) => { if (level !== "debug" && level !== "info") logs.push(`${level}: ${message.trim()}`); } });
console.log("getLlama ms", (performance.now() - t0).toFixed(0));
for (const file of files) {
  const t1 = performance.now();
  const model = await llama.loadModel({ modelPath: file });
  const t2 = performance.now();
  const context = await model.createContext({ threads: 1, contextSize: 512 });
  const t3 = performance.now();
  console.log(file, "load ms", (t2 - t1).toFixed(0), "ctx ms", (t3 - t2).toFixed(0));
  console.log(model.tokenize("<|user|>\nHello<|end|>\n<|assistant|>\n", true));
  console.log(model.tokenize("Hello world"), llamaTokenizer.encode("Hello world", false, true));
  console.log("bos", model.tokens.bos, "eos", model.tokens.eos, "eot", model.tokens.eot, "nl", model.tokens.nl);
  for (let run = 0; run < 2; run++) {
    const seq = context.getSequence();
    const out: number[] = [];
    const prompt = model.tokenize("<|user|>\nHello there, how are you?<|end|>\n<|assistant|>\n", true);
    const g0 = performance.now();
    let first = 0;
    for await (const tok of seq.evaluate(prompt, { temperature: 0 })) {
      if (out.length === 0) first = performance.now();
      out.push(tok);
      if (out.length >= 64) break;
    }
    const g1 = performance.now();
    console.log(`run ${run}: ttft ${(first - g0).toFixed(1)} ms, ${( (g1 - first) / (out.length - 1)).toFixed(2)} ms/tok, distinct ${new Set(out).size}/${out.length}`);
    console.log(out.slice(0, 16).join(","), JSON.stringify(model.detokenize(out)).slice(0, 200));
    seq.dispose();
    await new Promise(r => setTimeout(r, 10));
  }
  await context.dispose();
  await model.dispose();
}
await llama.dispose();
console.log(logs.join("\n"));
