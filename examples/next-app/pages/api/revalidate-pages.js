// POST /api/revalidate-pages?path=/ssg — on-demand ISR for the pages router.
export default async function handler(req, res) {
  const path = req.query.path || '/ssg'
  await res.revalidate(path)
  res.json({ revalidated: path, instance: process.env.FLEETCACHE_DEMO_INSTANCE })
}
