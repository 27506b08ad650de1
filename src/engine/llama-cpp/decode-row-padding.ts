/**
 * How many rows to add to a native batch of decode rows (one token per sequence) on a CPU: ggml's
 * repacked kernels multiply rows in blocks of 4 and every row left over on its own, each such row about
 * as dear as a whole block (docs/ENGINE-NOTES.md "Decode rows in blocks of four"). Measured on the
 * Phi-3-mini shape (`npm run bench:decode-rows`): 2 and 3 rows cost more than 4, 7 more than 8; 5 and
 * 6 not (much) less than 8, and 1 less than 4. So a batch of 2, 3 or 7 rows is filled up to its block.
 */
export function decodeRowPadding(rows: number): number {
  if (rows === 2 || rows % 4 === 3) return 4 - (rows % 4);
  return 0;
}
