/**
 * How a topic is named on the page: `#name` for a topic, and for a direct message the names
 * of the other people in it, never its `dm.…` name.
 */

/** Names that begin with this are direct messages (docs/protocol.md), made only by POST /api/dm. */
export const directMessagePrefix = 'dm.'

/**
 * Whether `topic` is a direct message, by what the server said of it or by its name.
 * @param {import('./topic-store.js').TopicStore} store
 * @param {string} topic
 */
export function isDirect (store, topic) {
  return store.infos.get(topic)?.kind === 'dm' || topic.startsWith(directMessagePrefix)
}

/**
 * Whether `topic` is private (a direct message included), as far as the page knows.
 * @param {import('./topic-store.js').TopicStore} store
 * @param {string} topic
 */
export function isPrivate (store, topic) {
  return store.infos.get(topic)?.visibility === 'private' || isDirect(store, topic)
}

/**
 * The people of a direct message but the reader, as the server spelled their names.
 * @param {import('./topic-store.js').TopicStore} store
 * @param {string} topic
 * @returns {string[]}
 */
export function otherMembers (store, topic) {
  const reader = store.reader.toLowerCase()
  return (store.infos.get(topic)?.members ?? []).filter((name) => name.toLowerCase() !== reader)
}

/**
 * The name of `topic` as the page shows it.
 * @param {import('./topic-store.js').TopicStore} store
 * @param {string} topic
 */
export function topicLabel (store, topic) {
  if (!isDirect(store, topic)) return `#${topic}`
  const others = otherMembers(store, topic)
  // Until the server has listed it (just after `added`), a direct message has no names yet.
  return others.length > 0 ? others.join(', ') : 'Direct message'
}
