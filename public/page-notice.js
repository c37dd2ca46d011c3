import { byId } from './dom.js'

/**
 * A line above the open topic's log for what happened to the reader's topics (added to one,
 * removed from one, refused one), which stays until it is dismissed or the reader opens
 * another topic: unlike a line in the log, it outlives the topic it tells of.
 */

export class PageNotice {
  constructor () {
    this.box = byId('page-notice')
    this.text = byId('page-notice-text')
    this.close = byId('page-notice-close')
    this.close.addEventListener('click', () => {
      this.clear()
      byId('message-input').focus()
    })
  }

  /** @param {string} text @param {'info' | 'warning'} [tone] */
  show (text, tone = 'info') {
    this.text.textContent = text
    this.box.dataset.tone = tone
    this.close.hidden = false
  }

  clear () {
    this.text.textContent = ''
    delete this.box.dataset.tone
    this.close.hidden = true
  }
}
