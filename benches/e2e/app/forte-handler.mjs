// @fortedigital/nextjs-cache-handler 3.3, set up as its README's Quick Start says.
import { CacheHandler } from '@fortedigital/nextjs-cache-handler'
import createRedisHandler from '@fortedigital/nextjs-cache-handler/redis-strings'
import { createClient } from 'redis'

const client = createClient({ url: process.env.REDIS_URL })
await client.connect()

CacheHandler.onCreation(() => ({
  handlers: [createRedisHandler({ client })],
}))

export default CacheHandler
