import { stamp } from '../../../../lib/data'
// A cached route handler.
export const revalidate = 3600
export async function generateStaticParams() {
  return [{ id: 'build' }]
}
export async function GET(request, { params }) {
  const { id } = await params
  return Response.json({ id, stamp: stamp() })
}
