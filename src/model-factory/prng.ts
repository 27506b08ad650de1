/**
 * Small deterministic random numbers for test weights. Not cryptographic; chosen for speed,
 * because a full Phi-3-mini shape needs ~3.8 billion values.
 */

/** 32-bit FNV-1a of a string; used to derive independent per-tensor seeds from one model seed. */
export function hashString32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Seed for one named stream (e.g. a tensor) of a model seed, independent of generation order. */
export function deriveSeed(seed: number, stream: string): number {
  return hashString32(`${seed >>> 0}:${stream}`);
}

/** mulberry32: a 32-bit state PRNG with good enough statistics for random weights. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Next uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Next uniform float in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /**
   * Fills `out` with bell-shaped values of the given mean and standard deviation.
   *
   * Each value is the sum of the four bytes of one 32-bit draw (Irwin-Hall of 4 discrete
   * uniforms: mean 510, std 147.8, bounded to ±3.45 std). One PRNG call per value instead of
   * Box-Muller's log/sqrt/cos keeps the full-size model write I/O-bound rather than math-bound.
   */
  fillNormalish(out: Float32Array, std: number, mean = 0): void {
    const scale = std / BYTE_SUM_STD;
    // mulberry32 inlined with the state in a local: this loop runs billions of times for a
    // full-size model, and the method call plus field writes cost ~2x here.
    let state = this.state;
    for (let i = 0; i < out.length; i++) {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), state | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      const r = t ^ (t >>> 14);
      const sum = (r & 0xff) + ((r >>> 8) & 0xff) + ((r >>> 16) & 0xff) + ((r >>> 24) & 0xff);
      out[i] = mean + (sum - BYTE_SUM_MEAN) * scale;
    }
    this.state = state;
  }
}

const BYTE_SUM_MEAN = 510;
// sqrt(4 * (256^2 - 1) / 12): the std of a sum of four independent uniform bytes.
const BYTE_SUM_STD = Math.sqrt((4 * (256 * 256 - 1)) / 12);
