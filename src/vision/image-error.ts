/**
 * Why an image in a request could not be used. The messages are written for API users (the caller maps
 * an `ImageError` to a 400 response), so they name the problem and, where it helps, the limit.
 */
export type ImageErrorReason =
  /** Not a `data:image/…;base64,…` URL. */
  | "invalid_data_url"
  /** The data part is not valid base64. */
  | "invalid_base64"
  /** The decoded bytes exceed the byte limit. */
  | "too_large"
  /** Not a JPEG, PNG, WebP or GIF image (by the data URL's MIME type or by the bytes). */
  | "unsupported_format"
  /** The data URL's MIME type names a different format from the one the bytes are in. */
  | "mime_mismatch"
  /** The image's width × height exceeds the pixel limit (checked from the header, before decoding). */
  | "too_many_pixels"
  /** The bytes start like a supported image but cannot be decoded (truncated, damaged). */
  | "corrupt"
  /** An `http(s)` image URL could not be fetched (DNS, connection, HTTP status, timeout, too many redirects). */
  | "fetch_failed"
  /** An `http(s)` image URL (or a redirect) leads to a loopback, private, link-local or otherwise non-public address. */
  | "forbidden_address";

export class ImageError extends Error {
  override readonly name = "ImageError";

  constructor(
    readonly reason: ImageErrorReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** `12,345,678 bytes (11.8 MiB)`: exact, and readable at a glance. */
export function formatBytes(bytes: number): string {
  return `${bytes.toLocaleString("en-US")} bytes (${(bytes / 1024 / 1024).toFixed(1)} MiB)`;
}

/** `9000×9000 pixels (81.0 MP)`. */
export function formatPixels(width: number, height: number): string {
  return `${width}×${height} pixels (${formatMegapixels(width * height)})`;
}

export function formatMegapixels(pixels: number): string {
  return `${(pixels / 1e6).toFixed(1)} MP`;
}
