// A 'use cache: remote' result (cacheHandlers.remote): on a fleet, the shared store is the point.
import { Suspense } from 'react'
import { connection } from 'next/server'
import { cacheLife, cacheTag } from 'next/cache'
import { stamp } from '../../stamp'

async function remote(id) {
  'use cache: remote'
  cacheTag('uc-remote')
  cacheLife('hours')
  return stamp(`remote ${id}`)
}

async function Remote({ params }) {
  await connection()
  const { id } = await params
  return <p id="stamp">{await remote(id)}</p>
}

export default function Page({ params }) {
  return (
    <main>
      <h1>'use cache: remote'</h1>
      <Suspense fallback={<p>loading</p>}>
        <Remote params={params} />
      </Suspense>
    </main>
  )
}
