/** The test picture both vision benchmarks use. */
import sharp from "sharp";

/** A bar chart on white with a gradient band, grid lines and sensor-like noise: deterministic. */
export async function chartJpeg(width: number, height: number): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  let seed = 12345;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let rgb: [number, number, number] = [255, 255, 255];
      const bar = Math.floor(x / (width / 12));
      const barTop = height * (0.15 + 0.6 * (((bar * 37) % 11) / 11));
      if (y > height * 0.85) rgb = [40 + (x * 180) / width, 90, 200 - (x * 150) / width];
      else if (x % (width / 12) > width / 60 && y > barTop) rgb = [30 + bar * 18, 120 - bar * 5, 220 - bar * 15];
      else if (y % 60 === 0 || x % 80 === 0) rgb = [200, 200, 200];
      seed = (seed * 1103515245 + 12345) >>> 0;
      const noise = ((seed >>> 24) % 9) - 4;
      data.set(rgb.map((v) => Math.max(0, Math.min(255, Math.round(v + noise)))), (y * width + x) * 3);
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}
