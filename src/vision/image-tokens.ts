/**
 * Phi-3-vision / Phi-3.5-vision image geometry and token cost (docs/VISION.md "Image token formula"),
 * following Microsoft's `processing_phi3_v.py` (`HD_transform`, `calc_hd_transform_size`,
 * `calc_num_image_tokens_from_image_size`) step for step, float operations included.
 */

/** Side of one CLIP crop in pixels. */
export const PHI3V_CROP_SIZE = 336;
/** Feature rows per 336×336 crop: 24×24 CLIP patches pooled 2×2 → 12×12. */
export const PHI3V_TOKENS_PER_CROP = 144;
/** Row separator tokens per row of 12×12 features. */
const SEPARATORS_PER_CROP_ROW = 12;

/** Where the resized image sits inside the padded HD image, in the image's own orientation. */
export interface Phi3vHdLayout {
  /** Whether the reference transposes the image (width < height) before resizing. */
  transposed: boolean;
  /** Size the image is resized to (before padding). */
  resizedWidth: number;
  resizedHeight: number;
  /** The padded HD image: multiples of 336 on both sides. */
  width: number;
  height: number;
  /** Offset of the resized image inside the padded one (white around it). */
  left: number;
  top: number;
}

/**
 * The reference HD transform's geometry for an image of `width`×`height` (after EXIF orientation):
 * transpose when width < height; `ratio = w/h`; the largest `scale` with `scale·ceil(scale/ratio) ≤ numCrops`;
 * resize to `new_w = 336·scale`, `new_h = int(new_w/ratio)`; pad the height to a multiple of 336 with
 * `int(pad/2)` rows on top; transpose back.
 *
 * One deviation: the reference fails (PIL cannot resize to height 0) when `new_h` truncates to 0, which
 * happens for aspect ratios beyond 336·scale : 1 (e.g. 6000×1); here `new_h` is at least 1, so such an
 * image is one row of tiles.
 */
export function phi3vHdLayout(width: number, height: number, numCrops: number): Phi3vHdLayout {
  assertDimensions(width, height, numCrops);
  const transposed = width < height;
  const [w, h] = transposed ? [height, width] : [width, height];
  const ratio = w / h;
  let scale = 1;
  while (scale * Math.ceil(scale / ratio) <= numCrops) scale += 1;
  scale -= 1;
  const newW = scale * PHI3V_CROP_SIZE;
  const newH = Math.max(1, Math.trunc(newW / ratio));
  const paddedH = Math.ceil(newH / PHI3V_CROP_SIZE) * PHI3V_CROP_SIZE;
  const pad = Math.trunc((paddedH - newH) / 2);
  return transposed
    ? { transposed, resizedWidth: newH, resizedHeight: newW, width: paddedH, height: newW, left: pad, top: 0 }
    : { transposed, resizedWidth: newW, resizedHeight: newH, width: newW, height: paddedH, left: 0, top: pad };
}

/** The padded HD image size (multiples of 336) for an image of `width`×`height`: the encoder's `image_sizes` row is `[height, width]`. */
export function phi3vHdSize(width: number, height: number, numCrops: number): { width: number; height: number } {
  const { width: hdWidth, height: hdHeight } = phi3vHdLayout(width, height, numCrops);
  return { width: hdWidth, height: hdHeight };
}

/**
 * Prompt positions an image takes: `((H/336)·(W/336) + 1)·144 + 1 + (H/336 + 1)·12` for the padded HD
 * size H×W — 144 per tile and for the global view, 12 row separators per row of tiles and for the
 * global view's rows, and one separator between the global view and the tiles.
 */
export function phi3vImageTokens(width: number, height: number, numCrops: number): number {
  const hd = phi3vHdSize(width, height, numCrops);
  const rows = hd.height / PHI3V_CROP_SIZE;
  const columns = hd.width / PHI3V_CROP_SIZE;
  return (rows * columns + 1) * PHI3V_TOKENS_PER_CROP + 1 + (rows + 1) * SEPARATORS_PER_CROP_ROW;
}

function assertDimensions(width: number, height: number, numCrops: number): void {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`image dimensions must be positive integers, got ${width}×${height}`);
  }
  if (!Number.isSafeInteger(numCrops) || numCrops < 1) {
    throw new RangeError(`numCrops must be a positive integer, got ${numCrops}`);
  }
}
