/**
 * A streaming GGUF v3 writer (little-endian, default alignment 32).
 *
 * Layout (gguf-py `gguf_writer.py`, ggml `docs/gguf.md`): magic "GGUF", u32 version, u64 tensor
 * count, u64 KV count, the KVs, the tensor infos (name, n_dims, ne[] innermost first, type,
 * offset relative to the data section), zero padding to the alignment, then each tensor's data
 * at its aligned offset. The header is built in memory (it is at most a few MB, vocabularies
 * included); tensor data is generated and encoded chunk by chunk while writing, so a 2 GB model
 * never sits in memory.
 *
 * Nothing here is architecture-specific: a model family supplies metadata and tensor specs.
 */
import { open, rm, type FileHandle } from "node:fs/promises";
import { GgmlType, encodeTensorData, ggmlByteSize, ggmlTypeTraits } from "./ggml-quants.ts";

/** GGUF metadata value type ids (gguf-py `GGUFValueType`). */
export const GgufValueType = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufValueKind = keyof typeof GgufValueType;

/** Scalar kinds carried as a JS number. */
export type GgufNumberKind = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64";
/** Scalar kinds carried as a bigint (64-bit integers). */
export type GgufBigIntKind = "uint64" | "int64";

/** One metadata value, tagged with its GGUF type so it round-trips exactly. */
export type GgufValue =
  | { kind: GgufNumberKind; value: number }
  | { kind: GgufBigIntKind; value: bigint }
  | { kind: "bool"; value: boolean }
  | { kind: "string"; value: string }
  | GgufArrayValue;

/** A homogeneous GGUF array (nested arrays are legal GGUF but unused by llama.cpp; not supported). */
export type GgufArrayValue =
  | { kind: "array"; itemKind: GgufNumberKind; value: ArrayLike<number> }
  | { kind: "array"; itemKind: GgufBigIntKind; value: readonly bigint[] }
  | { kind: "array"; itemKind: "bool"; value: readonly boolean[] }
  | { kind: "array"; itemKind: "string"; value: readonly string[] };

/** Constructors for tagged metadata values, e.g. `gguf.uint32(4096)`. */
export const gguf = {
  uint32: (value: number): GgufValue => ({ kind: "uint32", value }),
  int32: (value: number): GgufValue => ({ kind: "int32", value }),
  float32: (value: number): GgufValue => ({ kind: "float32", value }),
  uint64: (value: number | bigint): GgufValue => ({ kind: "uint64", value: BigInt(value) }),
  bool: (value: boolean): GgufValue => ({ kind: "bool", value }),
  string: (value: string): GgufValue => ({ kind: "string", value }),
  stringArray: (value: readonly string[]): GgufValue => ({ kind: "array", itemKind: "string", value }),
  int32Array: (value: ArrayLike<number>): GgufValue => ({ kind: "array", itemKind: "int32", value }),
  float32Array: (value: ArrayLike<number>): GgufValue => ({ kind: "array", itemKind: "float32", value }),
};

/** One tensor to write. */
export interface GgufTensorSpec {
  /** GGUF tensor name, e.g. `blk.0.attn_qkv.weight`. */
  name: string;
  /** ggml dims, innermost (contiguous row) first: `{n_embd, n_vocab}` for PyTorch `[n_vocab, n_embd]`. */
  dims: readonly number[];
  type: GgmlType;
  /**
   * Produces the tensor's values in storage order, called once when the tensor is written.
   * Chunks must be whole quantization blocks and may reuse one buffer: each is encoded before
   * the next is requested.
   */
  data: () => Iterable<Float32Array>;
}

/** Everything that goes into a GGUF file. Map order is the KV order in the file. */
export interface GgufFileSpec {
  metadata: ReadonlyMap<string, GgufValue>;
  tensors: readonly GgufTensorSpec[];
  /** Data alignment; anything other than 32 is recorded as `general.alignment`. */
  alignment?: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
const DEFAULT_ALIGNMENT = 32;

/** Number of elements of a tensor with these dims. */
export function tensorElementCount(dims: readonly number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}

/**
 * Writes a GGUF file, generating each tensor's data as it is written. On failure the partial
 * file is removed. Returns the file size in bytes.
 */
export async function writeGguf(file: string, spec: GgufFileSpec): Promise<{ bytes: number }> {
  const alignment = spec.alignment ?? DEFAULT_ALIGNMENT;
  const layout = layoutTensors(spec.tensors, alignment);
  const header = encodeHeader(spec, layout.offsets, alignment);
  const fh = await open(file, "w");
  try {
    const sink = new FileSink(fh);
    await sink.write(header);
    for (const [i, tensor] of spec.tensors.entries()) {
      await sink.write(new Uint8Array(header.length + layout.offsets[i]! - sink.position));
      await writeTensorData(sink, tensor);
    }
    await sink.flush();
    await fh.close();
    return { bytes: sink.position };
  } catch (error) {
    await fh.close().catch(() => undefined);
    await rm(file, { force: true });
    throw error;
  }
}

/** Checks the tensors and assigns each an aligned offset within the data section. */
function layoutTensors(tensors: readonly GgufTensorSpec[], alignment: number): { offsets: number[] } {
  const names = new Set<string>();
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`duplicate tensor ${t.name}`);
    names.add(t.name);
    if (t.dims.length === 0 || t.dims.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new Error(`tensor ${t.name}: bad dims [${t.dims.join(", ")}]`);
    }
    // ggml quantizes along rows, so a row (ne0), not just the tensor, must be whole blocks.
    const { blockSize, name } = ggmlTypeTraits(t.type);
    if (t.dims[0]! % blockSize !== 0) throw new Error(`tensor ${t.name}: ne0 ${t.dims[0]} not a multiple of ${name} block ${blockSize}`);
    offsets.push(offset);
    offset = alignUp(offset + ggmlByteSize(t.type, tensorElementCount(t.dims)), alignment);
  }
  return { offsets };
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** Streams one tensor's generated values through its encoder into the sink. */
async function writeTensorData(sink: FileSink, tensor: GgufTensorSpec): Promise<void> {
  const total = tensorElementCount(tensor.dims);
  const { blockSize } = ggmlTypeTraits(tensor.type);
  let done = 0;
  let scratch = new Uint8Array(0);
  for (const chunk of tensor.data()) {
    if (chunk.length % blockSize !== 0) throw new Error(`tensor ${tensor.name}: chunk of ${chunk.length} is not whole blocks`);
    if (done + chunk.length > total) throw new Error(`tensor ${tensor.name}: generator produced more than ${total} values`);
    const bytes = ggmlByteSize(tensor.type, chunk.length);
    if (scratch.length < bytes) scratch = new Uint8Array(bytes);
    encodeTensorData(tensor.type, chunk, scratch, 0);
    await sink.write(scratch.subarray(0, bytes));
    done += chunk.length;
  }
  if (done !== total) throw new Error(`tensor ${tensor.name}: generator produced ${done} of ${total} values`);
}

