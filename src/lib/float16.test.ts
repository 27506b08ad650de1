import { test } from "node:test";
import assert from "node:assert/strict";
import { float16ToFloat32, float32ToFloat16, fromFloat16Bits, toFloat16Bits } from "./float16.ts";

test("float16 bits of known values, both ways", () => {
  const cases: [number, number][] = [[0, 0x0000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [2 ** -24, 0x0001], [2 ** -14, 0x0400], [Infinity, 0x7c00], [-Infinity, 0xfc00]];
  for (const [value, bits] of cases) {
    assert.equal(toFloat16Bits(value), bits, `${value}`);
    assert.equal(fromFloat16Bits(bits), value, `0x${bits.toString(16)}`);
  }
  assert.equal(toFloat16Bits(1e6), 0x7c00, "overflow is infinity");
  assert.ok(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN))));
  assert.equal(toFloat16Bits(1 + 2 ** -11), 0x3c00, "a tie rounds to even");
  assert.equal(toFloat16Bits(1 + 3 * 2 ** -11), 0x3c02, "a tie rounds to even (up)");
});

test("arrays round-trip within half precision", () => {
  const input = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10);
  const half = new Uint16Array(input.length);
  const back = new Float32Array(input.length);
  float32ToFloat16(input, half);
  float16ToFloat32(half, back);
  for (let i = 0; i < input.length; i++) assert.ok(Math.abs(back[i]! - input[i]!) <= Math.abs(input[i]!) * 2 ** -11 + 2 ** -24, `${input[i]} → ${back[i]}`);
});
