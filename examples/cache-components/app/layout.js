export const metadata = { title: 'fleetcache: Cache Components' }
export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  )
}
