import { stamp } from '../../../lib/data'
// A short lifetime, so the e2e suite can watch MISS → HIT → STALE → HIT by time.
export const revalidate = 2
// One prerendered param: with `[]`, Next 15.5 records `fallback: false` for the route and answers
// 404 for every other id (with its built-in cache as with any handler).
export async function generateStaticParams() {
  return [{ id: '0' }]
}
export default async function Short({ params }) {
  const { id } = await params
  return <main><h1>Short-lived {id}</h1><p id="stamp">{stamp()}</p></main>
}
