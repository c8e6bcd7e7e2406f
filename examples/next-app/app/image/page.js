import Image from 'next/image'
export default function Img() {
  return <main><h1>next/image</h1><Image src="/dot.png" alt="dot" width={32} height={32} /></main>
}
