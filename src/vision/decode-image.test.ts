import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { decodeImage, sniffImageFormat } from "./decode-image.ts";
import { ImageError, type ImageErrorReason } from "./image-error.ts";

const LIMITS = { maxPixels: 50e6 };

type Rgb = readonly [number, number, number];

/** A width×height image, left half `left`, right half `right`, as raw RGB for sharp. */
function halves(width: number, height: number, left: Rgb, right: Rgb) {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(x < width / 2 ? left : right, (y * width + x) * 3);
  }
  return sharp(data, { raw: { width, height, channels: 3 } });
}

function pixel(image: { data: Buffer; width: number }, x: number, y: number): number[] {
  const i = (y * image.width + x) * 3;
  return [...image.data.subarray(i, i + 3)];
}

function near(actual: number[], expected: Rgb, tolerance: number, label: string): void {
  assert.ok(actual.every((v, c) => Math.abs(v - expected[c]!) <= tolerance), `${label}: ${actual} vs ${expected}`);
}

async function rejects(promise: Promise<unknown>, reason: ImageErrorReason, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ImageError, String(error));
    assert.equal(error.reason, reason, error.message);
    assert.match(error.message, message);
    return true;
  });
}

/** A PNG whose header claims width×height but whose pixel data is a few bytes: only a header read can pass it. */
function pngHeaderOnly(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    const typed = Buffer.concat([Buffer.from(type, "ascii"), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([length, typed, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.alloc(16))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const RED: Rgb = [230, 20, 30];
const BLUE: Rgb = [20, 40, 220];

test("JPEG, PNG, WebP and GIF decode to RGB at their size, with their format", async () => {
  const cases = [
    ["jpeg", "image/jpeg", await halves(64, 48, RED, BLUE).jpeg({ quality: 95 }).toBuffer(), 12],
    ["png", "image/png", await halves(64, 48, RED, BLUE).png().toBuffer(), 0],
    ["webp", "image/webp", await halves(64, 48, RED, BLUE).webp({ lossless: true }).toBuffer(), 0],
    ["gif", "image/gif", await halves(64, 48, RED, BLUE).gif().toBuffer(), 8],
  ] as const;
  for (const [format, mime, bytes, tolerance] of cases) {
    assert.equal(sniffImageFormat(bytes), format);
    const image = await decodeImage(bytes, mime, LIMITS);
    assert.equal(image.format, format);
    assert.deepEqual([image.width, image.height, image.data.length], [64, 48, 64 * 48 * 3], format);
    near(pixel(image, 8, 24), RED, tolerance, `${format} left`);
    near(pixel(image, 56, 24), BLUE, tolerance, `${format} right`);
  }
});

test("transparency is flattened onto white", async () => {
  const rgba = Buffer.alloc(4 * 2 * 4);
  rgba.set([0, 0, 0, 0], 0); // fully transparent black → white
  rgba.set([255, 0, 0, 255], 4); // opaque red stays red
  rgba.set([0, 0, 255, 128], 8); // half-transparent blue → pale blue
  const bytes = await sharp(rgba, { raw: { width: 4, height: 2, channels: 4 } }).png().toBuffer();
  const image = await decodeImage(bytes, "image/png", LIMITS);
  assert.deepEqual(pixel(image, 0, 0), [255, 255, 255]);
  assert.deepEqual(pixel(image, 1, 0), [255, 0, 0]);
  near(pixel(image, 2, 0), [127, 127, 255], 1, "half-transparent blue");
  // A transparent GIF too.
  const gif = await sharp(rgba, { raw: { width: 4, height: 2, channels: 4 } }).gif().toBuffer();
  assert.deepEqual(pixel(await decodeImage(gif, "image/gif", LIMITS), 0, 0), [255, 255, 255]);
});

test("an animated GIF gives its first frame", async () => {
  const first = await sharp({ create: { width: 10, height: 30, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
  const second = await sharp({ create: { width: 10, height: 30, channels: 3, background: { r: 0, g: 0, b: 255 } } }).png().toBuffer();
  const gif = await sharp([first, second], { join: { animated: true } }).gif().toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const image = await decodeImage(gif, "image/gif", LIMITS);
  assert.deepEqual([image.width, image.height], [10, 30]);
  assert.deepEqual(pixel(image, 5, 29), [255, 0, 0]);
});

test("the EXIF orientation is applied: orientation 6 (rotate 90° clockwise) swaps the sides", async () => {
  const bytes = await halves(40, 20, RED, BLUE).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  const image = await decodeImage(bytes, undefined, LIMITS);
  assert.deepEqual([image.width, image.height], [20, 40]);
  // Stored left half (red) is the top once turned clockwise.
  near(pixel(image, 10, 5), RED, 12, "top");
  near(pixel(image, 10, 35), BLUE, 12, "bottom");
});

test("greyscale, palette, 16-bit and CMYK images become 8-bit sRGB", async () => {
  const grey = await sharp(Buffer.alloc(16, 90), { raw: { width: 4, height: 4, channels: 1 } }).toColourspace("b-w").png().toBuffer();
  assert.equal((await sharp(grey).metadata()).channels, 1);
  assert.deepEqual(pixel(await decodeImage(grey, "image/png", LIMITS), 1, 1), [90, 90, 90]);

  const palette = await halves(8, 4, RED, BLUE).png({ palette: true }).toBuffer();
  assert.equal((await sharp(palette).metadata()).isPalette, true);
  near(pixel(await decodeImage(palette, "image/png", LIMITS), 1, 1), RED, 4, "palette");

  const deep = await halves(8, 4, RED, BLUE).toColourspace("rgb16").png().toBuffer();
  assert.equal((await sharp(deep).metadata()).depth, "ushort");
  near(pixel(await decodeImage(deep, "image/png", LIMITS), 1, 1), RED, 1, "16-bit");

  const cmyk = await halves(8, 4, RED, BLUE).toColourspace("cmyk").jpeg({ quality: 100 }).toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, "cmyk");
  const decoded = await decodeImage(cmyk, "image/jpeg", LIMITS);
  assert.equal(decoded.data.length, 8 * 4 * 3);
  near(pixel(decoded, 1, 1), RED, 40, "CMYK (converted through an ICC profile, so only roughly equal)");
});

test("a truncated JPEG is corrupt, not silently grey", async () => {
  const noise = Buffer.alloc(200 * 150 * 3);
  for (let i = 0, s = 7; i < noise.length; i++) noise[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  const bytes = await sharp(noise, { raw: { width: 200, height: 150, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  await rejects(decodeImage(bytes.subarray(0, Math.floor(bytes.length * 0.6)), "image/jpeg", LIMITS), "corrupt", /^The JPEG image is truncated or damaged/);
});

test("a damaged header is corrupt", async () => {
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#888" } }).png().toBuffer();
  const damaged = Buffer.from(png);
  damaged.fill(0x41, 8, 40);
  await rejects(decodeImage(damaged, "image/png", LIMITS), "corrupt", /^The PNG image could not be read/);
});

test("bytes that are no supported image are refused before sharp sees them", async () => {
  await rejects(decodeImage(Buffer.from("definitely not an image"), undefined, LIMITS), "unsupported_format", /not a JPEG, PNG, WebP or GIF/);
  await rejects(decodeImage(Buffer.alloc(0), "image/png", LIMITS), "unsupported_format", /empty/);
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
  await rejects(decodeImage(svg, undefined, LIMITS), "unsupported_format", /not a JPEG, PNG, WebP or GIF/);
  const tiff = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#888" } }).tiff().toBuffer();
  await rejects(decodeImage(tiff, undefined, LIMITS), "unsupported_format", /not a JPEG, PNG, WebP or GIF/);
});

test("a declared type that differs from the bytes is a mismatch", async () => {
  const jpeg = await halves(8, 8, RED, BLUE).jpeg().toBuffer();
  await rejects(decodeImage(jpeg, "image/png", LIMITS), "mime_mismatch", /^The image's type is given as image\/png, but its bytes are a JPEG image\.$/);
  await rejects(decodeImage(jpeg, "image/bmp", LIMITS), "unsupported_format", /"image\/bmp" is not supported/);
  // The alias and a Content-Type's parameters are fine.
  assert.equal((await decodeImage(jpeg, "image/jpg", LIMITS)).format, "jpeg");
  assert.equal((await decodeImage(jpeg, "Image/JPEG; charset=binary", LIMITS)).format, "jpeg");
});

test("a 10000×10000 image is refused from its header against a 50 MP limit, without decoding it", async () => {
  const bomb = pngHeaderOnly(10_000, 10_000);
  assert.ok(bomb.length < 200);
  await rejects(decodeImage(bomb, "image/png", LIMITS), "too_many_pixels", /^The image is 10000×10000 pixels \(100\.0 MP\); the limit is 50\.0 MP\.$/);
  // Under a limit it would pass, the same header is decoded — and its missing pixels make it corrupt.
  await rejects(decodeImage(pngHeaderOnly(100, 100), "image/png", LIMITS), "corrupt", /truncated or damaged/);
});
