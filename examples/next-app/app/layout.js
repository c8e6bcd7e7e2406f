import { VARIANT } from '../lib/data'
export const metadata = { title: 'fleetcache example' }
export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: 'system-ui', margin: '2rem' }}>{children}{VARIANT ? <footer>build <span id="variant">{VARIANT}</span></footer> : null}</body>
    </html>
  )
}
