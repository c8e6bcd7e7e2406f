import { stamp } from '../../../lib/data'
// A short lifetime, so the e2e suite can watch MISS → HIT → STALE → HIT by time.
export const revalidate = 2
export async function generateStaticParams() {
  return []
}
export default async function Short({ params }) {
  const { id } = await params
  return <main><h1>Short-lived {id}</h1><p id="stamp">{stamp()}</p></main>
}
