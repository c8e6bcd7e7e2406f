// A realistic APP_PAGE entry: a product-listing page of tens of KB of HTML, its RSC payload, and
// segments (the `/_full` segment is the same bytes as rscData, as Next sends it).
let seed = 42
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
const words = 'alpine barrel cobalt dune ember fjord granite harbor indigo juniper kestrel lagoon meadow nectar orchid prairie quartz raven saffron tundra umber velvet willow xenon yarrow zephyr ' +
  'lamp chair table shelf kettle blanket mirror vase candle clock rug sofa desk stool bench basket'
const vocab = words.split(' ')
const word = () => vocab[Math.floor(rand() * vocab.length)]
const sentence = (n) => Array.from({ length: n }, word).join(' ')

export function realisticPage({ htmlBytes = 60_000, rscBytes = 30_000 } = {}) {
  seed = 42
  let html = '<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/><title>Catalogue</title><link rel="stylesheet" href="/_next/static/css/app.css"/></head><body><main class="grid">'
  let i = 0
  while (html.length < htmlBytes) {
    const title = `${word()} ${word()}`
    html += `<article class="card" data-id="${1000 + i}"><a href="/products/${1000 + i}"><img alt="${title}" src="/img/${1000 + i}.webp" width="320" height="240"/><h2 class="card-title">${title}</h2></a><p class="card-body">${sentence(12)}</p><span class="price">$${(rand() * 200).toFixed(2)}</span><button type="button" class="btn">Add to cart</button></article>`
    i++
  }
  html += '</main><script src="/_next/static/chunks/main.js" async=""></script></body></html>'
  let rsc = '0:{"P":null,"b":"build-abc123","p":"","c":["","products"],"i":false}\n'
  i = 0
  while (rsc.length < rscBytes) {
    rsc += `${i + 2}:["$","article",null,{"className":"card","data-id":${1000 + i},"children":[["$","h2",null,{"children":"${word()} ${word()}"}],["$","p",null,{"children":"${sentence(10)}"}],["$","span",null,{"className":"price","children":"$${(rand() * 200).toFixed(2)}"}]]}]\n`
    i++
  }
  const rscData = Buffer.from(rsc)
  const pageSeg = Buffer.from(rsc.slice(0, Math.floor(rsc.length * 0.8)))
  return {
    kind: 'APP_PAGE',
    html,
    rscData,
    postponed: undefined,
    headers: { 'x-nextjs-stale-time': '300', 'x-next-cache-tags': '_N_T_/layout,_N_T_/products/layout,_N_T_/products/page,_N_T_/products,products' },
    status: undefined,
    segmentData: new Map([
      ['/_tree', Buffer.from('{"tree":["",{"children":["products",{"children":["__PAGE__",{}]}]}]}')],
      ['/_full', rscData],
      ['/products/__PAGE__', pageSeg],
    ]),
  }
}

/** The format popular JS handlers store: JSON with Buffers as base64 and the Map as entries. */
export function jsonBase64(entry) {
  return JSON.stringify(entry, (k, v) => {
    if (v && v.type === 'Buffer' && Array.isArray(v.data)) return { $b64: Buffer.from(v.data).toString('base64') }
    if (v instanceof Map) return { $map: [...v.entries()].map(([mk, mv]) => [mk, { $b64: mv.toString('base64') }]) }
    return v
  })
}
