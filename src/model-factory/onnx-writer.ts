/**
 * A small typed builder for ONNX graphs (ai.onnx opset 17), over `onnx-proto`'s protobufjs
 * classes. Weights are stored inline as raw little-endian bytes: the test models that use it are
 * a few MB, so no external-data files are needed.
 *
 * Usage: `const g = new OnnxGraphBuilder("name")`, declare inputs/outputs, add initializers and
 * nodes (`g.op("MatMul", [a, b])` returns the new value's name), then `g.toBytes()`.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;

/** The opset every graph declares (default `ai.onnx` domain). */
export const ONNX_OPSET = 17;
/** ONNX IR version written (IR 8 = ONNX 1.10, the schema `onnx-proto` 8 ships; ORT reads it). */
export const ONNX_IR_VERSION = 8;

/** Element types the builder writes. */
export type OnnxElementType = "float32" | "int64" | "bool";

const DATA_TYPE: Record<OnnxElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** A tensor dimension: a fixed size or a symbolic name (`"batch"`). */
export type OnnxDim = number | string;

/** Node attribute values: numbers are INT when integral unless wrapped with {@link float}. */
export type OnnxAttribute = number | bigint | string | number[] | { float: number } | { floats: number[] } | OnnxTensor;

/** A constant tensor (initializer or `Constant` value). */
export interface OnnxTensor {
  type: OnnxElementType;
  dims: readonly number[];
  data: Float32Array | BigInt64Array | Uint8Array;
}

/** Marks a number attribute as FLOAT (e.g. `epsilon`), since JS numbers cannot say. */
export function float(value: number): { float: number } {
  return { float: value };
}

/** A float32 tensor. */
export function f32Tensor(dims: readonly number[], data: Float32Array | readonly number[]): OnnxTensor {
  const values = data instanceof Float32Array ? data : Float32Array.from(data);
  checkSize(dims, values.length);
  return { type: "float32", dims, data: values };
}

/** An int64 tensor (values given as numbers or bigints). */
export function i64Tensor(dims: readonly number[], data: readonly (number | bigint)[] | BigInt64Array): OnnxTensor {
  const values = data instanceof BigInt64Array ? data : BigInt64Array.from(data, (v) => BigInt(v));
  checkSize(dims, values.length);
  return { type: "int64", dims, data: values };
}

function checkSize(dims: readonly number[], length: number): void {
  const expected = dims.reduce((n, d) => n * d, 1);
  if (expected !== length) throw new Error(`tensor of dims [${dims.join(", ")}] needs ${expected} values, got ${length}`);
}

/** Builds one graph; names it generates are `<prefix>_<n>`, unique within the graph. */
export class OnnxGraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private readonly constants = new Map<string, string>();
  private counter = 0;

  constructor(private readonly graphName: string) {}

  /** Declares a graph input. */
  input(name: string, type: OnnxElementType, dims: readonly OnnxDim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Declares a graph output (produced by a node named with {@link op}'s `output` option). */
  output(name: string, type: OnnxElementType, dims: readonly OnnxDim[]): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Adds an initializer and returns its name. */
  initializer(name: string, tensor: OnnxTensor): string {
    this.claim(name);
    this.initializers.push(tensorProto(name, tensor));
    return name;
  }

  /** A scalar or 1-D int64 constant (an initializer with a generated name; equal constants are shared). */
  i64(values: number | readonly number[]): string {
    return this.constant("int64", values);
  }

  /** A scalar or 1-D float32 constant (shared like {@link i64}). */
  f32(values: number | readonly number[]): string {
    return this.constant("float32", values);
  }

  private constant(type: "int64" | "float32", values: number | readonly number[]): string {
    const key = `${type}:${JSON.stringify(values)}`;
    const known = this.constants.get(key);
    if (known !== undefined) return known;
    const list = typeof values === "number" ? [values] : values;
    const dims = typeof values === "number" ? [] : [list.length];
    const name = this.fresh(type === "int64" ? "i64" : "f32");
    this.initializers.push(tensorProto(name, type === "int64" ? i64Tensor(dims, list) : f32Tensor(dims, list)));
    this.constants.set(key, name);
    return name;
  }

  /**
   * Adds a node with one output and returns the output's name (`options.output`, or generated).
   * Pass `""` in `inputs` for an omitted optional input.
   */
  op(opType: string, inputs: readonly string[], attributes: Record<string, OnnxAttribute> = {}, options: { output?: string } = {}): string {
    return this.opMulti(opType, inputs, 1, attributes, options.output === undefined ? {} : { outputs: [options.output] })[0]!;
  }

  /** Adds a node with several outputs and returns their names. */
  opMulti(
    opType: string,
    inputs: readonly string[],
    outputCount: number,
    attributes: Record<string, OnnxAttribute> = {},
    options: { outputs?: readonly string[] } = {},
  ): string[] {
    const outputs = options.outputs ? [...options.outputs] : Array.from({ length: outputCount }, () => this.fresh(opType.toLowerCase()));
    for (const name of options.outputs ?? []) this.claim(name);
    this.nodes.push({
      opType,
      name: this.fresh(`${opType}_node`),
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attributes).map(([key, value]) => attributeProto(key, value)),
    });
    return outputs;
  }

  /** The model protobuf (IR 8, opset 17, producer "phiserve model-factory"). */
  toModel(docString = ""): onnxProto.onnx.ModelProto {
    return onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      opsetImport: [{ domain: "", version: ONNX_OPSET }],
      producerName: "phiserve model-factory",
      docString,
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
  }

  /** The serialized model. */
  toBytes(docString = ""): Uint8Array {
    return onnx.ModelProto.encode(this.toModel(docString)).finish();
  }

  private fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`ONNX graph ${this.graphName}: duplicate value name ${name}`);
    this.names.add(name);
  }
}

function valueInfo(name: string, type: OnnxElementType, dims: readonly OnnxDim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[type],
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function tensorProto(name: string, tensor: OnnxTensor): onnxProto.onnx.ITensorProto {
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  // protobufjs keeps a reference to rawData: copy so later edits of the source array cannot leak in.
  return { name, dataType: DATA_TYPE[tensor.type], dims: [...tensor.dims], rawData: bytes.slice() };
}

const ATTR = onnx.AttributeProto.AttributeType;

function attributeProto(name: string, value: OnnxAttribute): onnxProto.onnx.IAttributeProto {
  if (typeof value === "string") return { name, type: ATTR.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === "bigint") return { name, type: ATTR.INT, i: Number(value) };
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer; wrap floats with float()`);
    return { name, type: ATTR.INT, i: value };
  }
  if (Array.isArray(value)) return { name, type: ATTR.INTS, ints: value };
  if ("float" in value) return { name, type: ATTR.FLOAT, f: value.float };
  if ("floats" in value) return { name, type: ATTR.FLOATS, floats: value.floats };
  return { name, type: ATTR.TENSOR, t: tensorProto("", value) };
}
