import { test } from "node:test";
import assert from "node:assert/strict";
import { parseImageDataUrl } from "./data-url.ts";
import { ImageError, type ImageErrorReason } from "./image-error.ts";

const BYTES = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xfe]);
const B64 = BYTES.toString("base64"); // 13 bytes: "/9j/4AAQSkZJRgAB/g==" — two padding characters

function rejects(url: string, reason: ImageErrorReason, message: RegExp, maxBytes = 1000): void {
  assert.throws(
    () => parseImageDataUrl(url, maxBytes),
    (error: unknown) => {
      assert.ok(error instanceof ImageError, String(error));
      assert.equal(error.reason, reason, error.message);
      assert.match(error.message, message);
      return true;
    },
    url.slice(0, 80),
  );
}

test("a base64 image data URL decodes to its bytes and declared type", () => {
  assert.ok(B64.endsWith("=="));
  const parsed = parseImageDataUrl(`data:image/jpeg;base64,${B64}`, 1000);
  assert.deepEqual(parsed.bytes, BYTES);
  assert.equal(parsed.declaredMime, "image/jpeg");
});

test("the MIME type is case-insensitive, image/jpg is image/jpeg, and parameters before base64 are allowed", () => {
  assert.equal(parseImageDataUrl(`DATA:Image/JPG;base64,${B64}`, 1000).declaredMime, "image/jpeg");
  assert.equal(parseImageDataUrl(`data:image/png;name=chart.png;BASE64,${B64}`, 1000).declaredMime, "image/png");
  assert.equal(parseImageDataUrl(`data:image/webp;base64,${B64}`, 1000).declaredMime, "image/webp");
  assert.equal(parseImageDataUrl(`data:image/gif;base64,${B64}`, 1000).declaredMime, "image/gif");
});

test("whitespace in the data is ignored and padding may be left out (browsers' forgiving base64)", () => {
  const wrapped = `${B64.slice(0, 8)}\r\n${B64.slice(8, 12)} \t${B64.slice(12)}\n`;
  assert.deepEqual(parseImageDataUrl(`data:image/jpeg;base64,${wrapped}`, 1000).bytes, BYTES);
  assert.deepEqual(parseImageDataUrl(`data:image/jpeg;base64,${B64.replace(/=+$/, "")}`, 1000).bytes, BYTES);
});

test("URLs that are not base64 image data URLs are refused", () => {
  rejects(`https://example.com/a.jpg`, "invalid_data_url", /must be a base64 data URL/);
  rejects(`image/jpeg;base64,${B64}`, "invalid_data_url", /must be a base64 data URL/);
  rejects(`data:image/jpeg;base64`, "invalid_data_url", /no comma/);
  rejects(`data:image/jpeg,${B64}`, "invalid_data_url", /must be base64-encoded/);
  rejects(`data:image/jpeg;charset=utf-8,${B64}`, "invalid_data_url", /must be base64-encoded/);
  rejects(`data:;base64,${B64}`, "invalid_data_url", /no media type/);
  rejects(`data:text/plain;base64,${B64}`, "unsupported_format", /"text\/plain".*image\/jpeg, image\/png, image\/webp and image\/gif/);
  rejects(`data:image/svg+xml;base64,${B64}`, "unsupported_format", /"image\/svg\+xml"/);
});

test("empty data is refused", () => {
  rejects(`data:image/png;base64,`, "invalid_data_url", /no data/);
  rejects(`data:image/png;base64, \n `, "invalid_data_url", /no data/);
});

test("characters outside the base64 alphabet are refused with their position, unlike Buffer.from", () => {
  // Buffer.from would silently skip or translate all of these.
  assert.equal(Buffer.from("ab%d", "base64").length > 0, true);
  rejects(`data:image/jpeg;base64,${B64.slice(0, 4)}%${B64.slice(4)}`, "invalid_base64", /not valid base64: it contains "%" at position 4\./);
  rejects(`data:image/jpeg;base64,ab-_cd`, "invalid_base64", /"-" at position 2/);
  rejects(`data:image/jpeg;base64,${B64.slice(0, 4)}é${B64.slice(4)}`, "invalid_base64", /"é"/);
});

test("padding is checked: only at the end, at most two, and consistent with the length", () => {
  rejects(`data:image/jpeg;base64,ab==cd==`, "invalid_base64", /'=' may only appear as padding at the end/);
  rejects(`data:image/jpeg;base64,a===`, "invalid_base64", /'=' may only appear as padding/);
  rejects(`data:image/jpeg;base64,abc==`, "invalid_base64", /padding does not match its length/);
  rejects(`data:image/jpeg;base64,abcde`, "invalid_base64", /partial byte/);
});

test("the size limit applies to the decoded bytes and is checked before decoding", () => {
  // 13 bytes: exactly at the limit passes, one byte under it fails with both sizes named.
  assert.equal(parseImageDataUrl(`data:image/jpeg;base64,${B64}`, 13).bytes.length, 13);
  rejects(`data:image/jpeg;base64,${B64}`, "too_large", /^The image is 13 bytes \(0\.0 MiB\); the limit is 12 bytes \(0\.0 MiB\)\.$/, 12);
  // 30 MB of base64 (never decoded) against a 20 MiB limit.
  const huge = "A".repeat(40_000_000);
  rejects(`data:image/png;base64,${huge}`, "too_large", /30,000,000 bytes \(28\.6 MiB\); the limit is 20,971,520 bytes \(20\.0 MiB\)/, 20 * 1024 * 1024);
});
