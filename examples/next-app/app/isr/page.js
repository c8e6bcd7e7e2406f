import { stamp } from '../../lib/data'
export const revalidate = 30
export default function Isr() {
  return <main><h1>ISR page</h1><p id="stamp">{stamp()}</p><p>instance {process.env.FLEETCACHE_DEMO_INSTANCE}</p></main>
}
