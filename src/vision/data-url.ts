/**
 * Parses the `data:image/…;base64,…` URLs of OpenAI-style `image_url` content parts (docs/VISION.md
 * "Image limits"). No network: anything but a base64 image data URL is refused.
 */
import { ImageError, formatBytes } from "./image-error.ts";

/** The image MIME types accepted, with the alias some clients send (`image/jpg`). */
const SUPPORTED_MIME: ReadonlyMap<string, string> = new Map([
  ["image/jpeg", "image/jpeg"],
  ["image/jpg", "image/jpeg"],
  ["image/png", "image/png"],
  ["image/webp", "image/webp"],
  ["image/gif", "image/gif"],
]);

export const SUPPORTED_IMAGE_TYPES = "image/jpeg, image/png, image/webp and image/gif";

/** ASCII whitespace as the WHATWG Infra standard defines it (TAB, LF, FF, CR, SPACE). */
const HAS_WHITESPACE = /[\t\n\f\r ]/;
const ALL_WHITESPACE = /[\t\n\f\r ]+/g;
/** Base64 (RFC 4648 section 4 alphabet) with up to two trailing `=`. */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** The first character that can never appear in base64 data. */
const NOT_BASE64 = /[^A-Za-z0-9+/=\t\n\f\r ]/;

export interface ImageDataUrl {
  /** The decoded image bytes. */
  bytes: Buffer;
  /** The MIME type the URL declares, lower-cased, `image/jpg` normalised to `image/jpeg`. */
  declaredMime: string;
}

/**
 * Parses `data:<mime>[;param=value…];base64,<data>`. The MIME type must be one of
 * {@link SUPPORTED_IMAGE_TYPES} (case-insensitive); `maxBytes` bounds the decoded size and is checked
 * from the base64 length before anything is decoded.
 *
 * The data is decoded as browsers decode data URLs (WHATWG Infra "forgiving-base64 decode"): ASCII
 * whitespace is ignored (so line-wrapped base64 from MIME encoders works), the `=` padding may be
 * omitted, and any other character outside the standard alphabet (`-`, `_`, `%`, a `=` that is not
 * at the end) makes the data invalid. Percent-encoded data is not decoded.
 *
 * @throws ImageError `invalid_data_url`, `unsupported_format`, `invalid_base64` or `too_large`.
 */
export function parseImageDataUrl(url: string, maxBytes: number): ImageDataUrl {
  if (!/^data:/i.test(url)) {
    throw new ImageError(
      "invalid_data_url",
      "The image URL must be a base64 data URL such as data:image/jpeg;base64,… (other URLs are not fetched).",
    );
  }
  const comma = url.indexOf(",");
  if (comma < 0) {
    throw new ImageError("invalid_data_url", "The image data URL has no comma between its header and its data.");
  }
  const params = url.slice(5, comma).split(";");
  const mediaType = (params[0] ?? "").trim().toLowerCase();
  if (params.length < 2 || params[params.length - 1]!.trim().toLowerCase() !== "base64") {
    throw new ImageError(
      "invalid_data_url",
      "The image data URL must be base64-encoded: data:<type>;base64,<data>.",
    );
  }
  if (mediaType === "") {
    throw new ImageError("invalid_data_url", `The image data URL has no media type; use one of ${SUPPORTED_IMAGE_TYPES}.`);
  }
  const declaredMime = SUPPORTED_MIME.get(mediaType);
  if (declaredMime === undefined) {
    throw new ImageError(
      "unsupported_format",
      `The image data URL has type ${quote(mediaType)}; supported types are ${SUPPORTED_IMAGE_TYPES}.`,
    );
  }
  const bytes = decodeBase64(url, comma + 1, maxBytes);
  return { bytes, declaredMime };
}

function decodeBase64(url: string, start: number, maxBytes: number): Buffer {
  let data = url.slice(start);
  if (HAS_WHITESPACE.test(data)) data = data.replace(ALL_WHITESPACE, "");
  if (data.length === 0) throw new ImageError("invalid_data_url", "The image data URL has no data after the comma.");
  if (!BASE64.test(data)) {
    const raw = url.slice(start);
    const bad = NOT_BASE64.exec(raw);
    const detail = bad
      ? `it contains ${quote(bad[0])} at position ${bad.index}`
      : "a '=' may only appear as padding at the end";
    throw new ImageError("invalid_base64", `The image data is not valid base64: ${detail}.`);
  }
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
  if (padding > 0 && data.length % 4 !== 0) {
    throw new ImageError("invalid_base64", "The image data is not valid base64: its '=' padding does not match its length.");
  }
  const symbols = data.length - padding;
  if (symbols % 4 === 1) {
    throw new ImageError("invalid_base64", "The image data is not valid base64: it ends with a partial byte.");
  }
  const decodedBytes = Math.floor((symbols * 6) / 8);
  if (decodedBytes > maxBytes) {
    throw new ImageError("too_large", `The image is ${formatBytes(decodedBytes)}; the limit is ${formatBytes(maxBytes)}.`);
  }
  const bytes = Buffer.from(data, "base64");
  if (bytes.length !== decodedBytes) {
    // The checks above leave Buffer nothing to skip or guess; a mismatch would be a bug here, not bad input.
    throw new Error(`base64 decoded to ${bytes.length} bytes, expected ${decodedBytes}`);
  }
  return bytes;
}

/** A value from the request, quoted and shortened for an error message. */
function quote(value: string): string {
  const shown = value.length > 60 ? `${value.slice(0, 60)}…` : value;
  return JSON.stringify(shown);
}
