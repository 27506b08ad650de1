import assert from "node:assert/strict";
import { test } from "node:test";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { ONNX_OPSET, OnnxGraphBuilder, f32Tensor, float, i64Tensor } from "./onnx-writer.ts";

const { onnx } = onnxProto;

/** y = LeakyRelu(x @ W + b) (a float attribute) with a symbolic batch dim, and count = Range(0, steps). */
function affineModel(options: { unusedInitializer?: boolean } = {}): Uint8Array {
  const g = new OnnxGraphBuilder("affine");
  const x = g.input("x", "float32", ["batch", 2]);
  const steps = g.input("steps", "int64", [1]);
  g.output("y", "float32", ["batch", 3]);
  g.output("count", "int64", ["n"]);
  const w = g.initializer("w", f32Tensor([2, 3], [1, 2, 3, 4, 5, 6]));
  const b = g.initializer("b", f32Tensor([3], [0.5, -0.5, 1]));
  const sum = g.op("Add", [g.op("MatMul", [x, w]), b]);
  g.op("LeakyRelu", [sum], { alpha: float(0.25) }, { output: "y" });
  g.op("Range", [g.i64(0), g.op("Squeeze", [steps, g.i64([0])]), g.i64(1)], {}, { output: "count" });
  if (options.unusedInitializer) g.initializer("unused_i64", i64Tensor([2], [7, -9]));
  return g.toBytes("test");
}

test("a built model decodes as ONNX with opset 17 and inline raw weights", () => {
  const model = onnx.ModelProto.decode(affineModel({ unusedInitializer: true }));
  assert.equal(Number(model.opsetImport[0]?.version), ONNX_OPSET);
  assert.deepEqual(model.graph?.input?.map((i) => i.name), ["x", "steps"]);
  assert.equal(model.graph?.input?.[0]?.type?.tensorType?.shape?.dim?.[0]?.dimParam, "batch");
  const unused = model.graph?.initializer?.find((t) => t.name === "unused_i64");
  assert.ok(unused?.rawData);
  const raw = unused.rawData;
  assert.deepEqual([...new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))], [7n, -9n]);
});

test("onnxruntime runs a built model: float and int attributes, symbolic dims, named outputs", async () => {
  const session = await ort.InferenceSession.create(affineModel());
  const out = await session.run({
    x: new ort.Tensor("float32", Float32Array.from([1, 1, -1, 0]), [2, 2]),
    steps: new ort.Tensor("int64", BigInt64Array.from([3n]), [1]),
  });
  // row 0: [1+4, 2+5, 3+6] + b = [5.5, 6.5, 10]; row 1: [-1, -2, -3] + b = [-0.5, -2.5, -2] → ×0.25 when negative
  assert.deepEqual([...(out.y!.data as Float32Array)], [5.5, 6.5, 10, -0.125, -0.625, -0.5]);
  assert.deepEqual([...(out.count!.data as BigInt64Array)], [0n, 1n, 2n]);
  await session.release();
});

test("equal constants are shared; duplicate names and non-integer int attributes are refused", () => {
  const g = new OnnxGraphBuilder("dup");
  assert.equal(g.i64([1, 2]), g.i64([1, 2]));
  assert.notEqual(g.i64([1, 2]), g.f32([1, 2]));
  g.input("a", "float32", [1]);
  assert.throws(() => g.initializer("a", f32Tensor([1], [0])), /duplicate value name a/);
  assert.throws(() => g.op("Foo", ["a"], { alpha: 0.5 }), /wrap floats with float\(\)/);
  assert.throws(() => f32Tensor([2, 2], [1, 2, 3]), /needs 4 values, got 3/);
});
