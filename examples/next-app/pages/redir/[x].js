export async function getStaticPaths() {
  return { paths: [], fallback: 'blocking' }
}
export async function getStaticProps({ params }) {
  return { redirect: { destination: `/ssg?from=${params.x}`, permanent: false }, revalidate: 60 }
}
export default function Redir() {
  return null
}
