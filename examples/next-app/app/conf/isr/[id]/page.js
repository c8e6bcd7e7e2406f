import { stamp } from '../../../../lib/data'
// The differential suite's pages (__test__/e2e/conformance.mjs): a scenario's pages carry its id
// (`<scenario>~<n>`), so scenarios run side by side on the same servers without touching each other.
// An ISR page rendered at request time.
export const revalidate = 3600
// One prerendered id: with `[]`, Next 15.5 records `fallback: false` and answers 404 for the rest.
export async function generateStaticParams() {
  return [{ id: 'build' }]
}
export default async function ConfIsr({ params }) {
  const { id } = await params
  return <main><h1>ISR {id}</h1><p id="stamp">{stamp()}</p></main>
}
