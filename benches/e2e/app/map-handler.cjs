// The floor of any custom cache handler: a module-level Map returning the stored object.
const store = new Map()

module.exports = class MapHandler {
  async get(key) {
    return store.get(key) ?? null
  }
  async set(key, data, ctx) {
    store.set(key, { value: data, lastModified: Date.now(), tags: (ctx && ctx.tags) || [] })
  }
  async revalidateTag() {}
  resetRequestCache() {}
}
