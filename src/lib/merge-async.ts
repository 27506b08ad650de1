/**
 * Interleaves several async iterables, yielding each item as soon as its source produces it.
 * If the consumer stops early, every source is closed (return()).
 */
export async function* mergeAsync<T>(sources: readonly AsyncIterable<T>[]): AsyncGenerator<T> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<T> }>>();
  const pull = (index: number) => pending.set(index, iterators[index]!.next().then((result) => ({ index, result })));
  iterators.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values());
      if (result.done) pending.delete(index);
      else {
        pull(index);
        yield result.value;
      }
    }
  } finally {
    await Promise.allSettled([...pending.keys()].map((i) => iterators[i]!.return?.()));
  }
}
