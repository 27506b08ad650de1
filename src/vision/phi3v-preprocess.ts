/**
 * Phi-3-vision / Phi-3.5-vision image preprocessing (docs/VISION.md "Preprocessing"): bytes → the
 * encoder's `pixel_values` for one image, laid out as Microsoft's `processing_phi3_v.py` lays them out.
 *
 * Reference steps, and how each is done here:
 * 1. `convert('RGB')` — decodeImage (sharp): EXIF orientation, alpha flattened onto white, 8-bit sRGB.
 * 2. `HD_transform`: transpose portrait images, resize with torchvision `resize` on a PIL image (PIL
 *    bilinear, antialiased), pad the short side with white to a multiple of 336, transpose back. The
 *    transposes are geometry only (phi3vHdLayout). Downscaling uses sharp's `linear` (triangle)
 *    kernel, which follows PIL within a few levels of 255; upscaling, where libvips' centre and edge
 *    conventions differ from PIL's, uses {@link resizeBilinearPil}, a port of PIL's fixed-point
 *    resampler that reproduces it exactly.
 * 3. `ToTensor` + `Normalize` with CLIP mean/std, in float32 as torch computes them (a lookup table).
 * 4. The 336×336 tiles: an exact `reshape(1,3,H/336,336,W/336,336).permute(0,2,4,1,3,5)` — row-major tiles.
 * 5. The global view: `interpolate(hd, size=(336,336), mode='bicubic')` of the normalised HD image
 *    (a = −0.75, half-pixel centres, clamped edges, no antialiasing), ported in {@link globalView}.
 * 6. Crops = [global, tile_0 … tile_k−1], zero crops up to `1 + numCrops`; `image_sizes` = [H, W].
 */
import sharp from "sharp";
import type { EngineImage } from "../engine/engine.ts";
import { decodeImage, type DecodedImage } from "./decode-image.ts";
import { ImageError } from "./image-error.ts";
import { PHI3V_CROP_SIZE as CROP, phi3vHdLayout, phi3vImageTokens, type Phi3vHdLayout } from "./image-tokens.ts";

/** OpenAI CLIP normalisation (`OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD` in transformers). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

const PLANE = CROP * CROP;
const CROP_VALUES = 3 * PLANE;

/** One image ready for the Phi-3/3.5-vision encoder, with what was decoded and how long it took. */
export interface PreprocessedImage extends EngineImage {
  /** Size of the decoded image, after EXIF orientation. */
  width: number;
  height: number;
  timings: {
    /** Decoding to RGB (sharp). */
    decodeMs: number;
    /** HD resize, tiles, global view and normalisation. */
    preprocessMs: number;
  };
}

export interface Phi3vPreprocessOptions {
  /** HD tiles per image (`num_crops`: 4 or 16 for the published models); `crops` is one more. */
  numCrops: number;
  /** Largest decoded width × height accepted (checked from the header before decoding). */
  maxPixels: number;
}

/**
 * Decodes and preprocesses one image. `tokens` equals phi3vImageTokens(width, height, numCrops);
 * `pixelValues` holds `numCrops + 1` crops of 3×336×336 float32.
 * @throws ImageError for anything wrong with the image (see decodeImage).
 */
export async function preprocessPhi3vImage(
  bytes: Buffer,
  declaredMime: string | undefined,
  options: Phi3vPreprocessOptions,
): Promise<PreprocessedImage> {
  const { numCrops } = options;
  if (!Number.isSafeInteger(numCrops) || numCrops < 1) throw new RangeError(`numCrops must be a positive integer, got ${numCrops}`);
  const decodeStarted = performance.now();
  const image = await decodeImage(bytes, declaredMime, { maxPixels: options.maxPixels });
  const decodeMs = performance.now() - decodeStarted;

  const started = performance.now();
  const layout = phi3vHdLayout(image.width, image.height, numCrops);
  const resized = await resizeForHd(image, layout);
  const hd = padHd(resized, layout);
  const pixelValues = new Float32Array((numCrops + 1) * CROP_VALUES);
  globalView(hd, layout.width, layout.height, pixelValues);
  writeTiles(hd, layout.width, layout.height, pixelValues);
  const preprocessMs = performance.now() - started;

  return {
    pixelValues,
    crops: numCrops + 1,
    imageSize: [layout.height, layout.width],
    tokens: phi3vImageTokens(image.width, image.height, numCrops),
    width: image.width,
    height: image.height,
    timings: { decodeMs, preprocessMs },
  };
}

/** Float32 `(v/255 − mean) / std` for every byte value, per channel, computed step by step in float32 as torchvision does. */
export const NORMALISED: readonly Float32Array[] = CLIP_MEAN.map((mean, c) => {
  const table = new Float32Array(256);
  const m = Math.fround(mean);
  const s = Math.fround(CLIP_STD[c]!);
  for (let v = 0; v < 256; v++) table[v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / s);
  return table;
});

