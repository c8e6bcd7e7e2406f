// The benches' one timing loop: `fn(i)` (async) `iters` times after a warm-up, five batches,
// the median batch's ns per op.
export async function measure(fn, iters) {
  for (let i = 0; i < Math.min(iters, 2000); i++) await fn(i)
  const batches = []
  for (let b = 0; b < 5; b++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iters; i++) await fn(i)
    batches.push(Number(process.hrtime.bigint() - t0) / iters)
  }
  batches.sort((a, b) => a - b)
  return batches[2]
}
