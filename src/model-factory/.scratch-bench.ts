import { getLlama } from "node-llama-cpp";
const files = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
for (const file of files) {
  const t1 = performance.now();
  const model = await llama.loadModel({ modelPath: file });
  const t2 = performance.now();
  const context = await model.createContext({ threads: 1, contextSize: 1024 });
  const res: string[] = [];
  for (let run = 0; run < 4; run++) {
    const seq = context.getSequence();
    const out: number[] = [];
    const prompt = model.tokenize(`<|user|>\nTell me a story number ${run}.<|end|>\n<|assistant|>\n`, true);
    let first = 0;
    for await (const tok of seq.evaluate(prompt, { temperature: 0 })) {
      if (out.length === 0) first = performance.now();
      out.push(tok);
      if (out.length >= 256) break;
    }
    res.push(((performance.now() - first) / (out.length - 1)).toFixed(2));
    seq.dispose();
    while (context.sequencesLeft === 0) await new Promise(r => setTimeout(r, 1));
  }
  console.log(file, "load ms", (t2 - t1).toFixed(0), "ms/tok", res.join(" "));
  await context.dispose(); await model.dispose();
}
await llama.dispose();
