// A 'use cache' result (cacheHandlers.default), tagged and with a cacheLife profile, read at
// request time inside a Suspense boundary (the static shell is prerendered; this part is not).
import { Suspense } from 'react'
import { connection } from 'next/server'
import { cacheLife, cacheTag } from 'next/cache'
import { stamp } from '../../stamp'

async function item(id) {
  'use cache'
  cacheTag('uc-items', `uc-item-${id}`)
  cacheLife({ stale: 30, revalidate: 3600, expire: 86400 })
  return stamp(`item ${id}`)
}

async function Item({ params }) {
  await connection()
  const { id } = await params
  return <p id="stamp">{await item(id)}</p>
}

export default function Page({ params }) {
  return (
    <main>
      <h1>'use cache'</h1>
      <Suspense fallback={<p>loading</p>}>
        <Item params={params} />
      </Suspense>
    </main>
  )
}
