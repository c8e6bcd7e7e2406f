export async function getStaticProps() {
  return { props: { stamp: `${new Date().toISOString()} #${Math.random().toString(36).slice(2, 8)}` }, revalidate: 30 }
}
export default function Ssg({ stamp }) {
  return <main><h1>pages router ISR</h1><p id="stamp">{stamp}</p></main>
}
