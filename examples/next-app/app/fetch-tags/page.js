import { DATA_URL } from '../../lib/data'
export const revalidate = 3600
export default async function FetchTags() {
  const res = await fetch(`${DATA_URL}/posts`, { next: { tags: ['posts'], revalidate: 3600 } })
  const data = await res.json()
  return <main><h1>Posts (fetch tagged "posts")</h1><p id="stamp">{data.stamp}</p></main>
}
