export async function getStaticProps() {
  return { notFound: true, revalidate: 60 }
}
export default function Nf() {
  return null
}
