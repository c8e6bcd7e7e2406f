// Readiness probe: dynamic, never cached.
export const dynamic = 'force-dynamic'

export async function GET() {
  return new Response('ok')
}
