import { test } from "node:test";
import assert from "node:assert/strict";
import { phi3vHdLayout, phi3vHdSize, phi3vImageTokens } from "./image-tokens.ts";

// The worked table of docs/VISION.md "Image token formula": [width, height, numCrops, tokens, padded HD width, height].
const TABLE: ReadonlyArray<readonly [number, number, number, number, number, number]> = [
  [1900, 1069, 16, 2353, 1680, 1008],
  [1900, 1069, 4, 757, 672, 672],
  [1069, 1900, 16, 2377, 1008, 1680],
  [1069, 1900, 4, 757, 672, 672],
  [336, 336, 16, 2509, 1344, 1344],
  [336, 336, 4, 757, 672, 672],
  [100, 100, 16, 2509, 1344, 1344],
  [1024, 1024, 16, 2509, 1344, 1344],
  [640, 480, 16, 1921, 1344, 1008],
  [640, 480, 4, 757, 672, 672],
  [1920, 1080, 16, 2353, 1680, 1008],
  [1280, 720, 16, 2353, 1680, 1008],
  [4000, 3000, 16, 1921, 1344, 1008],
  [4000, 3000, 4, 757, 672, 672],
  // transformers.js' test: 1280×640 at 16 crops → image_sizes [1008, 1680].
  [1280, 640, 16, 2353, 1680, 1008],
];

test("token counts and padded HD sizes reproduce the reference table", () => {
  for (const [width, height, numCrops, tokens, hdWidth, hdHeight] of TABLE) {
    const label = `${width}×${height} @${numCrops}`;
    assert.equal(phi3vImageTokens(width, height, numCrops), tokens, label);
    assert.deepEqual(phi3vHdSize(width, height, numCrops), { width: hdWidth, height: hdHeight }, label);
  }
});

test("a portrait image is transposed for the HD transform: its padding goes left and right", () => {
  const portrait = phi3vHdLayout(1069, 1900, 16);
  const landscape = phi3vHdLayout(1900, 1069, 16);
  assert.equal(portrait.transposed, true);
  assert.equal(landscape.transposed, false);
  // 336·5 = 1680 along the long side, int(1680 / (1900/1069)) = 945 along the short one, padded to 1008.
  assert.deepEqual(
    { w: landscape.resizedWidth, h: landscape.resizedHeight, left: landscape.left, top: landscape.top },
    { w: 1680, h: 945, left: 0, top: 31 },
  );
  assert.deepEqual(
    { w: portrait.resizedWidth, h: portrait.resizedHeight, left: portrait.left, top: portrait.top },
    { w: 945, h: 1680, left: 31, top: 0 },
  );
  // The formula counts separators per tile row, so the same tiles cost more stacked than side by side.
  assert.equal(phi3vImageTokens(1069, 1900, 16) - phi3vImageTokens(1900, 1069, 16), 2 * 12);
});

test("the crop grid never exceeds numCrops tiles, and the padding split puts the odd row at the bottom", () => {
  for (const numCrops of [1, 2, 4, 9, 12, 16, 25]) {
    for (const [width, height] of [[1, 1], [7, 3000], [3000, 7], [1900, 1069], [1069, 1900], [333, 335], [5000, 4999]] as const) {
      const layout = phi3vHdLayout(width, height, numCrops);
      const tiles = (layout.width / 336) * (layout.height / 336);
      assert.ok(Number.isInteger(layout.width / 336) && Number.isInteger(layout.height / 336), `${width}×${height}`);
      assert.ok(tiles >= 1 && tiles <= numCrops, `${width}×${height} @${numCrops}: ${tiles} tiles`);
      const padX = layout.width - layout.resizedWidth;
      const padY = layout.height - layout.resizedHeight;
      assert.equal(layout.left, Math.floor(padX / 2));
      assert.equal(layout.top, Math.floor(padY / 2));
      assert.ok(layout.transposed ? padY === 0 : padX === 0);
    }
  }
});

test("the scale loop compares in floating point as the reference does (ratio exactly at a grid boundary)", () => {
  // 2:1 at 16 crops: scale 5 needs ceil(5/2)·5 = 15 ≤ 16, scale 6 needs 18: 1680 × 840 → padded 1680 × 1008.
  assert.deepEqual(phi3vHdSize(2000, 1000, 16), { width: 1680, height: 1008 });
  // 4:1 at 16: scale 8 → 2688 × 672 exactly, no padding.
  assert.deepEqual(phi3vHdLayout(4000, 1000, 16), {
    transposed: false, resizedWidth: 2688, resizedHeight: 672, width: 2688, height: 672, left: 0, top: 0,
  });
  assert.equal(phi3vImageTokens(4000, 1000, 16), (2 * 8 + 1) * 144 + 1 + 3 * 12);
});

test("an extreme aspect ratio keeps at least one row instead of failing like the reference", () => {
  assert.deepEqual(phi3vHdLayout(6000, 1, 16), {
    transposed: false, resizedWidth: 5376, resizedHeight: 1, width: 5376, height: 336, left: 0, top: 167,
  });
  assert.equal(phi3vImageTokens(6000, 1, 16), (16 + 1) * 144 + 1 + 2 * 12);
});

test("bad dimensions or crop counts are programming errors", () => {
  assert.throws(() => phi3vImageTokens(0, 10, 16), RangeError);
  assert.throws(() => phi3vImageTokens(10, 1.5, 16), RangeError);
  assert.throws(() => phi3vImageTokens(10, 10, 0), RangeError);
});
