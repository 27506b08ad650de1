/** The median of `values` (the lower middle one when their number is even), as the benchmarks print it. */
export const median = (values: readonly number[]): number => [...values].sort((x, y) => x - y)[Math.floor((values.length - 1) / 2)]!;
