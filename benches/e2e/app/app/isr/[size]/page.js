// ISR pages of about 5 KB, 135 KB and 1 MB of HTML (prerendered, revalidated hourly).
export const revalidate = 3600
export const dynamicParams = false

const BYTES = { '5k': 5_000, '135k': 135_000, '1m': 1_000_000 }

export function generateStaticParams() {
  return Object.keys(BYTES).map((size) => ({ size }))
}

export default async function Page({ params }) {
  const { size } = await params
  const rows = []
  let bytes = 0
  for (let i = 0; bytes < BYTES[size]; i++) {
    const text = `Item ${i}: ${'fleet cache '.repeat(1 + (i % 7))}`
    rows.push(<li key={i}>{text}</li>)
    bytes += text.length + 9
  }
  return (
    <main>
      <h1>{size}</h1>
      <ul>{rows}</ul>
    </main>
  )
}
