import { test } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { ImageError } from "./image-error.ts";
import { phi3vImageTokens } from "./image-tokens.ts";
import { CLIP_MEAN, CLIP_STD, preprocessPhi3vImage, resizeBilinearPil } from "./phi3v-preprocess.ts";

const SIDE = 336;
const PLANE = SIDE * SIDE;
const CROP = 3 * PLANE;
const LIMITS = { maxPixels: 50e6 };

type Rgb = readonly [number, number, number];
const RED: Rgb = [230, 20, 30];
const BLUE: Rgb = [20, 40, 220];
const GREEN: Rgb = [10, 200, 60];
const WHITE: Rgb = [255, 255, 255];

/** CLIP normalisation in double precision: the value torch's float32 arithmetic rounds. */
const norm = (v: number, c: number) => (v / 255 - CLIP_MEAN[c]!) / CLIP_STD[c]!;

/** Value of channel `c` at (x, y) of crop `crop`. */
function at(pixels: Float32Array, crop: number, c: number, x: number, y: number): number {
  return pixels[crop * CROP + c * PLANE + y * SIDE + x]!;
}

function assertColour(pixels: Float32Array, crop: number, x: number, y: number, rgb: Rgb, label: string): void {
  for (let c = 0; c < 3; c++) {
    const actual = at(pixels, crop, c, x, y);
    assert.ok(Math.abs(actual - norm(rgb[c]!, c)) < 1e-6, `${label}: crop ${crop} (${x},${y}) channel ${c}: ${actual} vs ${norm(rgb[c]!, c)}`);
  }
}

function raw(width: number, height: number, colour: (x: number, y: number) => Rgb): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(colour(x, y), (y * width + x) * 3);
  return data;
}

function png(width: number, height: number, colour: (x: number, y: number) => Rgb): Promise<Buffer> {
  return sharp(raw(width, height, colour), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Deterministic noise over a gradient, like a photo's fine detail. */
function noisy(width: number, height: number, seed = 7): Buffer {
  const data = Buffer.alloc(width * height * 3);
  let s = seed;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        s = (s * 1103515245 + 12345) >>> 0;
        const base = c === 0 ? (x * 255) / width : c === 1 ? (y * 255) / height : 128;
        data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(base + ((s >>> 24) % 61) - 30)));
      }
    }
  }
  return data;
}

function isZero(pixels: Float32Array, crop: number): boolean {
  return pixels.subarray(crop * CROP, (crop + 1) * CROP).every((v) => v === 0);
}

test("a 672×336 image at 4 crops: two tiles in row order, zero crops after them, and the global view blends at the seam", async () => {
  const image = await preprocessPhi3vImage(await png(672, 336, (x) => (x < 336 ? RED : BLUE)), "image/png", { numCrops: 4, ...LIMITS });
  assert.deepEqual([image.width, image.height, image.crops, image.imageSize], [672, 336, 5, [336, 672]]);
  assert.equal(image.tokens, phi3vImageTokens(672, 336, 4));
  assert.equal(image.tokens, (2 + 1) * 144 + 1 + 2 * 12);
  assert.equal(image.pixelValues.length, 5 * CROP);
  for (const [x, y] of [[0, 0], [335, 0], [170, 200], [335, 335]]) {
    assertColour(image.pixelValues, 1, x!, y!, RED, "tile (0,0)");
    assertColour(image.pixelValues, 2, x!, y!, BLUE, "tile (0,1)");
  }
  assert.ok(isZero(image.pixelValues, 3) && isZero(image.pixelValues, 4), "padding crops are exactly zero");
  // Global view: 672 → 336 columns (scale 2), rows unchanged. Output column 167 samples x = 334.5: taps
  // 333, 334, 335 (red) and 336 (blue) with cubic weights (a = −0.75) −0.09375, 0.59375, 0.59375, −0.09375.
  for (let c = 0; c < 3; c++) {
    const r = norm(RED[c]!, c);
    const b = norm(BLUE[c]!, c);
    const close = (actual: number, expected: number, label: string) =>
      assert.ok(Math.abs(actual - expected) < 1e-5, `${label} channel ${c}: ${actual} vs ${expected}`);
    close(at(image.pixelValues, 0, c, 0, 100), r, "global x=0");
    close(at(image.pixelValues, 0, c, 167, 100), 1.09375 * r - 0.09375 * b, "global x=167");
    close(at(image.pixelValues, 0, c, 168, 100), -0.09375 * r + 1.09375 * b, "global x=168");
    close(at(image.pixelValues, 0, c, 335, 100), b, "global x=335");
  }
});