/** The image resized to the HD transform's size (before padding): sharp when shrinking, the PIL port when enlarging. */
async function resizeForHd(image: DecodedImage, layout: Phi3vHdLayout): Promise<Uint8Array> {
  const { resizedWidth: width, resizedHeight: height } = layout;
  if (width === image.width && height === image.height) return image.data;
  if (width > image.width || height > image.height) {
    // PIL resizes the transposed image of a portrait, so its first (horizontal) pass runs along our y axis.
    return resizeBilinearPil(image.data, image.width, image.height, width, height, layout.transposed ? "y-first" : "x-first");
  }
  try {
    return await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 }, limitInputPixels: false })
      .resize(width, height, { fit: "fill", kernel: "linear" })
      .raw()
      .toBuffer();
  } catch (error) {
    throw new ImageError("corrupt", "The image could not be resized.", { cause: error });
  }
}

/** The resized RGB image placed on a white canvas of the padded HD size. */
function padHd(resized: Uint8Array, layout: Phi3vHdLayout): Uint8Array {
  const { width, height, resizedWidth, resizedHeight, left, top } = layout;
  if (width === resizedWidth && height === resizedHeight) return resized;
  const hd = new Uint8Array(width * height * 3).fill(255);
  const rowBytes = resizedWidth * 3;
  for (let y = 0; y < resizedHeight; y++) {
    const from = y * rowBytes;
    hd.set(resized.subarray(from, from + rowBytes), ((top + y) * width + left) * 3);
  }
  return hd;
}

/** Crops 1… of `out`: the HD image's 336×336 tiles in row-major order, planar RGB, normalised. */
function writeTiles(hd: Uint8Array, width: number, height: number, out: Float32Array): void {
  const columns = width / CROP;
  const rows = height / CROP;
  for (let ty = 0; ty < rows; ty++) {
    for (let tx = 0; tx < columns; tx++) {
      const crop = 1 + ty * columns + tx;
      for (let c = 0; c < 3; c++) {
        const table = NORMALISED[c]!;
        let o = crop * CROP_VALUES + c * PLANE;
        for (let y = 0; y < CROP; y++) {
          let i = ((ty * CROP + y) * width + tx * CROP) * 3 + c;
          for (let x = 0; x < CROP; x++, i += 3) out[o++] = table[hd[i]!]!;
        }
      }
    }
  }
}

/**
 * Crop 0 of `out`: torch `interpolate(mode='bicubic', align_corners=False)` of the normalised HD image to
 * 336×336 — cubic convolution with a = −0.75 at `scale·(i + 0.5) − 0.5`, taps clamped to the edge, no
 * antialiasing — rows first, then columns, as torch nests the sums; weights in float32.
 */
export function globalView(hd: Uint8Array, width: number, height: number, out: Float32Array): void {
  const columns = cubicTaps(width, CROP);
  const rows = cubicTaps(height, CROP);
  const xi = columns.index.map((i) => i * 3);
  const xw = columns.weight;
  // Rows first: each HD row interpolated to 336 columns (torch's inner sum), kept in float32 as torch keeps it.
  const rowsPass = new Float32Array(3 * height * CROP);
  for (let c = 0; c < 3; c++) {
    const table = NORMALISED[c]!;
    for (let y = 0; y < height; y++) {
      const row = y * width * 3 + c;
      let o = (c * height + y) * CROP;
      for (let j = 0; j < 4 * CROP; j += 4) {
        rowsPass[o++] =
          table[hd[row + xi[j]!]!]! * xw[j]! +
          table[hd[row + xi[j + 1]!]!]! * xw[j + 1]! +
          table[hd[row + xi[j + 2]!]!]! * xw[j + 2]! +
          table[hd[row + xi[j + 3]!]!]! * xw[j + 3]!;
      }
    }
  }
  // Then columns: each output row is a weighted sum of four interpolated rows.
  const yi = rows.index;
  const yw = rows.weight;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < CROP; y++) {
      const j = y * 4;
      const r0 = (c * height + yi[j]!) * CROP;
      const r1 = (c * height + yi[j + 1]!) * CROP;
      const r2 = (c * height + yi[j + 2]!) * CROP;
      const r3 = (c * height + yi[j + 3]!) * CROP;
      const w0 = yw[j]!;
      const w1 = yw[j + 1]!;
      const w2 = yw[j + 2]!;
      const w3 = yw[j + 3]!;
      const o = c * PLANE + y * CROP;
      for (let x = 0; x < CROP; x++) {
        out[o + x] = rowsPass[r0 + x]! * w0 + rowsPass[r1 + x]! * w1 + rowsPass[r2 + x]! * w2 + rowsPass[r3 + x]! * w3;
      }
    }
  }
}

/** Source indices and float32 weights of torch's bicubic interpolation from `inSize` to `outSize` samples. */
function cubicTaps(inSize: number, outSize: number): { index: Int32Array; weight: Float32Array } {
  const A = -0.75;
  const near = (t: number) => ((A + 2) * t - (A + 3)) * t * t + 1;
  const far = (t: number) => ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  const f = Math.fround;
  const scale = f(inSize / outSize);
  const index = new Int32Array(outSize * 4);
  const weight = new Float32Array(outSize * 4);
  for (let i = 0; i < outSize; i++) {
    const real = f(f(scale * f(i + 0.5)) - 0.5);
    const base = Math.min(Math.floor(real), inSize - 1);
    const t = f(Math.min(Math.max(f(real - base), 0), 1));
    const w = [far(t + 1), near(t), near(1 - t), far(2 - t)];
    for (let k = 0; k < 4; k++) {
      index[i * 4 + k] = Math.min(Math.max(base - 1 + k, 0), inSize - 1);
      weight[i * 4 + k] = w[k]!;
    }
  }
  return { index, weight };
}

