// A server action calling updateTag('uc-items'): read-your-writes here, the feed everywhere else.
import { Suspense } from 'react'
import { connection } from 'next/server'
import { cacheLife, cacheTag, updateTag } from 'next/cache'
import { stamp } from '../stamp'

async function listing() {
  'use cache'
  cacheTag('uc-items')
  cacheLife({ stale: 30, revalidate: 3600, expire: 86400 })
  return stamp('listing')
}

async function refresh() {
  'use server'
  updateTag('uc-items')
}

async function Listing() {
  await connection()
  return <p id="stamp">{await listing()}</p>
}

export default function Actions() {
  return (
    <main>
      <h1>Server action with updateTag("uc-items")</h1>
      <Suspense fallback={<p>loading</p>}>
        <Listing />
      </Suspense>
      <form action={refresh}>
        <button type="submit">updateTag("uc-items")</button>
      </form>
    </main>
  )
}