test("padding is normalised white, split with the odd row at the bottom; portrait images are padded left and right", async () => {
  // 672×301 needs no resize at 4 crops; 35 rows of padding: 17 on top, 18 below.
  const landscape = await preprocessPhi3vImage(await png(672, 301, () => GREEN), "image/png", { numCrops: 4, ...LIMITS });
  assert.deepEqual(landscape.imageSize, [336, 672]);
  for (const crop of [1, 2]) {
    assertColour(landscape.pixelValues, crop, 100, 16, WHITE, "top padding");
    assertColour(landscape.pixelValues, crop, 100, 17, GREEN, "first image row");
    assertColour(landscape.pixelValues, crop, 100, 317, GREEN, "last image row");
    assertColour(landscape.pixelValues, crop, 100, 318, WHITE, "bottom padding");
  }
  // The same image turned upright: transposed for the HD transform, so 17 columns left, 18 right,
  // and the tiles stacked (2 rows × 1 column), which costs 12 more separator tokens.
  const portrait = await preprocessPhi3vImage(await png(301, 672, () => GREEN), "image/png", { numCrops: 4, ...LIMITS });
  assert.deepEqual([portrait.imageSize, portrait.tokens], [[672, 336], (2 + 1) * 144 + 1 + 3 * 12]);
  for (const crop of [1, 2]) {
    assertColour(portrait.pixelValues, crop, 16, 100, WHITE, "left padding");
    assertColour(portrait.pixelValues, crop, 17, 100, GREEN, "first image column");
    assertColour(portrait.pixelValues, crop, 317, 100, GREEN, "last image column");
    assertColour(portrait.pixelValues, crop, 318, 100, WHITE, "right padding");
  }
  assert.ok(isZero(portrait.pixelValues, 3) && isZero(portrait.pixelValues, 4));
});

test("a 1900×1069 JPEG at 16 crops: 15 tiles of a 1680×1008 HD image, shrunk within a few levels of PIL", async () => {
  const rgb = noisy(1900, 1069);
  const jpeg = await sharp(rgb, { raw: { width: 1900, height: 1069, channels: 3 } }).jpeg({ quality: 92 }).toBuffer();
  const image = await preprocessPhi3vImage(jpeg, "image/jpeg", { numCrops: 16, ...LIMITS });
  assert.deepEqual([image.width, image.height, image.crops, image.imageSize, image.tokens], [1900, 1069, 17, [1008, 1680], 2353]);
  assert.equal(image.pixelValues.length, 17 * CROP);
  assert.ok(isZero(image.pixelValues, 16), "crop 16 is padding");
  assert.ok(!isZero(image.pixelValues, 15), "crop 15 is the last tile");
  assert.ok(image.timings.decodeMs >= 0 && image.timings.preprocessMs >= 0);

  // Reference: PIL's bilinear resize of the decoded pixels to 1680×945, placed 31 rows down.
  const decoded = await sharp(jpeg).raw().toBuffer();
  const pil = resizeBilinearPil(decoded, 1900, 1069, 1680, 945);
  let maxLevels = 0;
  let sumLevels = 0;
  let count = 0;
  for (let ty = 0; ty < 3; ty++) {
    for (let tx = 0; tx < 5; tx++) {
      const crop = 1 + ty * 5 + tx;
      for (let y = 0; y < SIDE; y++) {
        const hdY = ty * SIDE + y;
        for (let x = 0; x < SIDE; x += 7) {
          for (let c = 0; c < 3; c++) {
            const actual = at(image.pixelValues, crop, c, x, y);
            if (hdY < 31 || hdY >= 31 + 945) {
              assert.ok(Math.abs(actual - norm(255, c)) < 1e-6, `padding at HD row ${hdY}`);
              continue;
            }
            const expected = norm(pil[((hdY - 31) * 1680 + tx * SIDE + x) * 3 + c]!, c);
            const levels = (Math.abs(actual - expected) * CLIP_STD[c]!) * 255;
            maxLevels = Math.max(maxLevels, levels);
            sumLevels += levels;
            count++;
          }
        }
      }
    }
  }
  assert.ok(maxLevels <= 4.01, `sharp's linear kernel vs PIL bilinear: max ${maxLevels} levels`);
  assert.ok(sumLevels / count < 0.5, `mean ${sumLevels / count} levels`);
});

