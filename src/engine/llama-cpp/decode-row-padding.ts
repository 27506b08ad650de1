/**
 * ggml's repacked CPU matrix kernels (q4_0 and others, repack.cpp `forward_mul_mat_one_chunk`) multiply
 * activation rows in blocks of 4 and every row left over on its own, each a further pass over the weights:
 * a micro-batch of 39 rows costs 9 blocks and 3 single-row passes (docs/ENGINE-NOTES.md "Decode rows and
 * prompt chunks"). Elsewhere a block is no cheaper than its rows. The batch strategy (decode-gate.ts) cuts
 * prompt chunks by it, and `decodeRowPadding` fills decode batches to it.
 */
export const ROW_BLOCK = 4;

/** Rows of a micro-batch of `rows` that fall outside whole blocks (each a pass over the weights of its own). */
export function outsideBlocks(rows: number): number {
  return rows % ROW_BLOCK;
}

/**
 * How many rows to add to a native batch of decode rows (one token per sequence) on a CPU, each left-over
 * row being about as dear as a whole block (docs/ENGINE-NOTES.md "Decode rows in blocks of four"). Measured
 * on the Phi-3-mini shape (`npm run bench:decode-rows`): 2 and 3 rows cost more than 4, 7 more than 8; 5 and
 * 6 not (much) less than 8, and 1 less than 4. So a batch of 2, 3 or 7 rows is filled up to its block.
 */
export function decodeRowPadding(rows: number): number {
  const outside = outsideBlocks(rows);
  return rows === 2 || outside === ROW_BLOCK - 1 ? ROW_BLOCK - outside : 0;
}
