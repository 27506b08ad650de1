/**
 * A request's image, from its `image_url` part to what a vision engine takes: the bytes (a `data:`
 * URL, or an `http(s)` URL where the operator allows them), decoded and preprocessed for the
 * deployment's `num_crops` (docs/VISION.md "Preprocessing", "Image limits", "Image URLs"). Every
 * problem with the image is an INVALID_IMAGE error naming the part.
 */
import { AppError } from "../errors/app-error.ts";
import type { CancelSignal } from "../lib/cancellation.ts";
import { parseImageDataUrl } from "../vision/data-url.ts";
import { fetchImage } from "../vision/image-fetch.ts";
import { ImageError } from "../vision/image-error.ts";
import { preprocessPhi3vImage, type PreprocessedImage } from "../vision/phi3v-preprocess.ts";
import type { ChatImage } from "./chat-command.ts";

/** How a vision deployment takes images. */
export interface ImageSettings {
  /** HD crops per image (Phi-3/3.5-vision `num_crops`; 16 matches Azure's documented usage). */
  numCrops: number;
  /** Largest image, in bytes (decoded from base64, or downloaded). */
  maxBytes: number;
  /** Largest image, in decoded pixels (width × height): decompression bombs stop here. */
  maxPixels: number;
  /** `http(s)` image URLs: undefined = refused (`--allow-image-urls` off). */
  urls: { timeoutMs: number; allowPrivateAddresses: boolean } | undefined;
}

/** The image preprocessed, with the time each step took. */
export interface LoadedImage extends PreprocessedImage {
  /** Time to download an `http(s)` image, ms (0 for a data URL). */
  fetchMs: number;
}

export async function loadChatImage(image: ChatImage, settings: ImageSettings, signal: CancelSignal | undefined): Promise<LoadedImage> {
  try {
    const started = performance.now();
    const source = await imageBytes(image, settings, signal);
    const fetchMs = source.fetched ? performance.now() - started : 0;
    const prepared = await preprocessPhi3vImage(source.bytes, source.declaredMime, { numCrops: settings.numCrops, maxPixels: settings.maxPixels });
    return Object.assign(prepared, { fetchMs });
  } catch (error) {
    if (error instanceof ImageError) throw invalidImage(image, error.reason, error.message);
    throw error;
  }
}

async function imageBytes(image: ChatImage, settings: ImageSettings, signal: CancelSignal | undefined): Promise<{ bytes: Buffer; declaredMime: string | undefined; fetched: boolean }> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(image.url)?.[1]?.toLowerCase();
  if (scheme === "data") return { ...parseImageDataUrl(image.url, settings.maxBytes), fetched: false };
  if (scheme === "http" || scheme === "https") {
    if (!settings.urls) {
      throw invalidImage(image, "image_urls_disabled", "Image URLs are not enabled on this server; send the image inline as a data URL (data:image/jpeg;base64,…).");
    }
    const controller = new AbortController();
    const forward = () => controller.abort(signal?.reason);
    if (signal?.aborted) forward();
    else signal?.addEventListener("abort", forward, { once: true });
    try {
      const fetched = await fetchImage(image.url, { maxBytes: settings.maxBytes, ...settings.urls }, controller.signal);
      return { ...fetched, fetched: true };
    } finally {
      signal?.removeEventListener("abort", forward);
    }
  }
  throw invalidImage(image, "invalid_image_url", "The image URL must be a data URL (data:image/…;base64,…)" + (settings.urls ? " or an http(s) URL." : "."));
}

function invalidImage(image: ChatImage, type: string, message: string): AppError {
  // The URL itself is not echoed: a data URL can be megabytes.
  return new AppError("INVALID_IMAGE", message, { param: "messages", details: [{ type, loc: [...image.loc, "image_url", "url"], msg: message }] });
}
