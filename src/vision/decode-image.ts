/**
 * Decodes an untrusted image to 8-bit sRGB pixels with sharp (libvips) (docs/VISION.md "Image limits").
 * Only JPEG, PNG, WebP and GIF are accepted, recognised by their leading bytes before libvips sees them,
 * so none of libvips' other loaders (SVG, PDF, TIFF, HEIF, …) ever parses request data. The pixel limit
 * is checked from the header before anything is decoded.
 */
import sharp from "sharp";
import { ImageError, formatMegapixels, formatPixels } from "./image-error.ts";

export type ImageFormat = "jpeg" | "png" | "webp" | "gif";

const FORMAT_NAMES: Readonly<Record<ImageFormat, string>> = { jpeg: "JPEG", png: "PNG", webp: "WebP", gif: "GIF" };

const MIME_FORMATS: ReadonlyMap<string, ImageFormat> = new Map([
  ["image/jpeg", "jpeg"],
  ["image/jpg", "jpeg"],
  ["image/png", "png"],
  ["image/webp", "webp"],
  ["image/gif", "gif"],
]);

export interface DecodedImage {
  /** Interleaved RGB, 3 bytes per pixel, row-major, `width × height × 3` bytes. */
  data: Buffer;
  /** Size after EXIF orientation. */
  width: number;
  height: number;
  format: ImageFormat;
}

export interface DecodeImageOptions {
  /** Largest width × height accepted; larger images are refused from their header, undecoded. */
  maxPixels: number;
}

/**
 * Decodes `bytes` to RGB: the EXIF orientation applied, transparency flattened onto white, greyscale,
 * palette, CMYK and 16-bit images converted to 8-bit sRGB, and only the first frame of an animation.
 * `declaredMime` (the data URL's type, when there is one) must name the format the bytes are in.
 * Every failure is an {@link ImageError}; nothing from sharp escapes.
 */
export async function decodeImage(
  bytes: Buffer,
  declaredMime: string | undefined,
  options: DecodeImageOptions,
): Promise<DecodedImage> {
  const format = sniffImageFormat(bytes);
  if (declaredMime !== undefined) checkDeclaredMime(declaredMime, format);
  const name = FORMAT_NAMES[format];

  let width: number;
  let height: number;
  try {
    const metadata = await sharp(bytes, { failOn: "truncated" }).metadata();
    if (metadata.format !== format) throw new Error(`libvips reads the image as ${metadata.format}`);
    // `autoOrient` holds the size once the EXIF orientation is applied; GIF/WebP heights are one frame's.
    width = metadata.autoOrient.width;
    height = metadata.autoOrient.height;
  } catch (error) {
    throw new ImageError("corrupt", `The ${name} image could not be read: its header is damaged.`, { cause: error });
  }
  if (width * height > options.maxPixels) {
    throw new ImageError(
      "too_many_pixels",
      `The image is ${formatPixels(width, height)}; the limit is ${formatMegapixels(options.maxPixels)}.`,
    );
  }

  try {
    const { data, info } = await sharp(bytes, {
      failOn: "truncated",
      limitInputPixels: Math.max(1, Math.floor(options.maxPixels)),
      pages: 1,
    })
      .rotate()
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .removeAlpha()
      .toColourspace("srgb")
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`decoded to ${info.channels} channels, ${data.length} bytes`);
    }
    return { data, width: info.width, height: info.height, format };
  } catch (error) {
    throw new ImageError(
      "corrupt",
      `The ${name} image is truncated or damaged and could not be decoded.`,
      { cause: error },
    );
  }
}

/** The format by the file's leading bytes (its signature), or an `unsupported_format` error. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat {
  if (bytes.length === 0) throw new ImageError("unsupported_format", "The image is empty.");
  if (startsWith(bytes, 0, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(bytes, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(bytes, 0, ascii("GIF87a")) || startsWith(bytes, 0, ascii("GIF89a"))) return "gif";
  if (startsWith(bytes, 0, ascii("RIFF")) && startsWith(bytes, 8, ascii("WEBP"))) return "webp";
  throw new ImageError("unsupported_format", "The image is not a JPEG, PNG, WebP or GIF file.");
}

function checkDeclaredMime(declaredMime: string, format: ImageFormat): void {
  // A Content-Type may carry parameters (`image/jpeg; charset=binary`): only the type counts.
  const mime = (declaredMime.split(";")[0] ?? "").trim().toLowerCase();
  const declared = MIME_FORMATS.get(mime);
  if (declared === undefined) {
    throw new ImageError(
      "unsupported_format",
      `The image type ${JSON.stringify(mime.slice(0, 60))} is not supported; use JPEG, PNG, WebP or GIF.`,
    );
  }
  if (declared !== format) {
    throw new ImageError(
      "mime_mismatch",
      `The image's type is given as ${mime}, but its bytes are a ${FORMAT_NAMES[format]} image.`,
    );
  }
}

function startsWith(bytes: Uint8Array, offset: number, prefix: readonly number[]): boolean {
  if (bytes.length < offset + prefix.length) return false;
  return prefix.every((byte, i) => bytes[offset + i] === byte);
}

function ascii(text: string): number[] {
  return Array.from(text, (ch) => ch.charCodeAt(0));
}
