import { stamp } from '../../lib/data'
export async function getStaticPaths() {
  return { paths: [{ params: { id: '1' } }], fallback: 'blocking' }
}
export async function getStaticProps({ params }) {
  return { props: { id: params.id, stamp: stamp() }, revalidate: 3600 }
}
export default function Post({ id, stamp }) {
  return <main><h1>Post {id}</h1><p id="stamp">{stamp}</p></main>
}