test("enlarging follows PIL's bilinear resampler exactly", () => {
  // Hand-computed from Pillow's Resample.c: 2 → 4 pixels, centres at 0.25, 0.75, 1.25, 1.75 of the
  // input; weights (1), (0.75, 0.25), (0.25, 0.75), (1) in 22-bit fixed point, rounded: 63.75 → 64, 191.25 → 191.
  const row = new Uint8Array([0, 0, 0, 255, 255, 255]);
  assert.deepEqual([...resizeBilinearPil(row, 2, 1, 4, 1)].filter((_, i) => i % 3 === 0), [0, 64, 191, 255]);
  const column = resizeBilinearPil(row, 1, 2, 1, 4);
  assert.deepEqual([...column].filter((_, i) => i % 3 === 0), [0, 64, 191, 255]);
  // A constant image stays constant through both passes.
  const grey = resizeBilinearPil(new Uint8Array(7 * 5 * 3).fill(200), 7, 5, 1344, 960);
  assert.ok(grey.every((v) => v === 200));
});

test("a small image is enlarged to the HD size with PIL's resampler (100×100 → 1344×1344 at 16 crops)", async () => {
  const rgb = noisy(100, 100, 3);
  const image = await preprocessPhi3vImage(await sharp(rgb, { raw: { width: 100, height: 100, channels: 3 } }).png().toBuffer(), "image/png", {
    numCrops: 16,
    ...LIMITS,
  });
  assert.deepEqual([image.crops, image.imageSize, image.tokens], [17, [1344, 1344], 2509]);
  const pil = resizeBilinearPil(rgb, 100, 100, 1344, 1344);
  for (const [crop, x, y] of [[1, 0, 0], [6, 17, 300], [16, 335, 335], [11, 200, 2]] as const) {
    const hdX = ((crop - 1) % 4) * SIDE + x;
    const hdY = Math.floor((crop - 1) / 4) * SIDE + y;
    const i = (hdY * 1344 + hdX) * 3;
    assertColour(image.pixelValues, crop, x, y, [pil[i]!, pil[i + 1]!, pil[i + 2]!], "enlarged tile");
  }
});

test("matches transformers.js where both follow the reference (a 672×672 image at 4 crops: no resize, a 2×2 grid)", async () => {
  const { Phi3VImageProcessor, RawImage, env } = await import("@huggingface/transformers");
  env.allowRemoteModels = false;
  const bytes = await sharp(noisy(672, 672, 11), { raw: { width: 672, height: 672, channels: 3 } }).png().toBuffer();
  const processor = new Phi3VImageProcessor({ num_crops: 4, num_img_tokens: 144, image_mean: [...CLIP_MEAN], image_std: [...CLIP_STD] });
  const theirs = await processor(await RawImage.fromBlob(new Blob([bytes])), { num_crops: 4 });
  const ours = await preprocessPhi3vImage(bytes, "image/png", { numCrops: 4, ...LIMITS });
  const reference = theirs.pixel_values.data as Float32Array;
  assert.equal(reference.length, ours.pixelValues.length);
  assert.deepEqual(theirs.num_img_tokens, [ours.tokens]);
  let max = 0;
  for (let i = 0; i < reference.length; i++) max = Math.max(max, Math.abs(reference[i]! - ours.pixelValues[i]!));
  // Global view (bicubic) included: float32 rounding apart, the same numbers.
  assert.ok(max < 1e-5, `max difference ${max}`);
});

test("a bad image is an ImageError from preprocessing too", async () => {
  await assert.rejects(
    preprocessPhi3vImage(Buffer.from("GIF89a but no more"), "image/gif", { numCrops: 16, ...LIMITS }),
    (error: unknown) => error instanceof ImageError && error.reason === "corrupt",
  );
  await assert.rejects(
    preprocessPhi3vImage(await png(8, 8, () => RED), "image/png", { numCrops: 16, maxPixels: 63 }),
    (error: unknown) => error instanceof ImageError && error.reason === "too_many_pixels",
  );
});
