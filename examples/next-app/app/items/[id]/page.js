import { stamp } from '../../../lib/data'
export const revalidate = 3600
export async function generateStaticParams() {
  return [{ id: '1' }, { id: '2' }]
}
export default async function Item({ params }) {
  const { id } = await params
  return <main><h1>Item {id}</h1><p id="stamp">{stamp()}</p></main>
}
