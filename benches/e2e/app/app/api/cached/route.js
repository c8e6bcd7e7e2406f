// A cached route handler (revalidated hourly).
export const revalidate = 3600

export async function GET() {
  return Response.json({ items: Array.from({ length: 50 }, (_, i) => ({ id: i, name: `item ${i}` })) })
}
