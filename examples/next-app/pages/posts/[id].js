export async function getStaticPaths() {
  return { paths: [{ params: { id: '1' } }], fallback: 'blocking' }
}
export async function getStaticProps({ params }) {
  return { props: { id: params.id, stamp: `${new Date().toISOString()} #${Math.random().toString(36).slice(2, 8)}` }, revalidate: 3600 }
}
export default function Post({ id, stamp }) {
  return <main><h1>Post {id}</h1><p id="stamp">{stamp}</p></main>
}
