/**
 * Web addresses in a message as links. The text is never read as HTML: it is appended as
 * text nodes, and each address that parses as an http or https URL becomes an <a> made
 * here, opened in a new tab without giving that page a handle on this one.
 */

const addressPattern = /\bhttps?:\/\/[^\s<>"]+/gi
/** Ends a sentence rather than an address: "see https://example.com." */
const trailingPunctuation = /[.,;:!?'*…]+$/u
const openerOf = new Map([[')', '('], [']', '['], ['}', '{']])

function count (text, char) {
  let n = 0
  for (const c of text) if (c === char) n++
  return n
}

/** The address without the punctuation around it: a closing bracket stays when it closes one of its own. */
function trimAddress (candidate) {
  let address = candidate
  for (;;) {
    const trimmed = address.replace(trailingPunctuation, '')
    const last = trimmed.at(-1) ?? ''
    const opener = openerOf.get(last)
    if (opener !== undefined && count(trimmed, last) > count(trimmed, opener)) {
      address = trimmed.slice(0, -1)
    } else if (trimmed !== address) {
      address = trimmed
    } else {
      return address
    }
  }
}

/** The href for `address`, or undefined when it is not a web address with a host. */
function safeHref (address) {
  let url
  try {
    url = new URL(address)
  } catch {
    return undefined
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' ? url.href : undefined
}

/**
 * Appends `text` to `parent`, its web addresses as links.
 * @param {HTMLElement} parent
 * @param {string} text
 */
export function appendWithLinks (parent, text) {
  let shownTo = 0
  for (const match of text.matchAll(addressPattern)) {
    const address = trimAddress(match[0])
    const href = safeHref(address)
    if (href === undefined || match.index < shownTo) continue
    if (match.index > shownTo) parent.append(text.slice(shownTo, match.index))
    const link = document.createElement('a')
    link.href = href
    link.textContent = address
    link.target = '_blank'
    link.rel = 'noopener noreferrer'
    parent.append(link)
    shownTo = match.index + address.length
  }
  if (shownTo < text.length) parent.append(text.slice(shownTo))
}
