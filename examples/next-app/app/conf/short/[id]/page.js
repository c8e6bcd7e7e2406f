import { stamp } from '../../../../lib/data'
// An ISR page with a short lifetime, so time matters within a scenario (the suite's steps are
// 1.2 s apart: a copy is fresh two steps later and stale three steps later).
export const revalidate = 3
export async function generateStaticParams() {
  return [{ id: 'build' }]
}
export default async function ConfShort({ params }) {
  const { id } = await params
  return <main><h1>Short {id}</h1><p id="stamp">{stamp()}</p></main>
}
