/** The element with this id: the page's modules find their parts of index.html by id. */
export const byId = (id) => document.getElementById(id)

const svgNs = 'http://www.w3.org/2000/svg'

/** An icon of these paths (the `d` of each), drawn as the icons of index.html are. */
export function icon (...paths) {
  const svg = document.createElementNS(svgNs, 'svg')
  svg.setAttribute('class', 'icon')
  svg.setAttribute('viewBox', '0 0 24 24')
  svg.setAttribute('aria-hidden', 'true')
  for (const d of paths) {
    const path = document.createElementNS(svgNs, 'path')
    path.setAttribute('d', d)
    svg.append(path)
  }
  return svg
}

/** The × of a close button, as in index.html. */
export const crossPath = 'M6 6l12 12M18 6L6 18'
/** A speech bubble: start a direct message. */
export const messagePath = 'M5 5h14a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H10l-4 3.5V16H5a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1z'
/** A lock: a private topic. */
export const lockPaths = ['M7 11h10a2 2 0 0 1 2 2v5a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2v-5a2 2 0 0 1 2-2z', 'M8 11V8a4 4 0 0 1 8 0v3']

/**
 * A modal dialog of index.html: its buttons marked `data-close` close it, and the focus goes
 * back to where it was when it opened.
 * @param {string} id
 * @returns {{ dialog: HTMLDialogElement, open: (focus?: HTMLElement) => void }}
 */
export function modal (id) {
  const dialog = /** @type {HTMLDialogElement} */ (byId(id))
  /** @type {Element | null} */
  let opener = null
  for (const button of dialog.querySelectorAll('[data-close]')) button.addEventListener('click', () => { dialog.close() })
  dialog.addEventListener('close', () => {
    if (opener instanceof HTMLElement && opener.isConnected) opener.focus()
  })
  return {
    dialog,
    open (focus) {
      opener = document.activeElement
      if (!dialog.open) dialog.showModal()
      focus?.focus()
    }
  }
}
