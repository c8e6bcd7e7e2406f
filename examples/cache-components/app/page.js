export default function Home() {
  return (
    <main>
      <h1>Cache Components on fleetcache</h1>
      <ul>
        <li><a href="/uc/1">'use cache'</a> (tag uc-items)</li>
        <li><a href="/remote/1">'use cache: remote'</a> (tag uc-remote)</li>
        <li><a href="/actions">a server action calling updateTag('uc-items')</a></li>
      </ul>
    </main>
  )
}
