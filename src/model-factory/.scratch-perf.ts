import { SeededRandom } from "./prng.ts";
import { encodeTensorData, GgmlType } from "./ggml-quants.ts";
const buf = new Float32Array(1 << 20); const out = new Uint8Array(1 << 22);
const r = new SeededRandom(1);
for (let pass = 0; pass < 2; pass++) {
let t = performance.now();
for (let i = 0; i < 32; i++) r.fillNormalish(buf, 0.02);
const fill = performance.now() - t; t = performance.now();
for (let i = 0; i < 32; i++) encodeTensorData(GgmlType.Q4_0, buf, out, 0);
const q4 = performance.now() - t; t = performance.now();
for (let i = 0; i < 32; i++) encodeTensorData(GgmlType.Q8_0, buf, out, 0);
const q8 = performance.now() - t;
console.log(`ns/value fill ${(fill * 1e6 / 32 / 1048576).toFixed(2)} q4 ${(q4 * 1e6 / 32 / 1048576).toFixed(2)} q8 ${(q8 * 1e6 / 32 / 1048576).toFixed(2)}`);
}
