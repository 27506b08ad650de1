/**
 * ggml tensor element types and their byte encodings (F32, F16, Q8_0, Q4_0).
 *
 * The quantizers follow the algorithm of ggml's reference functions (`quantize_row_q4_0_ref`,
 * `quantize_row_q8_0_ref` in `ggml-quants.c`), mirroring their float32 arithmetic with
 * `Math.fround` so results should match bit for bit (not checked against ggml's own output).
 * Decoders are the inverse (`dequantize_row_*`) and exist for tests and the reader.
 */

/** ggml tensor type ids as stored in GGUF tensor infos (gguf-py `GGMLQuantizationType`). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q8_0: 8,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

/** Layout of one ggml type: `blockSize` elements are stored in `blockBytes` bytes. */
export interface GgmlTypeTraits {
  name: string;
  blockSize: number;
  blockBytes: number;
}

const TRAITS: Record<GgmlType, GgmlTypeTraits> = {
  [GgmlType.F32]: { name: "F32", blockSize: 1, blockBytes: 4 },
  [GgmlType.F16]: { name: "F16", blockSize: 1, blockBytes: 2 },
  [GgmlType.Q4_0]: { name: "Q4_0", blockSize: 32, blockBytes: 18 },
  [GgmlType.Q8_0]: { name: "Q8_0", blockSize: 32, blockBytes: 34 },
};

/** Returns block layout of a type; throws for a type id this module cannot encode. */
export function ggmlTypeTraits(type: number): GgmlTypeTraits {
  const traits = TRAITS[type as GgmlType];
  if (!traits) throw new Error(`unsupported ggml type ${type}`);
  return traits;
}

/** Bytes taken by `elements` values of `type` (elements must be a whole number of blocks). */
export function ggmlByteSize(type: GgmlType, elements: number): number {
  const { blockSize, blockBytes } = ggmlTypeTraits(type);
  if (elements % blockSize !== 0) {
    throw new Error(`${TRAITS[type].name} needs a multiple of ${blockSize} elements, got ${elements}`);
  }
  return (elements / blockSize) * blockBytes;
}

// Scratch views for reinterpreting a float32's bits without allocating.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE float32 -> binary16 bits, round-to-nearest-even (what F16C / ggml's `GGML_FP32_TO_FP16` do). */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): shift the full 24-bit significand into 10 bits.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    return sign | roundShift(full, shift);
  }
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | (((e << 10) | (mant >>> 13)) + roundBit(mant, 13));
}

/** `value >> shift` rounded to nearest, ties to even. */
function roundShift(value: number, shift: number): number {
  return (value >>> shift) + roundBit(value, shift);
}

/** 1 when dropping the low `shift` bits of `value` must round up (nearest, ties to even). */
function roundBit(value: number, shift: number): number {
  const rem = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half) return 1;
  return rem === half ? (value >>> shift) & 1 : 0;
}

/** binary16 bits -> number. */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Encodes `src` as `type` into `dst` at `offset`; returns the number of bytes written.
 * `src.length` must be a whole number of blocks of the type.
 */
export function encodeTensorData(type: GgmlType, src: Float32Array, dst: Uint8Array, offset: number): number {
  const bytes = ggmlByteSize(type, src.length);
  if (offset + bytes > dst.length) throw new RangeError("encode target too small");
  switch (type) {
    case GgmlType.F32:
      // Typed arrays use host byte order; GGUF is little-endian, as is every platform Node ships for.
      dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), offset);
      break;
    case GgmlType.F16:
      encodeF16(src, dst, offset);
      break;
    case GgmlType.Q4_0:
      encodeQ4_0(src, dst, offset);
      break;
    case GgmlType.Q8_0:
      encodeQ8_0(src, dst, offset);
      break;
  }
  return bytes;
}

/** Decodes `elements` values of `type` from `src` at `offset` back to floats. */
export function decodeTensorData(type: GgmlType, src: Uint8Array, offset: number, elements: number): Float32Array {
  const out = new Float32Array(elements);
  const bytes = ggmlByteSize(type, elements);
  if (offset + bytes > src.length) throw new RangeError("decode source too small");
  const view = new DataView(src.buffer, src.byteOffset + offset, bytes);
  switch (type) {
    case GgmlType.F32:
      for (let i = 0; i < elements; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case GgmlType.F16:
      for (let i = 0; i < elements; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
      break;
    case GgmlType.Q4_0:
      decodeQ4_0(view, out);
      break;
    case GgmlType.Q8_0:
      decodeQ8_0(view, out);
      break;
  }
  return out;
}

function encodeF16(src: Float32Array, dst: Uint8Array, offset: number): void {
  for (let i = 0; i < src.length; i++) {
    const h = f32ToF16(src[i]!);
    dst[offset + 2 * i] = h & 0xff;
    dst[offset + 2 * i + 1] = h >>> 8;
  }
}

/**
 * Q4_0: per block of 32, d = (value of largest magnitude) / -8, q = trunc(x/d + 8.5) clamped
 * to 15, so the extreme value maps exactly to q = 0 and the grid is d*(q-8). Byte j holds
 * x[j] in its low nibble and x[j+16] in its high nibble. `Math.fround` mirrors C float math.
 */
function encodeQ4_0(src: Float32Array, dst: Uint8Array, offset: number): void {
  const fr = Math.fround;
  for (let b = 0, o = offset; b < src.length; b += 32, o += 18) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = src[b + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d !== 0 ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    dst[o] = h & 0xff;
    dst[o + 1] = h >>> 8;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(src[b + j]! * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(src[b + 16 + j]! * id) + 8.5)));
      dst[o + 2 + j] = q0 | (q1 << 4);
    }
  }
}

/** Q8_0: per block of 32, d = max|x| / 127, q = round-half-away(x/d) as int8. */
function encodeQ8_0(src: Float32Array, dst: Uint8Array, offset: number): void {
  const fr = Math.fround;
  for (let b = 0, o = offset; b < src.length; b += 32, o += 34) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(src[b + j]!));
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    dst[o] = h & 0xff;
    dst[o + 1] = h >>> 8;
    for (let j = 0; j < 32; j++) {
      const x = fr(src[b + j]! * id);
      // C roundf rounds halves away from zero; Math.round would round -2.5 to -2.
      const q = x < 0 ? -Math.round(-x) : Math.round(x);
      dst[o + 2 + j] = q & 0xff;
    }
  }
}

function decodeQ4_0(view: DataView, out: Float32Array): void {
  for (let b = 0, o = 0; b < out.length; b += 32, o += 18) {
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < 16; j++) {
      const byte = view.getUint8(o + 2 + j);
      out[b + j] = d * ((byte & 0x0f) - 8);
      out[b + 16 + j] = d * ((byte >>> 4) - 8);
    }
  }
}

function decodeQ8_0(view: DataView, out: Float32Array): void {
  for (let b = 0, o = 0; b < out.length; b += 32, o += 34) {
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < 32; j++) out[b + j] = d * view.getInt8(o + 2 + j);
  }
}
