/* The moderation console (served at /moderation/ by service/api/console.py).
 *
 * Plain JavaScript, no library. It speaks only the public API: /v1/session, /v1/moderation/*, /v1/accounts,
 * /v1/tokens, /v1/webhooks, as any other client could. Rules kept throughout:
 * - reader text (names, titles, bodies, article ids) enters the page only as text: textContent, text nodes and
 *   attribute values, never innerHTML; highlights are DOM nodes built around text nodes;
 * - every string shown comes from MESSAGES (service/i18n.py's CONSOLE_TEXT, injected when the file is served);
 * - no inline style and no eval (the page's Content-Security-Policy forbids both).
 */
(() => {
  'use strict';

  const MESSAGES = {/*__CONSOLE_MESSAGES__*/};
  const LANGS = ['vi', 'en'];
  const BATCH = 20; // comments claimed at a time
  const LOW_WATER = 5; // claim more when fewer remain
  const TLDS = ['com', 'net', 'org', 'vn', 'info', 'xyz', 'top', 'io'];
  const RISK_WEIGHT = {
    many_links: 3, blocklisted_words: 3, ip_reputation: 3, email_reputation: 3, repeated_text: 2, links: 1,
    shouting: 1,
  };
  const STATES = ['pending', 'approved', 'rejected', 'spam', 'retracted'];
  const DECIDED_VIEWS = ['approved', 'rejected', 'spam', 'retracted'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const root = document.getElementById('console');

  let lang = storedLang();

  // -- text ------------------------------------------------------------------------------------------------

  function storedLang() {
    try {
      const value = window.localStorage.getItem('comments-console-lang');
      if (LANGS.includes(value)) return value;
    } catch (_) { /* storage refused: the default */ }
    return 'vi';
  }

  function t(key, params) {
    let text = MESSAGES[lang][key];
    if (text === undefined) text = MESSAGES.vi[key];
    if (text === undefined) text = key;
    if (params) text = text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
    return text;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return t('time.seconds', {n: s});
    const minutes = Math.floor(s / 60);
    if (minutes < 60) return t('time.minutes', {n: minutes});
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return minutes % 60 ? t('time.hours_minutes', {h: hours, m: minutes % 60}) : t('time.hours', {n: hours});
    return t('time.days', {n: Math.floor(hours / 24)});
  }

  function when(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    return new Intl.DateTimeFormat(lang === 'vi' ? 'vi-VN' : 'en-GB', {dateStyle: 'short', timeStyle: 'short'}).format(date);
  }

  function fold(text) {
    return text.toLowerCase().replace(/đ/g, 'd').normalize('NFD').replace(/[\u0300-\u036f]+/g, '');
  }

  // -- DOM ---------------------------------------------------------------------------------------------------

  /** An element; `props`: text (its textContent), class, on<event> handlers, dataset, other attributes. */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    setProps(node, props);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setProps(node, attrs);
    append(node, children);
    return node;
  }

  function setProps(node, props) {
    if (!props) return;
    for (const [key, value] of Object.entries(props)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.setAttribute('class', value);
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat(3)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  let uid = 0;
  function nextId(prefix) {
    uid += 1;
    return `${prefix}-${uid}`;
  }

  function field(labelText, input, hint) {
    if (!input.id) input.id = nextId('f');
    const label = h('label', {for: input.id, text: labelText});
    const hintNode = hint ? h('span', {class: 'hint', id: `${input.id}-hint`, text: hint}) : null;
    if (hintNode) input.setAttribute('aria-describedby', hintNode.id);
    return h('p', {class: 'field'}, label, input, hintNode);
  }

  function button(text, onclick, props) {
    return h('button', {type: 'button', ...props, onclick, text});
  }

  // -- the API -----------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.code = problem.code || '';
      this.problem = problem;
    }
  }

  const app = {
    session: null,
    settings: null,
    route: null,
    stats: null,
    statsAt: 0,
    timers: [],
    events: null, // the live counts' EventSource; while it is open the periodic fetch of the counts rests
    main: null,
  };

  async function api(method, path, body, options) {
    const headers = {Accept: 'application/json', 'Accept-Language': lang};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && app.session) headers['X-CSRF-Token'] = app.session.csrf_token;
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (_) {
      throw new ApiError(0, {code: 'network', detail: t('error.network')});
    }
    let data = null;
    if ((response.headers.get('Content-Type') || '').includes('json')) {
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data || {});
      if (response.status === 401 && app.session && !(options && options.signingIn)) sessionLost();
      throw error;
    }
    return data;
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
    }
    const text = search.toString();
    return text ? `?${text}` : '';
  }

  const path = (id) => encodeURIComponent(id);

  function articleUrl(articleId) {
    const template = (app.settings && app.settings.article_url_template) || '/demo/articles/{article_id}';
    return template.split('{article_id}').join(encodeURIComponent(articleId));
  }

  // -- announcements: toasts (polite) and errors (assertive) ---------------------------------------------------

  let toasts = null;
  let alerts = null;

  function toast(message, action) {
    if (!toasts) return;
    const node = h('div', {class: 'toast'}, h('span', {text: message}),
      action ? button(action.label, action.run, {class: 'toast-action', 'aria-keyshortcuts': action.keys}) : null);
    toasts.prepend(node);
    while (toasts.children.length > 3) toasts.lastElementChild.remove();
    const seconds = action ? (app.settings ? app.settings.undo_seconds : 10) : 6;
    setTimeout(() => node.remove(), seconds * 1000);
  }

  function showError(error) {
    const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
    if (!alerts) return;
    const node = h('div', {class: 'toast is-error'}, h('span', {text: message}),
      button(t('action.dismiss'), () => node.remove(), {class: 'toast-action'}));
    alerts.prepend(node);
    while (alerts.children.length > 3) alerts.lastElementChild.remove();
    setTimeout(() => node.remove(), 10000);
  }

  // -- text of comments, with links and blocklisted words marked -------------------------------------------

  const URL_START = /^(?:https?:\/\/|www\.)/i;
  const TLD_AT = new RegExp(`\\.(?:${TLDS.join('|')})(?![\\p{L}\\p{N}_])`, 'iu');
  const WORD_CHAR = /[\p{L}\p{N}_-]/u;
  const WORDS = /[\p{L}\p{M}\p{N}_]+/gu;

  function isLink(token) {
    if (URL_START.test(token)) return true;
    const found = TLD_AT.exec(token);
    return found !== null && found.index > 0 && WORD_CHAR.test(token[found.index - 1]);
  }

  /** The text as nodes: whitespace-separated tokens that look like links, and blocklisted words, in <mark>. */
  function highlighted(text) {
    const fragment = document.createDocumentFragment();
    const blocked = new Set((app.settings && app.settings.blocklist) || []);
    let plain = '';
    const flush = () => {
      if (plain) fragment.append(document.createTextNode(plain));
      plain = '';
    };
    for (const token of text.split(/(\s+)/)) {
      if (!token) continue;
      if (!/\S/.test(token)) {
        plain += token;
      } else if (isLink(token)) {
        flush();
        fragment.append(h('mark', {class: 'hl-link', title: t('highlight.link')}, token));
      } else if (blocked.size) {
        let last = 0;
        for (const match of token.matchAll(WORDS)) {
          if (!blocked.has(fold(match[0]))) continue;
          plain += token.slice(last, match.index);
          flush();
          fragment.append(h('mark', {class: 'hl-blocked', title: t('highlight.blocked')}, match[0]));
          last = match.index + match[0].length;
        }
        plain += token.slice(last);
      } else {
        plain += token;
      }
    }
    flush();
    return fragment;
  }

  // -- a comment's card ------------------------------------------------------------------------------------------

  const authorCache = new Map();
  const parentCache = new Map();

  function riskScore(comment) {
    return comment.risk.reduce((sum, signal) => sum + (RISK_WEIGHT[signal] || 1), 0);
  }

  function stateLabel(state) {
    return t(`state.${state}`);
  }

  /** `mode`: queue (claimed, decisions by key), list (a decided state's list), detail (one comment's page). */
  function card(comment, mode) {
    const titleId = nextId('title');
    const node = h('article', {
      class: `card state-${comment.state}`, tabindex: '-1', 'aria-labelledby': titleId,
      dataset: {id: comment.id, state: comment.state},
    });
    const heading = h('h2', {class: 'card-title', id: titleId},
      comment.title || t('card.untitled'));
    const meta = h('ul', {class: 'meta'},
      h('li', {class: 'from'}, h('span', {class: 'label', text: t('card.name')}), ' ', h('span', {class: 'name', text: comment.name})),
      h('li', null, h('span', {class: 'label', text: t('card.email')}), ' ', h('span', {class: 'email', text: comment.email})),
      h('li', null, h('span', {class: 'label', text: t('card.ip')}), ' ',
        h('a', {href: `#/search${query({ip_hash: comment.ip_hash})}`, class: 'ip', title: comment.ip_hash,
          'aria-label': t('card.ip_search', {ip: comment.ip_hash.slice(0, 8)})}, comment.ip_hash.slice(0, 8))),
      h('li', null, h('span', {class: 'label', text: t('card.article')}), ' ',
        h('a', {href: articleUrl(comment.article_id), class: 'article', target: '_blank', rel: 'noopener noreferrer'},
          comment.article_id)),
      comment.state === 'pending'
        ? h('li', {class: 'waiting'}, h('span', {class: 'label', text: t('card.waiting')}), ' ',
          h('span', {dataset: {since: comment.created_at}, text: duration((Date.now() - Date.parse(comment.created_at)) / 1000)}))
        : h('li', {class: 'state'}, h('span', {class: `badge badge-${comment.state}`, text: stateLabel(comment.state)}),
          comment.decided_by ? ` ${t('card.decided_by', {who: comment.decided_by, at: when(comment.decided_at)})}` : ''),
    );
    const titleRow = h('div', {class: 'title-row'}, heading);
    if (mode === 'queue') {
      const box = h('input', {type: 'checkbox', class: 'select', 'aria-keyshortcuts': 'x',
        onchange: (event) => toggleSelected(comment.id, event.target.checked)});
      box.id = nextId('select');
      box.checked = queue.selected.has(comment.id);
      titleRow.prepend(h('p', {class: 'select-box'}, box, h('label', {for: box.id, text: t('card.select')})));
    }
    const head = h('header', {class: 'card-head'}, titleRow, meta);
    const parts = [head];
    if (comment.parent_id) {
      parts.push(h('aside', {class: 'parent', dataset: {parent: comment.parent_id}},
        h('p', {class: 'label', text: t('card.reply_to')}), h('p', {class: 'muted', text: t('loading')})));
    }
    parts.push(h('div', {class: 'body'}, highlighted(comment.body)));
    if (comment.risk.length) {
      parts.push(h('div', {class: 'risks'}, h('p', {class: 'label', text: t('card.risks')}),
        h('ul', null, comment.risk.map((signal) => h('li', {dataset: {risk: signal}, text: t(`risk.${signal}`)})))));
    }
    parts.push(h('div', {class: 'author'},
      h('p', {class: 'label', text: t('card.author')}), h('p', {class: 'muted', text: t('card.author_later')})));
    parts.push(cardActions(comment, mode));
    append(node, parts);
    return node;
  }

  function cardActions(comment, mode) {
    const actions = h('div', {class: 'actions'});
    if (mode === 'queue' || (mode === 'detail' && comment.state === 'pending')) {
      const decide = (action) => () => {
        if (mode === 'queue') {
          setCurrent(comment.id, false);
          if (action === 'reject') rejectCurrent(); else decideQueue([comment], action, '');
        } else {
          decideOne(comment, action);
        }
      };
      append(actions, [
        button(t('action.approve'), decide('approve'), {class: 'approve', 'aria-keyshortcuts': 'a'}),
        button(t('action.reject'), decide('reject'), {class: 'reject', 'aria-keyshortcuts': 'r'}),
        button(t('action.spam'), decide('spam'), {class: 'spam', 'aria-keyshortcuts': 's'}),
      ]);
    }
    if (mode === 'reported') {
      append(actions, [
        button(t('action.keep'), () => resolveReports(comment, 'keep'), {class: 'keep', 'aria-keyshortcuts': 'g'}),
        button(t('action.retract'), () => resolveReports(comment, 'retract'), {class: 'retract', 'aria-keyshortcuts': 't'}),
      ]);
    } else if (comment.state === 'approved') {
      actions.append(button(t('action.retract'), () => retract(comment), {class: 'retract'}));
    }
    if (mode !== 'detail') {
      actions.append(h('a', {href: `#/comment/${path(comment.id)}`, class: 'history-link'}, t('action.history')));
    }
    return actions;
  }

  /** The parent comment and the author's record, fetched once per comment when its card is looked at. */
  async function loadDetails(node, comment) {
    if (!node || node.dataset.details) return;
    node.dataset.details = 'loading';
    const parentBox = node.querySelector('.parent');
    if (parentBox && comment.parent_id) {
      try {
        if (!parentCache.has(comment.parent_id)) {
          parentCache.set(comment.parent_id, api('GET', `/v1/moderation/comments/${path(comment.parent_id)}`));
        }
        const parent = await parentCache.get(comment.parent_id);
        parentBox.replaceChildren(h('p', {class: 'label', text: t('card.reply_to')}),
          h('p', {class: 'parent-head'}, h('span', {class: 'name', text: parent.name}), ': ',
            h('strong', {text: parent.title || t('card.untitled')})),
          h('p', {class: 'parent-body', text: parent.body}));
      } catch (error) {
        parentCache.delete(comment.parent_id);
        parentBox.replaceChildren(h('p', {class: 'label', text: t('card.reply_to')}), h('p', {class: 'muted', text: error.message}));
      }
    }
    const authorBox = node.querySelector('.author');
    try {
      if (!authorCache.has(comment.id)) {
        authorCache.set(comment.id, api('GET', `/v1/moderation/comments/${path(comment.id)}/author${query({limit: 5})}`));
      }
      authorBox.replaceChildren(...authorRecord(await authorCache.get(comment.id)));
    } catch (error) {
      authorCache.delete(comment.id);
      authorBox.replaceChildren(h('p', {class: 'label', text: t('card.author')}), h('p', {class: 'muted', text: error.message}));
    }
    node.dataset.details = 'done';
  }

  function authorRecord(record) {
    const part = (label, comments) => {
      const states = Object.entries(comments.states).filter(([, n]) => n > 0)
        .map(([state, n]) => t('author.state_count', {n, state: stateLabel(state)})).join(', ');
      const summary = comments.total === 0 ? t('author.none')
        : t('author.summary', {n: comments.total, states: states || '—'});
      return h('div', {class: 'author-part'},
        h('p', null, h('span', {class: 'label', text: label}), ' ', summary),
        comments.comments.length ? h('ul', {class: 'author-list'}, comments.comments.map((c) => h('li', null,
          h('a', {href: `#/comment/${path(c.id)}`}, c.title || t('card.untitled')), ' ',
          h('span', {class: `badge badge-${c.state}`, text: stateLabel(c.state)}), ' ',
          h('span', {class: 'muted', text: when(c.created_at)})))) : null);
    };
    return [h('p', {class: 'label', text: t('card.author')}),
      part(t('author.by_email'), record.by_email), part(t('author.by_ip'), record.by_ip)];
  }

  // -- dialogs: a reason, the list of keys ------------------------------------------------------------------

  let reasonDialog = null;
  let keysDialog = null;

  function dialogOpen() {
    return Boolean(document.querySelector('dialog[open]'));
  }

  /** Ask for a reason: one of the configured ones (1-9 picks and confirms) or free text. Resolves null on cancel. */
  function askReason(title, confirmLabel) {
    return new Promise((resolve) => {
      const reasons = (app.settings && app.settings.reject_reasons) || [];
      const titleId = nextId('reason-title');
      const other = h('input', {type: 'text', maxlength: '500', class: 'other-text', autocomplete: 'off'});
      const radios = reasons.map((reason, index) => {
        const radio = h('input', {type: 'radio', name: 'reason', value: reason});
        radio.id = nextId('reason');
        if (index === 0) radio.checked = true;
        return h('p', {class: 'choice'}, radio, h('label', {for: radio.id}, h('kbd', {text: String(index + 1)}), ' ', reason));
      });
      const otherRadio = h('input', {type: 'radio', name: 'reason', value: ''});
      otherRadio.id = nextId('reason');
      if (!reasons.length) otherRadio.checked = true;
      other.addEventListener('input', () => { otherRadio.checked = true; });
      const form = h('form', {class: 'reason-form'},
        h('h2', {id: titleId, text: title}),
        h('fieldset', null, h('legend', {text: t('reason.legend')}), radios,
          h('p', {class: 'choice'}, otherRadio, h('label', {for: otherRadio.id, text: t('reason.other')}))),
        field(t('reason.other_text'), other),
        h('p', {class: 'buttons'}, h('button', {type: 'submit', class: 'reject', text: confirmLabel}),
          button(t('action.cancel'), () => finish(null))));
      const dialog = h('dialog', {class: 'dialog', 'aria-labelledby': titleId}, form);
      let done = false;
      const finish = (value) => {
        if (done) return;
        done = true;
        if (dialog.open) dialog.close();
        dialog.remove();
        reasonDialog = null;
        resolve(value);
      };
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        const chosen = form.querySelector('input[name="reason"]:checked');
        finish(chosen && chosen.value ? chosen.value : other.value.trim());
      });
      dialog.addEventListener('cancel', (event) => {
        event.preventDefault();
        finish(null);
      });
      dialog.addEventListener('keydown', (event) => {
        const target = event.target;
        if (target === other) return;
        if (/^[1-9]$/.test(event.key) && Number(event.key) <= reasons.length) {
          event.preventDefault();
          radios[Number(event.key) - 1].querySelector('input').checked = true;
          form.requestSubmit();
        } else if (event.key === 'Enter' && target instanceof HTMLInputElement && target.type === 'radio') {
          event.preventDefault();
          form.requestSubmit();
        }
      });
      document.body.append(dialog);
      reasonDialog = dialog;
      dialog.showModal();
      const first = form.querySelector('input[name="reason"]:checked');
      if (first) first.focus();
    });
  }

  const KEYS = [
    ['j', 'keys.next'], ['k', 'keys.previous'], ['a', 'keys.approve'], ['r', 'keys.reject'], ['s', 'keys.spam'],
    ['x', 'keys.select'], ['A', 'keys.approve_selected'], ['u', 'keys.undo'], ['/', 'keys.search'], ['?', 'keys.help'],
    ['g', 'keys.keep'], ['t', 'keys.retract'], ['Esc', 'keys.close'],
  ];

  function showKeys() {
    if (keysDialog) return;
    const titleId = nextId('keys-title');
    const close = button(t('action.close'), () => keysDialog.close());
    const dialog = h('dialog', {class: 'dialog', 'aria-labelledby': titleId},
      h('h2', {id: titleId, text: t('keys.title')}),
      h('dl', {class: 'keys'}, KEYS.map(([key, text]) => [h('dt', null, h('kbd', {text: key})), h('dd', {text: t(text)})])),
      h('p', {class: 'buttons'}, close));
    dialog.addEventListener('close', () => {
      dialog.remove();
      keysDialog = null;
      focusCurrent();
    });
    document.body.append(dialog);
    keysDialog = dialog;
    dialog.showModal();
    close.focus();
  }

  // -- the queue: my claimed comments -----------------------------------------------------------------------

  const queue = {
    items: [], // my claimed, undecided comments
    order: [], // the ids shown, in order
    currentId: null,
    selected: new Set(),
    nodes: new Map(),
    article: '',
    risk: '',
    sort: 'age',
    claiming: null,
    active: false,
    list: null,
    status: null,
    bulkBar: null,
    empty: null,
  };
  let lastDecision = null;

  function visibleOrder() {
    let items = queue.items;
    if (queue.risk) items = items.filter((c) => c.risk.includes(queue.risk));
    const age = (a, b) => Date.parse(a.created_at) - Date.parse(b.created_at) || (a.id < b.id ? -1 : 1);
    const sorted = items.slice().sort(queue.sort === 'risk' ? (a, b) => riskScore(b) - riskScore(a) || age(a, b) : age);
    return sorted.map((c) => c.id);
  }

  function byId(id) {
    return queue.items.find((c) => c.id === id) || null;
  }

  async function claimMore() {
    if (queue.claiming || !app.session) return queue.claiming;
    const wanted = BATCH - queue.items.length;
    if (wanted <= 0) return null;
    queue.claiming = (async () => {
      try {
        const body = {limit: wanted, lease_seconds: app.settings.lease_seconds};
        if (queue.article) body.article_id = queue.article;
        const result = await api('POST', '/v1/moderation/claims', body);
        const known = new Set(queue.items.map((c) => c.id));
        const fresh = result.comments.filter((c) => !known.has(c.id));
        if (fresh.length) {
          queue.items.push(...fresh);
          if (queue.active) renderQueueList();
        } else if (queue.active) {
          updateQueueStatus();
        }
      } catch (error) {
        if (error.status !== 401) showError(error);
      } finally {
        queue.claiming = null;
      }
    })();
    return queue.claiming;
  }

  async function renewLeases() {
    const ids = queue.items.map((c) => c.id).slice(0, 100);
    if (!ids.length || !app.session) return;
    try {
      const result = await api('POST', '/v1/moderation/claims/renew', {ids, lease_seconds: app.settings.lease_seconds});
      if (result.not_held.length) {
        dropFromQueue(result.not_held);
        toast(t('queue.lost', {n: result.not_held.length}));
        claimMore();
      }
    } catch (error) {
      if (error.status !== 401) showError(error);
    }
  }

  /** Give back every comment I hold (leaving the queue, signing out). */
  async function releaseAll() {
    const ids = queue.items.map((c) => c.id);
    queue.items = [];
    queue.order = [];
    queue.selected.clear();
    queue.nodes.clear();
    queue.currentId = null;
    for (let i = 0; i < ids.length; i += 100) {
      try {
        await api('POST', '/v1/moderation/claims/release', {ids: ids.slice(i, i + 100)});
      } catch (_) { /* the leases run out by themselves */ }
    }
  }

  /** Leaving the page: the request must outlive it, so fetch with keepalive (a beacon cannot carry the CSRF header). */
  function releaseOnLeave() {
    const ids = queue.items.map((c) => c.id).slice(0, 100);
    if (!ids.length || !app.session) return;
    try {
      fetch('/v1/moderation/claims/release', {
        method: 'POST', keepalive: true, credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': app.session.csrf_token},
        body: JSON.stringify({ids}),
      });
    } catch (_) { /* the leases run out by themselves */ }
    queue.items = [];
  }

  function renderQueueView(main) {
    queue.active = true;
    queue.nodes.clear();
    const article = h('input', {type: 'text', name: 'article_id', autocomplete: 'off', maxlength: '128', value: queue.article});
    const risk = h('select', {name: 'risk'}, h('option', {value: '', text: t('filter.any_risk')}),
      Object.keys(RISK_WEIGHT).map((signal) => h('option', {value: signal, text: t(`risk.${signal}`)})));
    risk.value = queue.risk;
    const sort = h('select', {name: 'sort'}, h('option', {value: 'age', text: t('sort.age')}),
      h('option', {value: 'risk', text: t('sort.risk')}));
    sort.value = queue.sort;
    risk.addEventListener('change', () => {
      queue.risk = risk.value;
      renderQueueList();
    });
    sort.addEventListener('change', () => {
      queue.sort = sort.value;
      renderQueueList();
    });
    const filters = h('form', {class: 'filters', 'aria-label': t('filter.label')},
      field(t('filter.article'), article), field(t('filter.risk'), risk), field(t('filter.sort'), sort),
      h('p', {class: 'field buttons'}, h('button', {type: 'submit', text: t('filter.apply')})));
    filters.addEventListener('submit', async (event) => {
      event.preventDefault();
      const wanted = article.value.trim();
      if (wanted !== queue.article) {
        await releaseAll();
        queue.article = wanted;
        renderQueueList();
        await claimMore();
      }
      focusCurrent();
    });
    queue.status = h('p', {class: 'queue-status'});
    queue.bulkBar = h('div', {class: 'bulk', hidden: true, role: 'group', 'aria-label': t('bulk.label')});
    queue.list = h('ol', {class: 'cards', 'aria-label': t('queue.cards')});
    queue.empty = h('p', {class: 'empty', hidden: true, text: t('queue.empty')});
    main.replaceChildren(
      h('div', {class: 'view-head'}, h('h1', {tabindex: '-1', text: t('queue.title')}),
        h('p', {class: 'hint'}, t('queue.hint'), ' ', button(t('keys.show'), showKeys, {class: 'link', 'aria-keyshortcuts': '?'}))),
      filters, queue.status, queue.bulkBar, queue.list, queue.empty);
    renderQueueList();
    if (queue.items.length < LOW_WATER) claimMore();
    focusCurrent();
  }

  function renderQueueList() {
    if (!queue.active || !queue.list) return;
    queue.order = visibleOrder();
    const items = [];
    for (const id of queue.order) {
      let node = queue.nodes.get(id);
      if (!node) {
        node = h('li', {class: 'card-item'}, card(byId(id), 'queue'));
        queue.nodes.set(id, node);
      }
      items.push(node);
    }
    for (const [id, node] of queue.nodes) if (!queue.order.includes(id)) { node.remove(); queue.nodes.delete(id); }
    queue.list.replaceChildren(...items);
    if (!queue.order.includes(queue.currentId)) queue.currentId = queue.order[0] || null;
    markCurrent();
    updateQueueStatus();
    if (queue.currentId) {
      // The first comments arrive after the page is shown: the first card takes the focus from the heading.
      const idle = document.activeElement === document.body || document.activeElement === app.main.querySelector('h1');
      setCurrent(queue.currentId, idle);
    }
  }

  function updateQueueStatus() {
    if (!queue.status) return;
    const held = queue.items.length;
    const depth = app.stats ? app.stats.queue_depth : null;
    queue.status.textContent = depth === null ? t('queue.status_held', {n: held})
      : t('queue.status', {n: held, depth});
    queue.empty.hidden = queue.order.length > 0;
    queue.empty.textContent = held && queue.risk ? t('queue.empty_filtered') : t('queue.empty');
    updateBulkBar();
  }

  function updateBulkBar() {
    const bar = queue.bulkBar;
    if (!bar) return;
    const n = queue.selected.size;
    bar.hidden = n === 0;
    if (!n) return;
    bar.replaceChildren(h('span', {text: t('bulk.selected', {n})}),
      button(t('bulk.approve'), () => bulkDecide('approve'), {class: 'approve', 'aria-keyshortcuts': 'Shift+A'}),
      button(t('bulk.reject'), () => bulkDecide('reject'), {class: 'reject'}),
      button(t('bulk.spam'), () => bulkDecide('spam'), {class: 'spam'}),
      button(t('bulk.clear'), () => {
        queue.selected.clear();
        for (const node of queue.nodes.values()) node.querySelector('input.select').checked = false;
        updateBulkBar();
        focusCurrent();
      }));
  }

  function currentNode() {
    const item = queue.nodes.get(queue.currentId);
    return item ? item.firstElementChild : null;
  }

  function markCurrent() {
    for (const [id, item] of queue.nodes) {
      const isCurrent = id === queue.currentId;
      item.firstElementChild.classList.toggle('is-current', isCurrent);
      if (isCurrent) item.firstElementChild.setAttribute('aria-current', 'true');
      else item.firstElementChild.removeAttribute('aria-current');
    }
  }

  function setCurrent(id, focus) {
    const before = currentNode();
    queue.currentId = id;
    const after = currentNode();
    if (before && before !== after) {
      before.classList.remove('is-current');
      before.removeAttribute('aria-current');
    }
    if (after) {
      after.classList.add('is-current');
      after.setAttribute('aria-current', 'true');
      if (focus) after.focus();
      loadDetails(after, byId(id));
      const next = queue.order[queue.order.indexOf(id) + 1];
      if (next && queue.nodes.has(next)) loadDetails(queue.nodes.get(next).firstElementChild, byId(next));
    }
  }

  function focusCurrent() {
    if (app.route && app.route.name === 'queue') {
      if (queue.currentId && queue.nodes.has(queue.currentId)) setCurrent(queue.currentId, true);
      else if (app.main) app.main.querySelector('h1').focus();
    } else if (lists.active && lists.currentId) {
      listSetCurrent(lists.currentId, true);
    }
  }

  function move(step) {
    const index = queue.order.indexOf(queue.currentId);
    const next = queue.order[Math.min(queue.order.length - 1, Math.max(0, index + step))];
    if (next) setCurrent(next, true);
  }

  function toggleSelected(id, on) {
    if (on) queue.selected.add(id); else queue.selected.delete(id);
    const item = queue.nodes.get(id);
    if (item) item.querySelector('input.select').checked = on;
    updateBulkBar();
  }

  /** Take decided (or lost) comments out of my queue; the card after the current one becomes current. */
  function dropFromQueue(ids) {
    const gone = new Set(ids);
    let nextId = queue.currentId;
    if (gone.has(nextId)) {
      const index = queue.order.indexOf(nextId);
      nextId = queue.order.slice(index + 1).find((id) => !gone.has(id))
        || queue.order.slice(0, Math.max(0, index)).reverse().find((id) => !gone.has(id)) || null;
    }
    queue.items = queue.items.filter((c) => !gone.has(c.id));
    queue.order = queue.order.filter((id) => !gone.has(id));
    for (const id of gone) {
      queue.selected.delete(id);
      const item = queue.nodes.get(id);
      if (item) item.remove();
      queue.nodes.delete(id);
    }
    if (queue.active) {
      setCurrent(nextId, true);
      updateQueueStatus();
      if (!queue.order.length && app.main) app.main.querySelector('h1').focus();
    } else {
      queue.currentId = nextId;
    }
    if (queue.items.length < LOW_WATER) claimMore();
  }

  function restoreToQueue(comments) {
    const known = new Set(queue.items.map((c) => c.id));
    queue.items.push(...comments.filter((c) => !known.has(c.id)));
    renderQueueList();
  }

  const CONFLICTS = new Set(['already_decided', 'leased_to_other', 'stale_version', 'not_found']);

  function actionDone(action, n) {
    return n === 1 ? t(`done.${action}`) : t(`done.${action}_many`, {n});
  }

  /** Decide comments of my queue: the cards leave at once, the request follows, undo is offered for 10 s. */
  function decideQueue(comments, action, reason) {
    if (!comments.length) return;
    dropFromQueue(comments.map((c) => c.id));
    let request;
    if (comments.length === 1) {
      const [comment] = comments;
      request = api('POST', `/v1/moderation/comments/${path(comment.id)}/decision`,
        {action, reason, version: comment.version}).then((record) => [{id: record.id, ok: true}]);
    } else {
      request = api('POST', '/v1/moderation/decisions', {action, reason, ids: comments.map((c) => c.id)})
        .then((result) => result.outcomes.map((o) => ({id: o.id, ok: o.status === 200, code: o.code})));
    }
    const decision = {comments, action, at: Date.now(), request, undone: false};
    lastDecision = decision;
    const title = comments.length === 1 ? comments[0].title : '';
    toast(comments.length === 1 ? t('toast.decided', {what: actionDone(action, 1), title}) : actionDone(action, comments.length),
      {label: t('action.undo'), keys: 'u', run: () => undo(decision)});
    request.then((outcomes) => {
      const failed = outcomes.filter((o) => !o.ok);
      if (failed.length) showError(t('error.some_failed', {n: failed.length}));
    }, (error) => {
      if (CONFLICTS.has(error.code) || error.status === 404 || error.status === 409) {
        showError(error);
      } else if (error.status !== 401) {
        showError(error);
        restoreToQueue(comments);
      }
    });
  }

  async function rejectCurrent() {
    const comment = byId(queue.currentId);
    if (!comment) return;
    const reason = await askReason(t('reason.title_one'), t('action.reject'));
    if (reason === null) {
      focusCurrent();
      return;
    }
    decideQueue([comment], 'reject', reason);
  }

  async function bulkDecide(action) {
    const comments = queue.items.filter((c) => queue.selected.has(c.id));
    if (!comments.length) {
      toast(t('bulk.none'));
      return;
    }
    let reason = '';
    if (action === 'reject') {
      reason = await askReason(t('reason.title_many', {n: comments.length}), t('action.reject'));
      if (reason === null) {
        focusCurrent();
        return;
      }
    }
    decideQueue(comments, action, reason);
  }

  async function undo(decision) {
    const target = decision || lastDecision;
    if (!target || target.undone) {
      toast(t('undo.nothing'));
      return;
    }
    const limit = (app.settings ? app.settings.undo_seconds : 10) * 1000;
    if (Date.now() - target.at > limit) {
      toast(t('undo.expired'));
      return;
    }
    target.undone = true;
    let outcomes;
    try {
      outcomes = await target.request;
    } catch (_) {
      return; // the decision failed: nothing to undo (its cards came back already)
    }
    const ids = outcomes.filter((o) => o.ok).map((o) => o.id);
    const results = await Promise.allSettled(ids.map((id) => api('POST', `/v1/moderation/comments/${path(id)}/undo`)));
    const back = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const refused = results.find((r) => r.status === 'rejected');
    if (refused) showError(refused.reason);
    if (!back.length) return;
    restoreToQueue(back);
    if (queue.active) setCurrent(back[0].id, true);
    toast(t('undo.done', {n: back.length}));
  }

  // -- one decision outside the queue (a comment's page) ----------------------------------------------------

  async function decideOne(comment, action) {
    let reason = '';
    if (action === 'reject') {
      reason = await askReason(t('reason.title_one'), t('action.reject'));
      if (reason === null) return;
    }
    try {
      await api('POST', `/v1/moderation/comments/${path(comment.id)}/decision`, {action, reason, version: comment.version});
      toast(actionDone(action, 1));
      route();
    } catch (error) {
      showError(error);
    }
  }

  async function retract(comment) {
    const reason = await askReason(t('reason.title_retract'), t('action.retract'));
    if (reason === null) return;
    try {
      await api('POST', `/v1/moderation/comments/${path(comment.id)}/retract`, {reason});
      toast(t('done.retract'));
      route();
    } catch (error) {
      showError(error);
    }
  }

  // -- the reported queue: approved comments readers reported (j/k, g keeps, t retracts) ----------------------

  const REPORT_REASONS = ['spam', 'offensive', 'false', 'unlawful', 'other'];
  const reported = {comments: new Map(), total: 0, info: null};

  /** Most reported first, then the longest waiting (GET /v1/moderation/reports); the readers' words as text. */
  async function renderReportedView(main) {
    const info = h('p', {class: 'page-info', 'aria-live': 'polite', text: t('loading')});
    const listNode = h('ol', {class: 'cards'});
    main.replaceChildren(h('div', {class: 'view-head'}, h('h1', {tabindex: '-1', text: t('view.reported')}),
      h('p', {class: 'hint', text: t('view.reported_hint')})), info, listNode);
    reported.info = info;
    try {
      const result = await api('GET', `/v1/moderation/reports${query({limit: 50})}`);
      lists.active = true;
      lists.ids = result.comments.map((item) => item.comment.id);
      lists.nodes.clear();
      lists.currentId = null;
      reported.comments = new Map(result.comments.map((item) => [item.comment.id, item.comment]));
      reported.total = result.total;
      listNode.replaceChildren(...result.comments.map((item) => {
        const node = card(item.comment, 'reported');
        node.querySelector('.actions').before(reportSummary(item));
        lists.nodes.set(item.comment.id, node);
        node.addEventListener('focusin', () => {
          if (lists.currentId !== item.comment.id) listSetCurrent(item.comment.id, false);
          loadDetails(node, item.comment);
        });
        return h('li', {class: 'card-item'}, node);
      }));
      if (lists.ids.length) listSetCurrent(lists.ids[0], false);
      updateReportedInfo();
    } catch (error) {
      info.textContent = error.message;
    }
  }

  function reportSummary(item) {
    const reasons = REPORT_REASONS.filter((reason) => item.reasons[reason])
      .map((reason) => h('li', {dataset: {reason}, text: t('reported.reason', {reason: t(`report_reason.${reason}`), n: item.reasons[reason]})}));
    const words = item.reports.filter((report) => report.text).map((report) => h('li', {class: 'report-text', text: report.text}));
    return h('div', {class: 'reports'},
      h('p', {class: 'label report-summary',
        text: t('reported.summary', {n: item.open_reports, age: duration(item.waiting_seconds)})}),
      h('ul', {class: 'reasons'}, reasons),
      words.length ? [h('p', {class: 'label', text: t('reported.texts')}), h('ul', {class: 'report-texts'}, words)] : null);
  }

  function updateReportedInfo() {
    if (reported.info) reported.info.textContent = reported.total ? t('reported.count', {n: reported.total}) : t('reported.empty');
  }

  async function resolveReports(comment, action) {
    let reason = '';
    if (action === 'retract') {
      reason = await askReason(t('reason.title_retract'), t('action.retract'));
      if (reason === null) return;
    }
    try {
      await api('POST', `/v1/moderation/reports/${path(comment.id)}/decision`, {action, reason});
      toast(t(`done.${action}`));
      dropReported(comment.id);
    } catch (error) {
      showError(error);
    }
  }

  function dropReported(id) {
    const index = lists.ids.indexOf(id);
    const node = lists.nodes.get(id);
    if (index < 0 || !node) return;
    lists.ids.splice(index, 1);
    lists.nodes.delete(id);
    reported.comments.delete(id);
    reported.total = Math.max(0, reported.total - 1);
    node.closest('li').remove();
    updateReportedInfo();
    const next = lists.ids[Math.min(index, lists.ids.length - 1)];
    if (next) listSetCurrent(next, true);
    else app.main.querySelector('h1').focus();
  }

  // -- lists by state and search results (pages, j/k) ------------------------------------------------------

  const lists = {active: false, ids: [], nodes: new Map(), currentId: null};

  function listSetCurrent(id, focus) {
    const before = lists.nodes.get(lists.currentId);
    if (before) {
      before.classList.remove('is-current');
      before.removeAttribute('aria-current');
    }
    lists.currentId = id;
    const node = lists.nodes.get(id);
    if (!node) return;
    node.classList.add('is-current');
    node.setAttribute('aria-current', 'true');
    if (focus) node.focus();
  }

  function listMove(step) {
    const index = lists.ids.indexOf(lists.currentId);
    const next = lists.ids[Math.min(lists.ids.length - 1, Math.max(0, index + step))];
    if (next) listSetCurrent(next, true);
  }

  function renderCards(container, comments) {
    lists.active = true;
    lists.ids = comments.map((c) => c.id);
    lists.nodes.clear();
    lists.currentId = null;
    const items = comments.map((comment) => {
      const node = card(comment, 'list');
      lists.nodes.set(comment.id, node);
      node.addEventListener('focusin', () => {
        if (lists.currentId !== comment.id) listSetCurrent(comment.id, false);
        loadDetails(node, comment);
      });
      return h('li', {class: 'card-item'}, node);
    });
    container.replaceChildren(...items);
    if (comments.length) listSetCurrent(comments[0].id, false);
  }

  /** A paged list: `fetchPage(cursor)` answers {comments, next_cursor}; pages go back through a cursor stack. */
  function pagedCards(main, fetchPage, emptyText) {
    const cursors = [null];
    let page = 0;
    const listNode = h('ol', {class: 'cards'});
    const info = h('p', {class: 'page-info', 'aria-live': 'polite'});
    const previous = button(t('page.previous'), () => load(page - 1));
    const next = button(t('page.next'), () => load(page + 1));
    const pager = h('nav', {class: 'pager', 'aria-label': t('page.label')}, previous, info, next);
    main.append(listNode, pager);
    async function load(wanted) {
      info.textContent = t('loading');
      try {
        const result = await fetchPage(cursors[wanted]);
        page = wanted;
        cursors[page + 1] = result.next_cursor;
        renderCards(listNode, result.comments);
        previous.disabled = page === 0;
        next.disabled = !result.next_cursor;
        info.textContent = result.comments.length ? t('page.number', {n: page + 1, count: result.comments.length}) : emptyText;
        if (wanted !== 0 || document.activeElement === document.body) {
          const first = lists.nodes.get(lists.currentId);
          if (first && wanted !== 0) first.focus();
        }
      } catch (error) {
        info.textContent = error.message;
      }
    }
    return load(0);
  }

  function renderStateView(main, state) {
    const article = h('input', {type: 'text', name: 'article_id', autocomplete: 'off', maxlength: '128',
      value: (app.route.query.get('article_id') || '')});
    const form = h('form', {class: 'filters'}, field(t('filter.article'), article),
      h('p', {class: 'field buttons'}, h('button', {type: 'submit', text: t('filter.apply')})));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      location.hash = `#/${state}${query({article_id: article.value.trim()})}`;
    });
    main.replaceChildren(h('div', {class: 'view-head'}, h('h1', {tabindex: '-1', text: t(`view.${state}`)}),
      h('p', {class: 'hint', text: t(`view.${state}_hint`)})), form);
    const articleId = app.route.query.get('article_id');
    return pagedCards(main, (cursor) => api('GET', `/v1/moderation/comments${query({state, article_id: articleId, limit: 20, cursor})}`),
      t('list.empty'));
  }

  const SEARCH_FIELDS = [
    ['q', 'search.q', 'search', 'search.q_hint'], ['name', 'search.name', 'text'], ['email', 'search.email', 'email'],
    ['ip_hash', 'search.ip_hash', 'text'], ['article_id', 'search.article', 'text'], ['since', 'search.since', 'date'],
    ['until', 'search.until', 'date'],
  ];

  function renderSearchView(main) {
    const params = app.route.query;
    const inputs = {};
    const fields = SEARCH_FIELDS.map(([name, label, type, hint]) => {
      inputs[name] = h('input', {type, name, autocomplete: 'off', value: params.get(name) || ''});
      if (name === 'q') inputs[name].id = 'search-q';
      return field(t(label), inputs[name], hint ? t(hint) : null);
    });
    const state = h('select', {name: 'state'}, h('option', {value: '', text: t('search.any_state')}),
      STATES.map((s) => h('option', {value: s, text: stateLabel(s)})));
    state.value = params.get('state') || '';
    const form = h('form', {class: 'filters search', role: 'search'}, fields, field(t('search.state'), state),
      h('p', {class: 'field buttons'}, h('button', {type: 'submit', text: t('search.submit')})));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const values = {};
      for (const [name, input] of Object.entries(inputs)) values[name] = input.value.trim();
      values.state = state.value;
      location.hash = `#/search${query(values)}`;
    });
    main.replaceChildren(h('div', {class: 'view-head'}, h('h1', {tabindex: '-1', text: t('search.title')})), form);
    const criteria = {};
    for (const [name] of [...SEARCH_FIELDS, ['state']]) if (params.get(name)) criteria[name] = params.get(name);
    if (!Object.keys(criteria).length) {
      main.append(h('p', {class: 'hint', text: t('search.help')}));
      return null;
    }
    main.append(h('h2', {text: t('search.results')}));
    return pagedCards(main, (cursor) => api('GET', `/v1/moderation/search${query({...criteria, limit: 20, cursor})}`),
      t('search.none'));
  }

  // -- one comment with its history -------------------------------------------------------------------------

  async function renderCommentView(main, id) {
    main.replaceChildren(h('div', {class: 'view-head'}, h('h1', {tabindex: '-1', text: t('comment.title')})),
      h('p', {class: 'muted', text: t('loading')}));
    let comment;
    try {
      comment = await api('GET', `/v1/moderation/comments/${path(id)}`);
    } catch (error) {
      main.lastElementChild.textContent = error.message;
      return;
    }
    const node = card(comment, 'detail');
    const rows = comment.history.map((entry) => h('tr', null,
      h('td', {text: when(entry.at)}), h('td', {text: entry.by}), h('td', {text: t(`history.${entry.action}`)}),
      h('td', {text: `${entry.from_state ? stateLabel(entry.from_state) : '—'} → ${stateLabel(entry.to_state)}`}),
      h('td', {text: entry.reason || '—'})));
    const history = h('section', {class: 'history', 'aria-labelledby': 'history-title'},
      h('h2', {id: 'history-title', text: t('comment.history')}),
      rows.length ? h('div', {class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': t('table.label')}, h('table', null,
        h('thead', null, h('tr', null, ['history.at', 'history.by', 'history.action', 'history.change', 'history.reason']
          .map((key) => h('th', {scope: 'col', text: t(key)})))),
        h('tbody', null, rows))) : h('p', {class: 'muted', text: t('comment.no_history')}));
    main.lastElementChild.replaceWith(node, history);
    lists.active = false;
    loadDetails(node, comment);
  }

  // -- stats: numbers and small SVG charts ---------------------------------------------------------------

  function chartFrame(titleText, width, height) {
    const titleId = nextId('chart');
    return svg('svg', {class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': titleId,
      preserveAspectRatio: 'xMidYMid meet'}, svg('title', {id: titleId, text: titleText}));
  }

  function hourLabel(iso) {
    return new Intl.DateTimeFormat(lang === 'vi' ? 'vi-VN' : 'en-GB', {hour: '2-digit', minute: '2-digit'}).format(new Date(iso));
  }

  /** Stacked bars: one per hour of the last 24, a colour per moderator. */
  function perHourChart(stats) {
    // The service lists only hours with decisions: the chart has all 24, ending with the current one.
    const given = new Map(Object.entries(stats.decisions_per_hour_per_moderator || {})
      .map(([hour, counts]) => [Date.parse(hour), counts]));
    const thisHour = Math.floor(Date.now() / 3600000) * 3600000;
    const byHour = {};
    const hours = [];
    for (let i = 23; i >= 0; i -= 1) {
      const start = thisHour - i * 3600000;
      const hour = new Date(start).toISOString();
      hours.push(hour);
      byHour[hour] = given.get(start) || {};
    }
    const names = [...new Set(hours.flatMap((hour) => Object.keys(byHour[hour])))].sort();
    const width = 480;
    const height = 180;
    const pad = {left: 28, right: 6, top: 10, bottom: 24};
    const max = Math.max(1, ...hours.map((hour) => Object.values(byHour[hour]).reduce((a, b) => a + b, 0)));
    const chart = chartFrame(t('stats.per_hour_chart', {max}), width, height);
    const plotH = height - pad.top - pad.bottom;
    const step = (width - pad.left - pad.right) / Math.max(1, hours.length);
    chart.append(
      svg('line', {class: 'axis', x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom}),
      svg('text', {class: 'tick', x: pad.left - 4, y: pad.top + 4, 'text-anchor': 'end', text: String(max)}),
      svg('text', {class: 'tick', x: pad.left - 4, y: height - pad.bottom, 'text-anchor': 'end', text: '0'}));
    hours.forEach((hour, index) => {
      let y = height - pad.bottom;
      const x = pad.left + index * step + 1;
      names.forEach((name, n) => {
        const value = byHour[hour][name] || 0;
        if (!value) return;
        const barH = (value / max) * plotH;
        y -= barH;
        chart.append(svg('rect', {class: `bar s${n % 8}`, x: x.toFixed(1), y: y.toFixed(1), width: Math.max(1, step - 2).toFixed(1),
          height: barH.toFixed(1), dataset: {moderator: name, hour, value}},
        svg('title', {text: t('stats.bar_title', {who: name, hour: hourLabel(hour), n: value})})));
      });
      if (index % 6 === 5) {
        chart.append(svg('text', {class: 'tick', x: (x + step / 2).toFixed(1), y: height - 8, 'text-anchor': 'middle',
          text: hourLabel(hour)}));
      }
    });
    const legend = h('ul', {class: 'legend'}, names.map((name, n) => h('li', null,
      h('span', {class: `swatch s${n % 8}`, 'aria-hidden': 'true'}), name)));
    return [chart, legend];
  }

  /** Median and p90 of the wait from submission to decision, over a day and over a week. */
  function waitChart(stats) {
    const periods = stats.time_to_decision ? [['day', stats.time_to_decision.day], ['week', stats.time_to_decision.week]] : [];
    const width = 480;
    const height = 160;
    const pad = {left: 130, right: 70, top: 8, bottom: 8};
    const values = periods.flatMap(([, q]) => [q.median_seconds || 0, q.p90_seconds || 0]);
    const max = Math.max(1, ...values);
    const chart = chartFrame(t('stats.wait_chart'), width, height);
    const rowH = (height - pad.top - pad.bottom) / Math.max(1, periods.length * 2);
    let row = 0;
    for (const [period, q] of periods) {
      for (const [kind, value] of [['median', q.median_seconds], ['p90', q.p90_seconds]]) {
        const y = pad.top + row * rowH;
        const barW = ((value || 0) / max) * (width - pad.left - pad.right);
        const label = t(`stats.${period}_${kind}`);
        chart.append(
          svg('text', {class: 'tick', x: pad.left - 6, y: (y + rowH * 0.65).toFixed(1), 'text-anchor': 'end', text: label}),
          svg('rect', {class: `bar ${kind === 'median' ? 's0' : 's1'}`, x: pad.left, y: (y + 3).toFixed(1),
            width: Math.max(value === null ? 0 : 1, barW).toFixed(1), height: Math.max(1, rowH - 6).toFixed(1),
            dataset: {period, kind, value: value === null ? '' : value, decisions: q.decisions}},
          svg('title', {text: `${label}: ${value === null ? '—' : duration(value)}`})),
          svg('text', {class: 'value', x: (pad.left + barW + 4).toFixed(1), y: (y + rowH * 0.65).toFixed(1),
            text: value === null ? '—' : duration(value)}));
        row += 1;
      }
    }
    return chart;
  }

  function renderStatsView(main) {
    main.replaceChildren(h('div', {class: 'view-head'}, h('h1', {tabindex: '-1', text: t('stats.title')})),
      h('div', {class: 'stats-body'}, h('p', {class: 'muted', text: t('loading')})));
    return refreshStats(true);
  }

  function drawStats(stats) {
    const body = app.main && app.main.querySelector('.stats-body');
    if (!body) return;
    const perModerator = Object.entries(stats.decisions_per_moderator || {}).sort();
    const actions = ['approve', 'reject', 'spam', 'undo'];
    const ttd = stats.time_to_decision;
    body.replaceChildren(
      h('dl', {class: 'figures'},
        h('div', null, h('dt', {text: t('stats.depth')}), h('dd', {class: 'depth', text: String(stats.queue_depth)})),
        h('div', null, h('dt', {text: t('stats.oldest')}), h('dd', {text: stats.oldest_pending_age_seconds === null ? '—' : duration(stats.oldest_pending_age_seconds)})),
        ttd ? h('div', null, h('dt', {text: t('stats.day_decisions')}), h('dd', {text: String(ttd.day.decisions)})) : null,
        ttd ? h('div', null, h('dt', {text: t('stats.week_decisions')}), h('dd', {text: String(ttd.week.decisions)})) : null),
      h('section', {class: 'chart-box'}, h('h2', {text: t('stats.per_hour')}), perHourChart(stats)),
      h('section', {class: 'chart-box'}, h('h2', {text: t('stats.wait')}), waitChart(stats)),
      h('section', {class: 'chart-box'}, h('h2', {text: t('stats.per_moderator')}),
        perModerator.length ? h('div', {class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': t('table.label')}, h('table', null,
          h('thead', null, h('tr', null, h('th', {scope: 'col', text: t('stats.moderator')}),
            actions.map((a) => h('th', {scope: 'col', text: t(`history.${a}`)})))),
          h('tbody', null, perModerator.map(([name, counts]) => h('tr', null, h('th', {scope: 'row', text: name}),
            actions.map((a) => h('td', {text: String(counts[a] || 0)}))))))) : h('p', {class: 'muted', text: t('stats.none')})));
  }

  // -- admin: people, machine tokens, webhooks, articles -------------------------------------------------

  function table(headers, rows) {
    return h('div', {class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': t('table.label')}, h('table', null,
      h('thead', null, h('tr', null, headers.map((key) => h('th', {scope: 'col', text: t(key)})))),
      h('tbody', null, rows)));
  }

  function secretOnce(labelText, value) {
    const input = h('input', {type: 'text', readonly: true, value, class: 'secret'});
    return h('div', {class: 'secret-once', role: 'status'}, field(labelText, input, t('admin.shown_once')));
  }

  async function adminSection(container, load) {
    container.replaceChildren(h('p', {class: 'muted', text: t('loading')}));
    try {
      await load();
    } catch (error) {
      container.replaceChildren(h('p', {class: 'error', text: error.message}));
    }
  }

  async function peopleSection(box) {
    const people = await api('GET', '/v1/accounts');
    const rows = people.accounts.map((account, _, __, row = nextId('row')) => h('tr', null,
      h('th', {scope: 'row', id: row, text: account.name}),
      h('td', {text: t(`role.${account.role}`)}),
      h('td', {text: account.disabled ? t('admin.disabled') : t('admin.active')}),
      h('td', {class: 'row-actions'},
        button(account.role === 'admin' ? t('admin.make_moderator') : t('admin.make_admin'), async () => {
          await act(() => api('PATCH', `/v1/accounts/${path(account.name)}`, {role: account.role === 'admin' ? 'moderator' : 'admin'}));
          renderPeople(box);
        }, {'aria-describedby': row}),
        account.disabled ? null : button(t('admin.disable'), async () => {
          if (!window.confirm(t('admin.confirm_disable', {name: account.name}))) return;
          await act(() => api('POST', `/v1/accounts/${path(account.name)}/disable`));
          renderPeople(box);
        }, {'aria-describedby': row}),
        button(t('admin.end_sessions'), async () => {
          const result = await act(() => api('POST', `/v1/accounts/${path(account.name)}/sessions/revoke`));
          if (result) toast(t('admin.sessions_ended', {n: result.ended, name: account.name}));
        }, {'aria-describedby': row}),
        account.disabled ? null : button(t('admin.reset'), async () => {
          const made = await act(() => api('POST', `/v1/accounts/${path(account.name)}/password-reset`));
          if (made) {
            result.replaceChildren(secretOnce(t('admin.reset_link', {name: made.name}), made.link));
            result.querySelector('input').focus();
          }
        }, {'aria-describedby': row}))));
    const name = h('input', {type: 'text', name: 'name', required: true, minlength: '2', maxlength: '40', autocomplete: 'off'});
    const role = h('select', {name: 'role'}, ['moderator', 'admin'].map((r) => h('option', {value: r, text: t(`role.${r}`)})));
    const result = h('div');
    const form = h('form', {class: 'inline-form'}, h('h3', {text: t('admin.invite')}), field(t('admin.name'), name),
      field(t('admin.role'), role), h('p', {class: 'field buttons'}, h('button', {type: 'submit', text: t('admin.invite_send')})), result);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const made = await act(() => api('POST', '/v1/accounts/invitations', {name: name.value.trim(), role: role.value}));
      if (made) {
        result.replaceChildren(secretOnce(t('admin.invite_link', {name: made.name}), made.link));
        name.value = '';
      }
    });
    box.replaceChildren(table(['admin.name', 'admin.role', 'admin.status', 'admin.actions'], rows), form);
  }

  function renderPeople(box) {
    return adminSection(box, () => peopleSection(box));
  }

  async function act(run) {
    try {
      return await run();
    } catch (error) {
      showError(error);
      return null;
    }
  }

  async function tokensSection(box) {
    const tokens = await api('GET', '/v1/tokens');
    const rows = tokens.tokens.map((token, _, __, row = nextId('row')) => h('tr', null,
      h('th', {scope: 'row', id: row, text: token.name}), h('td', {text: t(`role.${token.role}`)}),
      h('td', {text: when(token.created_at)}), h('td', {text: token.expires_at ? when(token.expires_at) : t('admin.never')}),
      h('td', null, button(t('admin.revoke'), async () => {
        if (!window.confirm(t('admin.confirm_revoke', {name: token.name}))) return;
        await act(() => api('DELETE', `/v1/tokens/${path(token.id)}`));
        adminSection(box, () => tokensSection(box));
      }, {'aria-describedby': row}))));
    const name = h('input', {type: 'text', name: 'name', required: true, maxlength: '80', autocomplete: 'off'});
    const role = h('select', {name: 'role'}, ['feed', 'moderator', 'admin'].map((r) => h('option', {value: r, text: t(`role.${r}`)})));
    const days = h('input', {type: 'number', name: 'days', min: '1', max: '3650', inputmode: 'numeric'});
    const result = h('div');
    const form = h('form', {class: 'inline-form'}, h('h3', {text: t('admin.token_new')}), field(t('admin.name'), name),
      field(t('admin.role'), role), field(t('admin.token_days'), days, t('admin.token_days_hint')),
      h('p', {class: 'field buttons'}, h('button', {type: 'submit', text: t('admin.token_create')})), result);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const body = {name: name.value.trim(), role: role.value};
      if (days.value) body.ttl_seconds = Math.round(Number(days.value) * 86400);
      const made = await act(() => api('POST', '/v1/tokens', body));
      if (made) {
        await adminSection(box, () => tokensSection(box));
        box.append(secretOnce(t('admin.token_value', {name: made.name}), made.token));
      }
    });
    box.replaceChildren(tokens.tokens.length ? table(['admin.name', 'admin.role', 'admin.created', 'admin.expires', 'admin.actions'], rows)
      : h('p', {class: 'muted', text: t('admin.no_tokens')}), form);
  }

  const EVENTS = ['comment.submitted', 'comment.approved', 'comment.rejected', 'comment.retracted'];

  async function webhooksSection(box) {
    const hooks = await api('GET', '/v1/webhooks');
    const deliveries = h('div', {class: 'deliveries'});
    const rows = hooks.webhooks.map((hook, _, __, row = nextId('row')) => h('tr', null,
      h('th', {scope: 'row', id: row, class: 'url', text: hook.url}), h('td', {text: hook.events.join(', ')}),
      h('td', {text: when(hook.created_at)}),
      h('td', {class: 'row-actions'},
        button(t('admin.deliveries'), () => showDeliveries(deliveries, hook), {'aria-describedby': row}),
        button(t('admin.delete'), async () => {
          if (!window.confirm(t('admin.confirm_delete_webhook', {url: hook.url}))) return;
          await act(() => api('DELETE', `/v1/webhooks/${path(hook.id)}`));
          adminSection(box, () => webhooksSection(box));
        }, {'aria-describedby': row}))));
    const url = h('input', {type: 'url', name: 'url', required: true, maxlength: '2000', autocomplete: 'off'});
    const secret = h('input', {type: 'password', name: 'secret', required: true, minlength: '16', maxlength: '200', autocomplete: 'new-password'});
    const boxes = EVENTS.map((event) => {
      const input = h('input', {type: 'checkbox', name: 'events', value: event});
      input.id = nextId('event');
      input.checked = event === 'comment.approved';
      return h('p', {class: 'choice'}, input, h('label', {for: input.id, text: event}));
    });
    const form = h('form', {class: 'inline-form'}, h('h3', {text: t('admin.webhook_new')}), field(t('admin.webhook_url'), url),
      h('fieldset', null, h('legend', {text: t('admin.webhook_events')}), boxes),
      field(t('admin.webhook_secret'), secret, t('admin.webhook_secret_hint')),
      h('p', {class: 'field buttons'}, h('button', {type: 'submit', text: t('admin.webhook_create')})));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const events = [...form.querySelectorAll('input[name="events"]:checked')].map((input) => input.value);
      const made = await act(() => api('POST', '/v1/webhooks', {url: url.value.trim(), events, secret: secret.value}));
      if (made) {
        toast(t('admin.webhook_created'));
        adminSection(box, () => webhooksSection(box));
      }
    });
    box.replaceChildren(hooks.webhooks.length ? table(['admin.webhook_url', 'admin.webhook_events', 'admin.created', 'admin.actions'], rows)
      : h('p', {class: 'muted', text: t('admin.no_webhooks')}), deliveries, form);
  }

  async function showDeliveries(container, hook) {
    container.replaceChildren(h('p', {class: 'muted', text: t('loading')}));
    const result = await act(() => api('GET', `/v1/webhooks/${path(hook.id)}/deliveries${query({limit: 50})}`));
    if (!result) {
      container.replaceChildren();
      return;
    }
    const heading = h('h3', {tabindex: '-1', text: t('admin.deliveries_of', {url: hook.url})});
    const rows = result.deliveries.map((d) => h('tr', null, h('td', {text: d.type}), h('td', {text: d.state}),
      h('td', {text: String(d.attempts)}), h('td', {text: d.last_status === null ? '—' : String(d.last_status)}),
      h('td', {text: d.last_error || '—'}), h('td', {text: when(d.updated_at)})));
    container.replaceChildren(heading, rows.length ? table(['admin.event', 'admin.status', 'admin.attempts', 'admin.last_status',
      'admin.last_error', 'admin.updated'], rows) : h('p', {class: 'muted', text: t('admin.no_deliveries')}));
    heading.focus();
  }

  function articlesSection(box) {
    const article = h('input', {type: 'text', name: 'article_id', required: true, maxlength: '128', autocomplete: 'off'});
    const result = h('p', {role: 'status'});
    const set = (open) => async () => {
      const id = article.value.trim();
      if (!id) {
        article.focus();
        return;
      }
      const state = await act(() => api('POST', `/v1/moderation/articles/${path(id)}/${open ? 'open' : 'close'}`));
      if (state) result.textContent = t(state.open ? 'admin.article_open' : 'admin.article_closed', {id: state.article_id});
    };
    const form = h('form', {class: 'inline-form'}, field(t('filter.article'), article),
      h('p', {class: 'field buttons'}, button(t('admin.open'), set(true)), button(t('admin.close'), set(false))), result);
    form.addEventListener('submit', (event) => event.preventDefault());
    box.replaceChildren(form);
  }

  function renderAdminView(main) {
    if (app.session.role !== 'admin') {
      main.replaceChildren(h('h1', {tabindex: '-1', text: t('admin.title')}), h('p', {text: t('admin.only')}));
      return null;
    }
    const sections = [['people', peopleSection], ['tokens', tokensSection], ['webhooks', webhooksSection],
      ['articles', articlesSection]];
    main.replaceChildren(h('div', {class: 'view-head'}, h('h1', {tabindex: '-1', text: t('admin.title')})));
    return Promise.all(sections.map(([name, load]) => {
      const box = h('div', {class: 'admin-body'});
      const headingId = nextId('admin');
      main.append(h('section', {class: 'admin-section', 'aria-labelledby': headingId},
        h('h2', {id: headingId, text: t(`admin.${name}`)}), box));
      return adminSection(box, () => load(box));
    }));
  }

  // -- layout, routes, live figures ---------------------------------------------------------------------------

  const VIEWS = ['queue', 'approved', 'rejected', 'spam', 'retracted', 'reported', 'search', 'stats', 'admin'];
  let nav = null;
  let oldest = null;

  function parseRoute() {
    const raw = location.hash.startsWith('#/') ? location.hash.slice(2) : 'queue';
    const [where, search] = raw.split('?');
    const [name, arg] = where.split('/');
    return {name: VIEWS.includes(name) || name === 'comment' ? name : 'queue', arg: arg ? decodeURIComponent(arg) : null,
      query: new URLSearchParams(search || '')};
  }

  function renderLayout() {
    document.documentElement.lang = lang;
    document.title = t('app.title');
    const main = h('main', {id: 'main', tabindex: '-1'});
    app.main = main;
    oldest = h('p', {class: 'oldest', id: 'oldest'});
    const links = VIEWS.filter((view) => view !== 'admin' || app.session.role === 'admin')
      .map((view) => h('li', null, h('a', {href: `#/${view}`, dataset: {view}}, h('span', {text: t(`nav.${view}`)}),
        h('span', {class: 'count', dataset: {count: view}}))));
    nav = h('nav', {class: 'tabs', 'aria-label': t('nav.label')}, h('ul', null, links));
    toasts = h('div', {class: 'toasts', role: 'status', 'aria-live': 'polite'});
    alerts = h('div', {class: 'toasts alerts', role: 'alert', 'aria-live': 'assertive'});
    const header = h('header', {class: 'top'},
      h('a', {class: 'skip', href: '#main', onclick: (event) => { event.preventDefault(); main.focus(); }, text: t('app.skip')}),
      h('div', {class: 'bar'},
        h('p', {class: 'brand', text: t('app.title')}), oldest,
        h('p', {class: 'who'}, h('span', {class: 'person', text: t('app.signed_in', {name: app.session.name, role: t(`role.${app.session.role}`)})}),
          ' ', langSwitch(), ' ', button(t('app.sign_out'), signOut, {class: 'sign-out'}))),
      nav);
    root.replaceChildren(header, main, h('div', {class: 'announcers'}, toasts, alerts));
    updateLive();
  }

  function langSwitch() {
    const other = lang === 'vi' ? 'en' : 'vi';
    return button(t('app.switch_lang'), () => {
      lang = other;
      try {
        window.localStorage.setItem('comments-console-lang', lang);
      } catch (_) { /* kept for this page only */ }
      if (app.session) {
        renderLayout();
        route();
      } else if (inviteToken()) {
        renderInvite(inviteToken());
      } else {
        renderSignIn('');
      }
    }, {lang: other, class: 'lang'});
  }

  async function route() {
    if (!app.session) return;
    const next = parseRoute();
    const previous = app.route;
    app.route = next;
    if (previous && previous.name === 'queue' && next.name !== 'queue') {
      queue.active = false;
      await releaseAll();
    }
    lists.active = false;
    for (const link of nav.querySelectorAll('a')) {
      if (link.dataset.view === next.name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    const main = app.main;
    let loading = null;
    if (next.name === 'queue') renderQueueView(main);
    else if (DECIDED_VIEWS.includes(next.name)) loading = renderStateView(main, next.name);
    else if (next.name === 'reported') loading = renderReportedView(main);
    else if (next.name === 'search') loading = renderSearchView(main);
    else if (next.name === 'comment' && next.arg) loading = renderCommentView(main, next.arg);
    else if (next.name === 'stats') loading = renderStatsView(main);
    else if (next.name === 'admin') loading = renderAdminView(main);
    else renderQueueView(main);
    if (next.name !== 'queue') {
      const focusSearch = next.name === 'search' && searchFocusWanted;
      searchFocusWanted = false;
      if (focusSearch) document.getElementById('search-q').focus();
      else main.querySelector('h1').focus();
    }
    if (loading) await loading;
  }

  let searchFocusWanted = false;

  async function refreshStats(draw) {
    try {
      const stats = await api('GET', '/v1/moderation/stats');
      app.stats = stats;
      app.statsAt = Date.now();
      updateLive();
      if (draw || (app.route && app.route.name === 'stats')) drawStats(stats);
    } catch (error) {
      if (draw && app.main) {
        const body = app.main.querySelector('.stats-body');
        if (body) body.replaceChildren(h('p', {class: 'error', text: error.message}));
      }
    }
  }

  function updateLive() {
    if (!oldest) return;
    const stats = app.stats;
    if (!stats) {
      oldest.textContent = t('live.loading');
      return;
    }
    const age = stats.oldest_pending_age_seconds;
    oldest.textContent = age === null ? t('live.none_waiting')
      : t('live.oldest', {age: duration(age + (Date.now() - app.statsAt) / 1000)});
    oldest.classList.toggle('is-late', age !== null && age > 3600);
    const counts = {queue: stats.queue_depth, ...(stats.totals || {})};
    for (const node of root.querySelectorAll('[data-count]')) {
      const view = node.dataset.count;
      if (!(view in counts)) continue;
      node.textContent = String(counts[view]);
      node.setAttribute('title', view === 'queue' ? t('live.count_pending') : t('live.count_total'));
    }
    if (queue.active) updateQueueStatus();
  }

  function tick() {
    updateLive();
    const now = Date.now();
    for (const node of root.querySelectorAll('[data-since]')) {
      node.textContent = duration((now - Date.parse(node.dataset.since)) / 1000);
    }
  }

  async function poll() {
    const live = app.events && app.events.readyState === EventSource.OPEN;
    if (!live || (app.route && app.route.name === 'stats')) await refreshStats(false);
    if (queue.active && queue.items.length < BATCH / 2) claimMore();
  }

  /** The live counts (GET /v1/moderation/events): tab counts and the oldest comment's age as they change, and a
   * claim when comments arrive while my queue has room. On an error the browser reconnects by itself; meanwhile
   * `poll` fetches the counts as before. */
  function startEvents() {
    if (!window.EventSource) return;
    const source = new EventSource('/v1/moderation/events');
    app.events = source;
    source.addEventListener('counts', (event) => {
      if (app.events !== source) return;
      const counts = JSON.parse(event.data);
      app.stats = {...(app.stats || {}), queue_depth: counts.queue_depth, totals: counts.totals,
        oldest_pending_age_seconds: counts.oldest_pending_age_seconds};
      app.statsAt = Date.now();
      updateLive();
      if (queue.active && counts.queue_depth > counts.claimed && queue.items.length < BATCH) claimMore();
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED && app.events === source) app.events = null;
    });
  }

  function stopEvents() {
    if (app.events) app.events.close();
    app.events = null;
  }

  function startTimers() {
    stopTimers();
    const seconds = app.settings.poll_seconds || 5;
    app.timers.push(setInterval(poll, seconds * 1000), setInterval(tick, 1000),
      setInterval(renewLeases, Math.max(5, Math.floor(app.settings.lease_seconds / 3)) * 1000));
  }

  function stopTimers() {
    for (const timer of app.timers) clearInterval(timer);
    app.timers = [];
    stopEvents();
  }

  // -- keys --------------------------------------------------------------------------------------------------

  function typing(target) {
    if (!(target instanceof HTMLElement)) return false;
    if (target.isContentEditable || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
    return target instanceof HTMLInputElement && !['checkbox', 'radio', 'button', 'submit', 'reset'].includes(target.type);
  }

  function onKey(event) {
    if (!app.session || app.session.totp_enrolment_required || event.ctrlKey || event.metaKey || event.altKey
      || event.isComposing || dialogOpen() || typing(event.target)) return;
    const inQueue = app.route && app.route.name === 'queue';
    const key = event.key;
    if (key === 'j' || key === 'k') {
      if (inQueue) move(key === 'j' ? 1 : -1);
      else if (lists.active) listMove(key === 'j' ? 1 : -1);
      else return;
    } else if (inQueue && (key === 'a' || key === 's')) {
      const comment = byId(queue.currentId);
      if (comment) decideQueue([comment], key === 'a' ? 'approve' : 'spam', '');
    } else if (inQueue && key === 'r') {
      rejectCurrent();
    } else if (inQueue && key === 'x') {
      if (queue.currentId) toggleSelected(queue.currentId, !queue.selected.has(queue.currentId));
    } else if (inQueue && key === 'A') {
      bulkDecide('approve');
    } else if (app.route && app.route.name === 'reported' && (key === 'g' || key === 't')) {
      const comment = lists.active ? reported.comments.get(lists.currentId) : null;
      if (comment) resolveReports(comment, key === 'g' ? 'keep' : 'retract');
    } else if (key === 'u') {
      undo(null);
    } else if (key === '/') {
      searchFocusWanted = true;
      if (location.hash.startsWith('#/search')) {
        searchFocusWanted = false;
        document.getElementById('search-q').focus();
      } else {
        location.hash = '#/search';
      }
    } else if (key === '?') {
      showKeys();
    } else {
      return;
    }
    event.preventDefault();
  }

  // -- signing in and out ------------------------------------------------------------------------------------

  /** The invitation's link (`#/invite/<token>`, or the printed /moderation/invite/<token> sent here): set a password. */
  async function renderInvite(token) {
    stopTimers();
    document.documentElement.lang = lang;
    document.title = t('invite.title');
    const status = h('p', {class: 'muted', text: t('loading')});
    const main = h('main', {id: 'main', class: 'signin'}, h('h1', {text: t('invite.title')}), status,
      h('p', {class: 'lang-line'}, langSwitch()));
    root.replaceChildren(main);
    let made;
    try {
      made = await api('GET', `/v1/accounts/invitations/${path(token)}`, undefined, {signingIn: true});
    } catch (error) {
      status.textContent = error.message;
      status.after(h('p', null, h('a', {href: '/moderation/', text: t('invite.to_signin')})));
      return;
    }
    status.textContent = t('invite.for', {name: made.name, role: t(`role.${made.role}`)});
    const name = h('input', {type: 'text', name: 'username', autocomplete: 'username', readonly: true, value: made.name});
    const password = h('input', {type: 'password', name: 'password', autocomplete: 'new-password', required: true,
      minlength: '12', maxlength: '256'});
    const again = h('input', {type: 'password', name: 'again', autocomplete: 'new-password', required: true, maxlength: '256'});
    const error = h('p', {class: 'error', role: 'alert'});
    const form = h('form', {class: 'signin-form'}, field(t('invite.name'), name),
      field(t('invite.password'), password, t('invite.password_hint')), field(t('invite.again'), again), error,
      h('p', null, h('button', {type: 'submit', text: t('invite.submit')})));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.textContent = '';
      if (password.value !== again.value) {
        error.textContent = t('invite.mismatch');
        again.focus();
        return;
      }
      try {
        await api('POST', `/v1/accounts/invitations/${path(token)}/accept`, {password: password.value}, {signingIn: true});
      } catch (failure) {
        error.textContent = failure.message;
        password.focus();
        return;
      }
      history.replaceState(null, '', '/moderation/');
      renderSignIn(t('invite.done'), made.name);
    });
    status.after(form);
    password.focus();
  }

  function renderSignIn(message, knownName) {
    stopTimers();
    app.main = null;
    toasts = null;
    alerts = null;
    oldest = null;
    document.documentElement.lang = lang;
    document.title = t('signin.title');
    const name = h('input', {id: 'signin-name', name: 'username', type: 'text', autocomplete: 'username', required: true,
      maxlength: '100', autocapitalize: 'none', spellcheck: 'false'});
    const password = h('input', {id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password',
      required: true, maxlength: '256'});
    const code = h('input', {id: 'signin-totp', name: 'totp', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code',
      maxlength: '10'});
    const codeField = field(t('signin.totp'), code);
    codeField.hidden = true;
    const error = h('p', {class: 'error', role: 'alert', text: message || ''});
    const submit = h('button', {type: 'submit', text: t('signin.submit')});
    const form = h('form', {class: 'signin-form', 'aria-labelledby': 'signin-title'},
      field(t('signin.name'), name), field(t('signin.password'), password), codeField, error, h('p', null, submit));
    const forgot = button(t('signin.forgot'), () => renderForgot(name.value.trim()), {class: 'forgot'});
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.textContent = '';
      submit.disabled = true;
      const body = {name: name.value.trim(), password: password.value};
      if (!codeField.hidden && code.value.trim()) body.totp = code.value.trim();
      try {
        const session = await api('POST', '/v1/session', body, {signingIn: true});
        await start(session);
      } catch (failure) {
        if (failure.code === 'totp_required' || failure.code === 'totp_invalid') {
          codeField.hidden = false;
          code.focus();
        }
        error.textContent = failure.message;
      } finally {
        submit.disabled = false;
      }
    });
    root.replaceChildren(h('main', {id: 'main', class: 'signin'},
      h('h1', {id: 'signin-title', text: t('signin.title')}),
      h('p', {class: 'hint', text: t('signin.hint')}), form, h('p', null, forgot),
      h('p', {class: 'lang-line'}, langSwitch())));
    if (knownName) {
      name.value = knownName;
      password.focus();
    } else {
      name.focus();
    }
  }

  /** "Forgot your password?": ask for a reset link by name. The answer is the same whether or not the name has an
   *  account (the link goes to the account's notification address, if it has one). */
  function renderForgot(knownName) {
    stopTimers();
    document.documentElement.lang = lang;
    document.title = t('forgot.title');
    const name = h('input', {id: 'forgot-name', name: 'username', type: 'text', autocomplete: 'username', required: true,
      maxlength: '100', autocapitalize: 'none', spellcheck: 'false', value: knownName || ''});
    const status = h('p', {role: 'status'});
    const error = h('p', {class: 'error', role: 'alert'});
    const submit = h('button', {type: 'submit', text: t('forgot.submit')});
    const form = h('form', {class: 'signin-form', 'aria-labelledby': 'forgot-title'},
      field(t('signin.name'), name), error, h('p', null, submit));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.textContent = '';
      status.textContent = '';
      submit.disabled = true;
      try {
        await api('POST', '/v1/session/password-reset', {name: name.value.trim()}, {signingIn: true});
        status.textContent = t('forgot.sent');
      } catch (failure) {
        error.textContent = failure.message;
      } finally {
        submit.disabled = false;
      }
    });
    root.replaceChildren(h('main', {id: 'main', class: 'signin'},
      h('h1', {id: 'forgot-title', text: t('forgot.title')}), h('p', {class: 'hint', text: t('forgot.explain')}),
      form, status, h('p', null, button(t('forgot.back'), () => renderSignIn('', name.value.trim()))),
      h('p', {class: 'lang-line'}, langSwitch())));
    name.focus();
  }

  function renderEnrolment() {
    document.title = t('totp.title');
    const code = h('input', {type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', required: true});
    const secretBox = h('div');
    const error = h('p', {class: 'error', role: 'alert'});
    const form = h('form', {class: 'signin-form'}, secretBox, field(t('totp.code'), code), error,
      h('p', null, h('button', {type: 'submit', text: t('totp.confirm')})));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await api('POST', '/v1/session/totp/confirm', {code: code.value.trim()});
        await start(await api('GET', '/v1/session'));
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    const begin = button(t('totp.begin'), async () => {
      try {
        const enrolment = await api('POST', '/v1/session/totp');
        secretBox.replaceChildren(secretOnce(t('totp.secret'), enrolment.secret), secretOnce(t('totp.uri'), enrolment.otpauth_uri));
        code.focus();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    root.replaceChildren(h('main', {id: 'main', class: 'signin'}, h('h1', {tabindex: '-1', text: t('totp.title')}),
      h('p', {text: t('totp.explain')}), h('p', null, begin), form,
      h('p', null, button(t('app.sign_out'), signOut, {class: 'sign-out'}))));
    begin.focus();
  }

  async function start(session) {
    app.session = session;
    if (session.totp_enrolment_required) {
      renderEnrolment();
      return;
    }
    try {
      app.settings = await api('GET', '/moderation/settings');
    } catch (error) {
      renderSignIn(error.message);
      return;
    }
    app.route = null;
    renderLayout();
    startTimers();
    startEvents();
    refreshStats(false);
    await route();
  }

  async function signOut() {
    stopTimers();
    queue.active = false;
    await releaseAll();
    try {
      await api('DELETE', '/v1/session');
    } catch (_) { /* signed out either way */ }
    app.session = null;
    app.route = null;
    renderSignIn(t('signin.signed_out'));
  }

  function sessionLost() {
    app.session = null;
    app.route = null;
    queue.active = false;
    queue.items = [];
    renderSignIn(t('signin.ended'));
  }

  function inviteToken() {
    const found = /^#\/invite\/([A-Za-z0-9_-]{1,100})$/.exec(location.hash);
    return found ? found[1] : null;
  }

  async function boot() {
    document.addEventListener('keydown', onKey);
    window.addEventListener('hashchange', () => {
      if (location.hash === '#main') return;
      route();
    });
    window.addEventListener('pagehide', releaseOnLeave);
    if (inviteToken()) {
      renderInvite(inviteToken());
      return;
    }
    let session = null;
    try {
      session = await api('GET', '/v1/session', undefined, {signingIn: true});
    } catch (_) {
      session = null;
    }
    if (session) await start(session);
    else renderSignIn('');
  }

  boot();
})();
