/**
 * The topic list and the member list: beside the log where the screen is wide enough,
 * folded away behind a button each where it is not. An unfolded list lies over the open topic
 * (which is inert meanwhile) until it is closed: by its close button, Escape, a tap beside
 * it, or choosing a topic.
 */

import { byId } from './dom.js'

/**
 * @typedef {object} Fold
 * @property {HTMLButtonElement} button
 * @property {HTMLElement} panel
 * @property {HTMLButtonElement} close the panel's own button, shown when it lies over the open topic
 * @property {MediaQueryList} beside where the panel fits beside the log
 * @property {boolean} open unfolded by the reader (the member list also by default, when beside)
 */

export class Panels {
  constructor () {
    this.chat = byId('chat-view')
    this.topicView = byId('topic-view')
    this.scrim = byId('scrim')
    /** @type {Fold} */
    this.topics = { button: byId('topics-toggle'), panel: byId('topics-panel'), close: byId('topics-close'), beside: matchMedia('(min-width: 48rem)'), open: false }
    const membersBeside = matchMedia('(min-width: 64rem)')
    /** @type {Fold} */
    this.members = { button: byId('members-toggle'), panel: byId('members-panel'), close: byId('members-close'), beside: membersBeside, open: membersBeside.matches }

    for (const fold of [this.topics, this.members]) {
      fold.button.addEventListener('click', () => { this.toggle(fold) })
      fold.close.addEventListener('click', () => {
        this.close(fold)
        fold.button.focus()
      })
      fold.beside.addEventListener('change', () => {
        // The member list shows by default where it fits; a list over the log closes when it fits beside it.
        fold.open = fold === this.members && fold.beside.matches
        this.update()
      })
    }
    this.scrim.addEventListener('click', () => { this.closeOver() })
    this.chat.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return
      const fold = [this.topics, this.members].find((fold) => this.over(fold))
      if (fold === undefined) return
      event.preventDefault()
      this.close(fold)
      fold.button.focus()
    })
    this.topics.panel.addEventListener('click', (event) => {
      if (!(event.target instanceof Element) || event.target.closest('a.topic-link') === null || !this.over(this.topics)) return
      this.close(this.topics)
      this.topics.button.focus()
    })
    this.update()
  }

  /** A topic was chosen (by name, a form, or a person to message): a list over the log folds away. */
  topicChosen () {
    this.closeOver()
  }

  /** @private */
  shown (fold) {
    return fold.open || (fold === this.topics && fold.beside.matches)
  }

  /** @private Whether the panel lies over the log now. */
  over (fold) {
    return fold.open && !fold.beside.matches
  }

  /** @private */
  toggle (fold) {
    fold.open = !this.shown(fold)
    if (this.over(fold)) {
      // One list over the log at a time.
      for (const other of [this.topics, this.members]) if (other !== fold && this.over(other)) other.open = false
    }
    this.update()
    if (!this.over(fold)) return
    // The open topic in the topic list; the close button in the member list, which has nothing else to focus.
    /** @type {HTMLElement} */
    const target = fold.panel.querySelector('[aria-current="page"]') ?? fold.close
    target.focus()
  }

  /** @private */
  close (fold) {
    fold.open = false
    this.update()
  }

  /** @private */
  closeOver () {
    for (const fold of [this.topics, this.members]) if (this.over(fold)) fold.open = false
    this.update()
  }

  /** @private */
  update () {
    for (const fold of [this.topics, this.members]) {
      fold.panel.hidden = !this.shown(fold)
      fold.panel.classList.toggle('over', this.over(fold))
      fold.button.setAttribute('aria-expanded', String(this.shown(fold)))
    }
    const over = this.over(this.topics) || this.over(this.members)
    this.scrim.hidden = !over
    this.topicView.inert = over
  }
}