/** PIL's fixed-point precision for 8-bit images (`PRECISION_BITS` in Pillow's Resample.c). */
const PRECISION_BITS = 22;

/**
 * PIL `Image.resize(..., BILINEAR)` of an 8-bit RGB image, bit for bit: Pillow's Resample.c (triangle
 * filter widened by the scale when shrinking, coefficients normalised then rounded to 22-bit fixed
 * point, two passes with an 8-bit image between them). `order` says which axis PIL's first
 * (horizontal) pass runs along: "y-first" for an image PIL sees transposed.
 */
export function resizeBilinearPil(
  rgb: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  order: "x-first" | "y-first" = "x-first",
): Uint8Array {
  let data = rgb;
  let w = width;
  let h = height;
  for (const axis of order === "x-first" ? (["x", "y"] as const) : (["y", "x"] as const)) {
    if (axis === "x" && outWidth !== w) {
      data = resamplePass(data, w, h, outWidth, "x");
      w = outWidth;
    } else if (axis === "y" && outHeight !== h) {
      data = resamplePass(data, w, h, outHeight, "y");
      h = outHeight;
    }
  }
  return data;
}

/** One PIL resampling pass along `axis`, from the image's size on that axis to `outSize`. */
function resamplePass(src: Uint8Array, width: number, height: number, outSize: number, axis: "x" | "y"): Uint8Array {
  return axis === "x" ? resampleColumns(src, width, height, outSize) : resampleRows(src, width, height, outSize);
}

const HALF = 1 << (PRECISION_BITS - 1);

/** PIL's horizontal pass (`ImagingResampleHorizontal_8bpc`). */
function resampleColumns(src: Uint8Array, width: number, height: number, outWidth: number): Uint8Array {
  const { bounds, coefficients, taps } = bilinearCoefficients(width, outWidth);
  const out = new Uint8Array(outWidth * height * 3);
  let o = 0;
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < outWidth; x++) {
      let i = row + bounds[x * 2]! * 3;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = x * taps, end = k + bounds[x * 2 + 1]!; k < end; k++, i += 3) {
        const weight = coefficients[k]!;
        r += src[i]! * weight;
        g += src[i + 1]! * weight;
        b += src[i + 2]! * weight;
      }
      out[o++] = clip8(r);
      out[o++] = clip8(g);
      out[o++] = clip8(b);
    }
  }
  return out;
}

/** PIL's vertical pass (`ImagingResampleVertical_8bpc`), a whole row at a time. */
function resampleRows(src: Uint8Array, width: number, height: number, outHeight: number): Uint8Array {
  const { bounds, coefficients, taps } = bilinearCoefficients(height, outHeight);
  const rowBytes = width * 3;
  const out = new Uint8Array(rowBytes * outHeight);
  const sums = new Float64Array(rowBytes); // exact: integers below 2^31
  for (let y = 0; y < outHeight; y++) {
    sums.fill(HALF);
    const first = bounds[y * 2]!;
    for (let k = 0, count = bounds[y * 2 + 1]!; k < count; k++) {
      const weight = coefficients[y * taps + k]!;
      if (weight === 0) continue; // enlarging: the third tap of each output row weighs nothing
      const from = (first + k) * rowBytes;
      for (let i = 0; i < rowBytes; i++) sums[i] = sums[i]! + src[from + i]! * weight;
    }
    const o = y * rowBytes;
    for (let i = 0; i < rowBytes; i++) out[o + i] = clip8(sums[i]!);
  }
  return out;
}

function clip8(value: number): number {
  if (value <= 0) return 0;
  const v = value >> PRECISION_BITS; // value < 2^31: 255 · 2^22 plus rounding
  return v > 255 ? 255 : v;
}

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter (support 1). */
function bilinearCoefficients(inSize: number, outSize: number): { bounds: Int32Array; coefficients: Int32Array; taps: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const coefficients = new Int32Array(outSize * taps);
  const weights = new Float64Array(taps);
  const inverse = 1 / filterScale;
  for (let n = 0; n < outSize; n++) {
    const center = (n + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    let total = 0;
    for (let k = 0; k < count; k++) {
      const d = Math.abs((k + first - center + 0.5) * inverse);
      weights[k] = d < 1 ? 1 - d : 0;
      total += weights[k]!;
    }
    for (let k = 0; k < count; k++) {
      const w = total !== 0 ? weights[k]! / total : weights[k]!;
      coefficients[n * taps + k] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[n * 2] = first;
    bounds[n * 2 + 1] = count;
  }
  return { bounds, coefficients, taps };
}
