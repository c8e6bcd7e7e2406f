import { stamp } from '../lib/data'
export async function getStaticProps() {
  return { props: { stamp: stamp() }, revalidate: 30 }
}
export default function Ssg({ stamp }) {
  return <main><h1>pages router ISR</h1><p id="stamp">{stamp}</p></main>
}
