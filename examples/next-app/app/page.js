import Link from 'next/link'
export const revalidate = 60
const links = ['/isr', '/fetch-tags', '/cached-fn', '/items/1', '/items/2', '/api/cached', '/actions', '/image', '/ssg', '/posts/1', '/redir/x', '/nf']
export default function Home() {
  return (
    <main>
      <h1>fleetcache example</h1>
      <p>Rendered on instance <b>{process.env.FLEETCACHE_DEMO_INSTANCE || '?'}</b></p>
      <ul>{links.map((l) => <li key={l}><Link href={l} prefetch={false}>{l}</Link></li>)}</ul>
    </main>
  )
}
