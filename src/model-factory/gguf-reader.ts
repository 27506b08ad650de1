/**
 * A small GGUF (v2/v3) reader: header, metadata and tensor infos, plus tensor data decoding for
 * the types `ggml-quants.ts` knows. It exists to verify what `gguf-writer.ts` produces
 * independently of llama.cpp, and to compare against reference vocab files.
 *
 * Only the header is read to parse metadata (starting with 1 MiB and doubling while the header
 * runs past what was read), so inspecting a 2 GB model is cheap.
 */
import { open, type FileHandle } from "node:fs/promises";
import { decodeTensorData, ggmlByteSize, type GgmlType } from "./ggml-quants.ts";
import {
  GgufValueType,
  tensorElementCount,
  type GgufBigIntKind,
  type GgufNumberKind,
  type GgufValue,
  type GgufValueKind,
} from "./gguf-writer.ts";

/** A tensor as described in the file header. */
export interface GgufTensorInfo {
  name: string;
  /** ggml dims, innermost first. */
  dims: number[];
  type: number;
  /** Offset relative to the start of the data section. */
  offset: number;
}

/** Parsed header of a GGUF file. */
export interface GgufFileInfo {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the (aligned) data section. */
  dataOffset: number;
}

const KIND_BY_ID = new Map<number, GgufValueKind>(
  Object.entries(GgufValueType).map(([kind, id]) => [id, kind as GgufValueKind]),
);

/** Thrown internally when the header extends past the bytes read so far. */
class NeedMoreBytes extends Error {}

/** Reads and parses a GGUF header. */
export async function readGgufInfo(file: string | URL): Promise<GgufFileInfo> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    for (let want = Math.min(size, 1 << 20); ; want = Math.min(size, want * 2)) {
      const bytes = await readRange(fh, 0, want);
      try {
        return parseHeader(bytes);
      } catch (error) {
        if (!(error instanceof NeedMoreBytes) || want === size) throw error;
      }
    }
  } finally {
    await fh.close();
  }
}

/** Reads one tensor's data and decodes it to floats. */
export async function readTensorValues(file: string | URL, info: GgufFileInfo, name: string): Promise<Float32Array> {
  const tensor = info.tensors.find((t) => t.name === name);
  if (!tensor) throw new Error(`no tensor ${name}`);
  const elements = tensorElementCount(tensor.dims);
  const type = tensor.type as GgmlType;
  const fh = await open(file, "r");
  try {
    const bytes = await readRange(fh, info.dataOffset + tensor.offset, ggmlByteSize(type, elements));
    return decodeTensorData(type, bytes, 0, elements);
  } finally {
    await fh.close();
  }
}

/** Convenience: a metadata value's payload, or undefined if the key is absent. */
export function metadataValue(info: GgufFileInfo, key: string): GgufValue["value"] | undefined {
  return info.metadata.get(key)?.value;
}

async function readRange(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${position + done}`);
    done += bytesRead;
  }
  return buf;
}

function parseHeader(bytes: Uint8Array): GgufFileInfo {
  const r = new ByteReader(bytes);
  if (r.u32() !== 0x46554747) throw new Error("not a GGUF file (bad magic)");
  const version = r.u32();
  if (version !== 2 && version !== 3) throw new Error(`unsupported GGUF version ${version}`);
  const tensorCount = r.u64();
  const kvCount = r.u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string();
    metadata.set(key, readValue(r, kindOf(r.u32())));
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string();
    const dims = Array.from({ length: r.u32() }, () => r.u64());
    tensors.push({ name, dims, type: r.u32(), offset: r.u64() });
  }
  const alignmentValue = metadata.get("general.alignment");
  const alignment = alignmentValue?.kind === "uint32" ? alignmentValue.value : 32;
  const dataOffset = Math.ceil(r.position / alignment) * alignment;
  return { version, metadata, tensors, alignment, dataOffset };
}

function kindOf(id: number): GgufValueKind {
  const kind = KIND_BY_ID.get(id);
  if (kind === undefined) throw new Error(`unknown GGUF value type ${id}`);
  return kind;
}

function readValue(r: ByteReader, kind: GgufValueKind): GgufValue {
  switch (kind) {
    case "bool":
      return { kind, value: r.u8() !== 0 };
    case "string":
      return { kind, value: r.string() };
    case "uint64":
    case "int64":
      return { kind, value: r.bigScalar(kind) };
    case "array":
      return readArray(r);
    default:
      return { kind, value: r.scalar(kind) };
  }
}

function readArray(r: ByteReader): GgufValue {
  const itemKind = kindOf(r.u32());
  const length = r.u64();
  switch (itemKind) {
    case "array":
      throw new Error("nested GGUF arrays are not supported");
    case "string":
      return { kind: "array", itemKind, value: Array.from({ length }, () => r.string()) };
    case "bool":
      return { kind: "array", itemKind, value: Array.from({ length }, () => r.u8() !== 0) };
    case "uint64":
    case "int64":
      return { kind: "array", itemKind, value: Array.from({ length }, () => r.bigScalar(itemKind)) };
    default:
      return { kind: "array", itemKind, value: Array.from({ length }, () => r.scalar(itemKind)) };
  }
}

/** Little-endian cursor that throws NeedMoreBytes instead of reading past the buffer. */
class ByteReader {
  private readonly view: DataView;
  position = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private take(n: number): number {
    if (this.position + n > this.bytes.length) throw new NeedMoreBytes();
    const at = this.position;
    this.position += n;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.take(1));
  }

  u32(): number {
    return this.view.getUint32(this.take(4), true);
  }

  /** A u64 used as a count/offset; must fit in a JS number. */
  u64(): number {
    const value = this.view.getBigUint64(this.take(8), true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`u64 ${value} too large`);
    return Number(value);
  }

  scalar(kind: GgufNumberKind): number {
    const v = this.view;
    switch (kind) {
      case "uint8": return v.getUint8(this.take(1));
      case "int8": return v.getInt8(this.take(1));
      case "uint16": return v.getUint16(this.take(2), true);
      case "int16": return v.getInt16(this.take(2), true);
      case "uint32": return v.getUint32(this.take(4), true);
      case "int32": return v.getInt32(this.take(4), true);
      case "float32": return v.getFloat32(this.take(4), true);
      case "float64": return v.getFloat64(this.take(8), true);
    }
  }

  bigScalar(kind: GgufBigIntKind): bigint {
    const at = this.take(8);
    return kind === "uint64" ? this.view.getBigUint64(at, true) : this.view.getBigInt64(at, true);
  }

  string(): string {
    const length = this.u64();
    const at = this.take(length);
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + at, length).toString("utf8");
  }
}
