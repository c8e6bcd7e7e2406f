import { stamp } from '../../lib/data'
// The differential suite's pages-router ISR page (revalidated with res.revalidate through
// /api/revalidate-pages).
export async function getStaticPaths() {
  return { paths: [{ params: { id: 'build' } }], fallback: 'blocking' }
}
export async function getStaticProps({ params }) {
  return { props: { id: params.id, stamp: stamp() }, revalidate: 3600 }
}
export default function ConfPage({ id, stamp }) {
  return <main><h1>Pages {id}</h1><p id="stamp">{stamp}</p></main>
}
