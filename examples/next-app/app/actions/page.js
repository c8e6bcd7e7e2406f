import { updateTag } from 'next/cache'
import { DATA_URL } from '../../lib/data'
export const revalidate = 3600
async function refresh() {
  'use server'
  updateTag('posts')
}
export default async function Actions() {
  const res = await fetch(`${DATA_URL}/posts`, { next: { tags: ['posts'], revalidate: 3600 } })
  const data = await res.json()
  return (
    <main>
      <h1>Server action with updateTag("posts")</h1>
      <p id="stamp">{data.stamp}</p>
      <form action={refresh}><button type="submit">updateTag("posts")</button></form>
    </main>
  )
}
