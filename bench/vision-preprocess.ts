/**
 * Phi-3-vision image preprocessing (figures, not tests): phiserve's preprocessPhi3vImage against
 * transformers.js' Phi3VImageProcessor (@huggingface/transformers, configured from an object, offline),
 * on the same deterministic 1900×1069 chart-like JPEG (quality 85) at num_crops 16, interleaved in one
 * process after warm-up. Both go from the JPEG bytes to pixel_values. Also prints each one's token count
 * for the landscape image and its portrait twin (transformers.js does not transpose portrait images).
 *
 *   node --import tsx bench/vision-preprocess.ts [--iterations 15] [--warmup 3]
 */
import { parseArgs } from "node:util";
import os from "node:os";
import sharp from "sharp";
import { env, Phi3VImageProcessor, RawImage } from "@huggingface/transformers";
import { CLIP_MEAN, CLIP_STD, preprocessPhi3vImage } from "../src/vision/phi3v-preprocess.ts";
import { chartJpeg } from "./chart-image.ts";

const { values: args } = parseArgs({
  options: {
    iterations: { type: "string", default: "15" },
    warmup: { type: "string", default: "3" },
  },
});
const iterations = Number(args.iterations);
const warmup = Number(args.warmup);
const NUM_CROPS = 16;

env.allowRemoteModels = false;
const processor = new Phi3VImageProcessor({
  num_crops: NUM_CROPS,
  num_img_tokens: 144,
  image_mean: [...CLIP_MEAN],
  image_std: [...CLIP_STD],
});


async function theirs(bytes: Buffer) {
  const image = await RawImage.fromBlob(new Blob([new Uint8Array(bytes)]));
  return processor(image, { num_crops: NUM_CROPS });
}

const ours = (bytes: Buffer) => preprocessPhi3vImage(bytes, "image/jpeg", { numCrops: NUM_CROPS, maxPixels: 50e6 });

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const landscape = await chartJpeg(1900, 1069);
const portrait = await sharp(landscape).rotate(90).jpeg({ quality: 85 }).toBuffer();
console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), sharp ${sharp.versions.sharp} / libvips ${sharp.versions.vips}`);
console.log(`image: 1900×1069 JPEG, ${landscape.length} bytes; num_crops ${NUM_CROPS}; ${warmup} warm-up + ${iterations} timed runs each, interleaved`);

for (let i = 0; i < warmup; i++) {
  await ours(landscape);
  await theirs(landscape);
}
const oursMs: number[] = [];
const theirsMs: number[] = [];
const decodeMs: number[] = [];
const preprocessMs: number[] = [];
for (let i = 0; i < iterations; i++) {
  let started = performance.now();
  const result = await ours(landscape);
  oursMs.push(performance.now() - started);
  decodeMs.push(result.timings.decodeMs);
  preprocessMs.push(result.timings.preprocessMs);
  started = performance.now();
  await theirs(landscape);
  theirsMs.push(performance.now() - started);
}
const ratio = median(oursMs) / median(theirsMs);
console.log(`phiserve:        median ${median(oursMs).toFixed(1)} ms (decode ${median(decodeMs).toFixed(1)} + preprocess ${median(preprocessMs).toFixed(1)}), min ${Math.min(...oursMs).toFixed(1)}`);
console.log(`transformers.js: median ${median(theirsMs).toFixed(1)} ms, min ${Math.min(...theirsMs).toFixed(1)}`);
console.log(`ratio phiserve / transformers.js: ${ratio.toFixed(3)} (target ≤ 0.2: ${ratio <= 0.2 ? "met" : "NOT met"})`);

for (const [name, bytes] of [["1900×1069", landscape], ["1069×1900", portrait]] as const) {
  const a = await ours(bytes);
  const b = await theirs(bytes);
  const sizes = (b.image_sizes.tolist() as bigint[][])[0]!.map(Number);
  console.log(
    `${name}: phiserve ${a.tokens} tokens, image_sizes [${a.imageSize.join(", ")}]; ` +
      `transformers.js ${b.num_img_tokens[0]} tokens, image_sizes [${sizes.join(", ")}]`,
  );
  if (name === "1900×1069") {
    // The global view is the same computation on slightly different HD images (PIL-style vs affine bilinear resize).
    const reference = b.pixel_values.data as Float32Array;
    const plane = 3 * 336 * 336;
    let max = 0;
    let sum = 0;
    for (let i = 0; i < plane; i++) {
      const d = Math.abs(reference[i]! - a.pixelValues[i]!);
      max = Math.max(max, d);
      sum += d;
    }
    console.log(`  global view, |phiserve − transformers.js| (normalised units): mean ${(sum / plane).toFixed(4)}, max ${max.toFixed(3)}`);
  }
}
