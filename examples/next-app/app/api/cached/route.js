import { stamp } from '../../../lib/data'
export const revalidate = 30
export async function GET() {
  return Response.json({ stamp: stamp() }, { headers: { 'x-custom': 'fleetcache' } })
}