/** Serializes magic, counts, KVs and tensor infos, padded to the alignment. */
function encodeHeader(spec: GgufFileSpec, offsets: readonly number[], alignment: number): Uint8Array {
  const metadata = new Map(spec.metadata);
  if (alignment !== DEFAULT_ALIGNMENT) metadata.set("general.alignment", gguf.uint32(alignment));
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(spec.tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    w.string(key);
    w.u32(GgufValueType[value.kind]);
    writeValue(w, value);
  }
  for (const [i, t] of spec.tensors.entries()) {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]!);
  }
  w.zeros(alignUp(w.length, alignment) - w.length);
  return w.bytes();
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.kind) {
    case "bool":
      return w.u8(v.value ? 1 : 0);
    case "string":
      return w.string(v.value);
    case "uint64":
    case "int64":
      return w.scalar(v.kind, v.value);
    case "array":
      return writeArray(w, v);
    default:
      return w.scalar(v.kind, v.value);
  }
}

function writeArray(w: ByteWriter, v: GgufArrayValue): void {
  w.u32(GgufValueType[v.itemKind]);
  w.u64(v.value.length);
  switch (v.itemKind) {
    case "string":
      for (const s of v.value) w.string(s);
      return;
    case "bool":
      for (const b of v.value) w.u8(b ? 1 : 0);
      return;
    case "uint64":
    case "int64":
      for (const n of v.value) w.scalar(v.itemKind, n);
      return;
    default:
      for (let i = 0; i < v.value.length; i++) w.scalar(v.itemKind, v.value[i]!);
  }
}

const SCALAR_BYTES: Record<GgufNumberKind | GgufBigIntKind, number> = {
  uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, float64: 8, uint64: 8, int64: 8,
};

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  u8(n: number): void {
    this.scalar("uint8", n);
  }

  u32(n: number): void {
    this.scalar("uint32", n);
  }

  u64(n: number): void {
    this.scalar("uint64", BigInt(n));
  }

  /** Writes one scalar; the Buffer methods range-check, so a bad value throws instead of wrapping. */
  scalar(kind: GgufNumberKind | GgufBigIntKind, value: number | bigint): void {
    const n = SCALAR_BYTES[kind];
    this.ensure(n);
    const b = this.buf;
    const at = this.length;
    switch (kind) {
      case "uint8": b.writeUInt8(Number(value), at); break;
      case "int8": b.writeInt8(Number(value), at); break;
      case "uint16": b.writeUInt16LE(Number(value), at); break;
      case "int16": b.writeInt16LE(Number(value), at); break;
      case "uint32": b.writeUInt32LE(Number(value), at); break;
      case "int32": b.writeInt32LE(Number(value), at); break;
      case "float32": b.writeFloatLE(Number(value), at); break;
      case "float64": b.writeDoubleLE(Number(value), at); break;
      case "uint64": b.writeBigUInt64LE(BigInt(value), at); break;
      case "int64": b.writeBigInt64LE(BigInt(value), at); break;
    }
    this.length += n;
  }

  /** GGUF string: u64 byte length + UTF-8 bytes, no terminator. */
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.length);
    this.length += bytes.length;
  }

  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** Coalesces many small writes (1-D tensors, padding) into large file writes. */
class FileSink {
  private readonly buf = Buffer.alloc(4 << 20);
  private used = 0;
  /** Bytes accepted so far (written or buffered). */
  position = 0;

  constructor(private readonly fh: FileHandle) {}

  async write(data: Uint8Array): Promise<void> {
    this.position += data.length;
    if (this.used + data.length > this.buf.length) await this.flush();
    if (data.length >= this.buf.length) {
      await this.writeFully(data);
      return;
    }
    this.buf.set(data, this.used);
    this.used += data.length;
  }

  async flush(): Promise<void> {
    if (this.used === 0) return;
    await this.writeFully(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  private async writeFully(data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done);
      done += bytesWritten;
    }
  }
}
