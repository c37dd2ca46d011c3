/**
 * localStorage that never throws: storage may be off (a private window, a policy), and
 * what the page keeps there only saves a round trip or remembers recent topics.
 */
export const storage = {
  /** @param {string} key */
  get (key) {
    try { return localStorage.getItem(key) } catch { return null }
  },
  /** @param {string} key @param {string} value */
  set (key, value) {
    try { localStorage.setItem(key, value) } catch { /* kept for this visit only */ }
  },
  /** @param {string} key */
  remove (key) {
    try { localStorage.removeItem(key) } catch { /* as above */ }
  }
}

/**
 * The list of strings kept under the first of `keys` that holds one, keeping only those
 * `valid` accepts; empty when none does (a damaged list starts afresh).
 * @param {string[]} keys
 * @param {(value: string) => boolean} valid
 * @returns {string[]}
 */
export function storedList (keys, valid) {
  for (const key of keys) {
    try {
      const values = JSON.parse(storage.get(key) ?? 'null')
      if (Array.isArray(values)) return values.filter((value) => typeof value === 'string' && valid(value))
    } catch { /* the next key, or nothing */ }
  }
  return []
}

/**
 * Set while this browser probably holds a session, so that a first visit shows the form
 * without asking /api/me (whose 401 the browser would log as an error in the console).
 */
export const sessionHint = {
  get held () { return storage.get('canopy.session') !== null },
  set held (value) {
    if (value) storage.set('canopy.session', '1')
    else storage.remove('canopy.session')
  }
}
