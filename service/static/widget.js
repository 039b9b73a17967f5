/* Comments widget: hand-written ES2019, no framework, no build step.
 * Embed: <div data-comments-article="ID" data-lang="vi|en"></div><script src=".../widget.js" async></script>
 * Reader-supplied text is only ever placed in text nodes (textContent / Node.append of strings). */
(function () {
  'use strict';
  var CSS_VERSION = '__WIDGET_CSS_VERSION__';
  var POLL_MS = 15000;
  var PENDING_MAX_AGE = 30 * 864e5;

  // Every message, per language, from service/i18n.py (the service's own wording): filled in when served.
  var L = {/*__WIDGET_MESSAGES__*/};
  var LIMITS = { name: 80, title: 200, body: 5000 };
  var FIELDS = ['name', 'email', 'title', 'body', 'captcha_answer'];
  // Whether the service sends email (COMMENTS_SMTP_URL): without it, no email checkbox. Filled in when served.
  var MAIL = /*__WIDGET_MAIL__*/false;
  var uid = 0;
  var current = document.currentScript; // only valid now, while the script first runs

  // fmt('{label} tối đa {max} ký tự', {label: 'Họ tên', max: 80}), like Python's str.format in i18n.py
  function fmt(s, p) {
    return String(s).replace(/\{(\w+)\}/g, function (m, k) { return p && Object.prototype.hasOwnProperty.call(p, k) ? String(p[k]) : m; });
  }
  function norm(s) { return String(s || '').normalize('NFC').trim(); }
  function len(s) { return Array.from(s).length; }
  function pad(n) { return (n < 10 ? '0' : '') + n; }

  // h('tag', {attr: value, text: 'x', onclick: fn}, [children]) - strings become text nodes.
  function h(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v == null || v === false) return;
      if (k === 'text') e.textContent = v;
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    });
    (kids || []).forEach(function (c) { if (c != null && c !== false) e.append(c); });
    return e;
  }

  function ownScript() {
    if (current && current.src) return current;
    var all = document.querySelectorAll('script[src]');
    for (var i = all.length - 1; i >= 0; i--) {
      if (/\/widget(\.[0-9a-f]+)?\.js([?#]|$)/.test(all[i].src)) return all[i];
    }
    return null;
  }

  function store(op, key, val) {
    try {
      var ls = window.localStorage;
      if (op === 'get') return JSON.parse(ls.getItem(key) || 'null');
      if (val == null) ls.removeItem(key); else ls.setItem(key, JSON.stringify(val));
    } catch (e) { /* storage disabled: the widget still works, just forgets */ }
    return null;
  }

  function avatarColor(seed) {
    var x = 2166136261; // FNV-1a, then a final mix so similar seeds get distant hues
    for (var i = 0; i < seed.length; i++) x = Math.imul(x ^ seed.charCodeAt(i), 16777619);
    x = Math.imul(x ^ (x >>> 15), 2246822507) ^ (x >>> 13);
    return 'hsl(' + ((x >>> 0) % 360) + ',55%,38%)';
  }

  // A fetch that throws TypeError was refused by CORS (the page's origin is not allowed) or never reached the
  // service. The reader sees "could not load"; the developer gets the setting to change, once per page. The
  // stylesheet is served to any origin, so fetching it tells the two cases apart.
  var explained = false;
  function explain(base) {
    if (explained) return;
    explained = true;
    var origin = location.origin, fix = 'COMMENTS_ALLOWED_ORIGINS=' + origin;
    fetch(base + '/widget.css?v=' + CSS_VERSION, { credentials: 'omit' }).then(function () {
      console.error('Comments widget: the service at ' + base + ' does not allow this page\'s origin ' + origin +
        '. Add it to COMMENTS_ALLOWED_ORIGINS (exact origins, comma-separated) on the service and restart it: ' +
        fix);
    }, function () {
      console.error('Comments widget: could not reach the service at ' + base + ' from ' + origin + '. Check ' +
        'that it runs at that address and that COMMENTS_ALLOWED_ORIGINS on the service lists ' + origin + '.');
    });
  }

  function Widget(host, base) {
    this.host = host;
    this.base = base;
    this.article = host.getAttribute('data-comments-article');
    this.lang = (host.getAttribute('data-lang') || 'vi').toLowerCase().slice(0, 2) === 'en' ? 'en' : 'vi';
    this.t = L[this.lang];
    this.n = ++uid;
    this.nodes = {};
    this.cursor = null;
    this.captcha = null;
    this.parent = null;
    this.pollTimer = 0;
    this.loadSeq = 0;
    this.seen = {};
    this.pkey = 'cmts:pending:' + this.article;
    this.render();
  }

  var W = Widget.prototype;

  W.api = function (method, path, body, headers, fresh) {
    var hd = { Accept: 'application/json', 'Accept-Language': this.lang };
    Object.keys(headers || {}).forEach(function (k) { hd[k] = headers[k]; });
    if (body !== undefined) hd['Content-Type'] = 'application/json';
    var base = this.base;
    return fetch(base + path, {
      method: method, headers: hd, credentials: 'omit', mode: 'cors', cache: fresh ? 'no-cache' : 'default',
      body: body === undefined ? undefined : JSON.stringify(body)
    }).catch(function (e) {
      if (e && e.name === 'TypeError') explain(base);
      throw e;
    }).then(function (r) {
      return r.text().then(function (txt) {
        var data = null;
        try { data = txt ? JSON.parse(txt) : null; } catch (e) { data = null; }
        return { ok: r.ok, status: r.status, data: data || {}, headers: r.headers };
      });
    });
  };

  W.ago = function (iso) {
    var d = new Date(iso), s = (Date.now() - d.getTime()) / 1000;
    if (isNaN(s)) return '';
    if (s < 60) return this.t.now;
    var u = s < 3600 ? ['minute', 60] : s < 86400 ? ['hour', 3600] : s < 7 * 86400 ? ['day', 86400] : null;
    if (u) {
      var n = Math.floor(s / u[1]);
      try { return new Intl.RelativeTimeFormat(this.lang).format(-n, u[0]); } catch (e) { /* old browser */ }
    }
    return pad(d.getDate()) + '/' + pad(d.getMonth() + 1) + '/' + d.getFullYear();
  };

  W.render = function () {
    var t = this.t, self = this, id = function (s) { return 'cw' + self.n + '-' + s; };
    var root = this.host.shadowRoot || this.host.attachShadow({ mode: 'open' });
    var wrap = h('section', { class: 'cw', lang: this.lang, 'aria-labelledby': id('h'), hidden: true });
    var link = h('link', { rel: 'stylesheet', href: this.base + '/widget.css?v=' + CSS_VERSION });
    var show = function () { wrap.hidden = false; };
    link.addEventListener('load', show);
    link.addEventListener('error', show);
    setTimeout(show, 3000);
    root.replaceChildren(link, wrap);

    var N = this.nodes;
    N.count = h('span', { class: 'cw-count' });
    N.status = h('p', { class: 'cw-status', role: 'status', 'aria-live': 'polite', id: id('status') });
    N.list = h('ol', { class: 'cw-list', 'aria-label': t.heading });
    N.mine = h('ol', { class: 'cw-list cw-mine', 'aria-label': t.yours });
    N.info = h('p', { class: 'cw-info', text: t.loading });
    N.more = h('button', { type: 'button', class: 'cw-btn cw-more', hidden: true, text: t.more, onclick: function () {
      self.load(false);
    } });
    N.closed = h('p', { class: 'cw-closed', hidden: true, text: t.closed });
    N.replyName = h('span');
    N.reply = h('div', { class: 'cw-replying', hidden: true }, [
      h('span', { text: t.reply + ' ' }), N.replyName,
      h('button', { type: 'button', class: 'cw-btn cw-link', text: t.cancel, onclick: function () {
        self.setParent(null);
        self.field('body').focus();
      } })
    ]);

    var fields = [];
    var mk = function (name, label, input, extra) {
      input.id = id(name);
      input.name = name;
      N['err_' + name] = h('p', { class: 'cw-err', id: id(name + '-err'), hidden: true });
      var f = h('div', { class: 'cw-field cw-f-' + name }, [
        h('label', { for: id(name), text: label }), extra || null, input, N['err_' + name]
      ]);
      fields.push(f);
      return f;
    };
    mk('name', t.name, h('input', { type: 'text', autocomplete: 'name', required: true }));
    mk('email', t.email, h('input', { type: 'email', autocomplete: 'email', inputmode: 'email', required: true,
      spellcheck: 'false' }));
    mk('title', t.title, h('input', { type: 'text', required: true }));
    // The counter changes with every key, so it is not announced; crossing the limit is, once, by N.limit.
    N.counter = h('span', { class: 'cw-counter', 'aria-hidden': 'true', text: '0/' + LIMITS.body });
    N.limit = h('p', { class: 'cw-err cw-limit', 'aria-live': 'polite', id: id('body-limit') });
    var body = h('textarea', { rows: 5, required: true });
    mk('body', t.body, body);
    body.parentNode.insertBefore(N.counter, N.err_body);
    body.parentNode.insertBefore(N.limit, N.err_body);

    N.img = h('img', { class: 'cw-cap-img', alt: t.alt, width: 200, height: 70 });
    N.audio = h('audio', { preload: 'none' });
    var capRow = h('div', { class: 'cw-cap' }, [
      N.img,
      h('div', { class: 'cw-cap-btns' }, [h('button', { type: 'button', class: 'cw-btn cw-sec', text: t.newCap, onclick: function () {
        self.newCaptcha(true);
      } }),
      N.listen = h('button', { type: 'button', class: 'cw-btn cw-sec cw-listen', text: t.listen, onclick: function () {
        self.listen();
      } })]),
      N.audio
    ]);
    N.audio.addEventListener('playing', function () { self.playing(true); });
    ['pause', 'ended', 'error', 'emptied'].forEach(function (ev) {
      N.audio.addEventListener(ev, function () { self.playing(false); });
    });
    mk('captcha_answer', t.captcha, h('input', { type: 'text', autocomplete: 'off', autocapitalize: 'characters',
      spellcheck: 'false', maxlength: 12, class: 'cw-code', required: true }), capRow);

    // Off by default: the author asks, each time, for the email about the decision.
    N.notify = MAIL ? h('input', { type: 'checkbox', name: 'notify', id: id('notify') }) : null;
    var notifyRow = N.notify ? h('div', { class: 'cw-field cw-f-notify' }, [N.notify, ' ',
      h('label', { for: id('notify'), text: t.notify })]) : null;
    var hp = h('input', { type: 'text', name: 'website', id: id('website'), tabindex: '-1', autocomplete: 'off',
      'aria-hidden': 'true' });
    N.hp = hp;
    N.send = h('button', { type: 'submit', class: 'cw-btn cw-primary', text: t.send });
    N.form = h('form', { class: 'cw-form', novalidate: true, 'aria-labelledby': id('fh'), onsubmit: function (e) {
      e.preventDefault();
      self.submit();
    }, onfocusin: function () { self.ensureCaptcha(); }, oninput: function (e) {
      var err = N['err_' + e.target.name];
      if (err && !err.hidden) self.fieldError(e.target.name, ''); // edited: the old message no longer applies
      if (e.target.name === 'body') self.count();
    } }, [
      h('h3', { class: 'cw-fh', id: id('fh'), text: t.form }),
      N.reply,
      h('div', { class: 'cw-grid' }, fields.slice(0, 2)),
      fields[2], fields[3], fields[4], notifyRow,
      h('div', { class: 'cw-hp', 'aria-hidden': 'true' }, [h('label', { for: id('website'), text: 'Website' }), hp]),
      h('div', { class: 'cw-actions' }, [N.send]),
      N.status
    ]);
    N.form.hidden = true;

    wrap.append(
      h('h2', { class: 'cw-h', id: id('h') }, [t.heading + ' ', N.count]),
      N.closed, N.form, N.mine, N.info, N.list, N.more
    );
    if (MAIL) wrap.append(this.dataPanel());

    var me = store('get', 'cmts:me');
    if (me) {
      this.field('name').value = me.name || '';
      this.field('email').value = me.email || '';
    }
    if ('IntersectionObserver' in window) {
      var io = new IntersectionObserver(function (en) {
        if (en.some(function (x) { return x.isIntersecting; })) { io.disconnect(); self.ensureCaptcha(); }
      }, { rootMargin: '300px' });
      io.observe(N.form);
    }
    this.showPending();
    this.load(true);
    this.poll();
  };

  W.field = function (name) { return this.nodes.form.elements.namedItem(name); };

  // The service's message for a field (i18n.field_message), word for word.
  W.message = function (field, code, params) {
    var t = this.t, p = { label: t.label[field] || field, noun: t.noun[field] || field };
    Object.keys(params || {}).forEach(function (k) { p[k] = params[k]; });
    return fmt(t.field[code] || t.field.invalid, p);
  };

  // The form's status line; `kind` 'error' or 'ok' gives it a colour and an icon (not colour alone).
  W.say = function (msg, kind) {
    var s = this.nodes.status;
    s.textContent = msg || '';
    s.className = 'cw-status' + (kind ? ' is-' + kind : '');
  };

  // Counter of the comment's characters; past the limit it turns red and N.limit says so (announced once).
  W.count = function () {
    var N = this.nodes, n = len(norm(this.field('body').value)), over = n > LIMITS.body;
    N.counter.textContent = n + '/' + LIMITS.body;
    N.counter.classList.toggle('is-over', over);
    // while the field's own error (after a send) says the same, this line stays quiet
    var msg = over && N.err_body.hidden ? this.message('body', 'too_long', { max: LIMITS.body }) : '';
    if (N.limit.textContent !== msg) N.limit.textContent = msg;
  };

  W.comment = function (c, pending) {
    var self = this, t = this.t, name = String(c.name || '');
    var av = h('span', { class: 'cw-av', 'aria-hidden': 'true', text: (Array.from(name.trim())[0] || '?')
      .toUpperCase() });
    // From the name, which a pending copy (kept in localStorage) and the approved comment both have: the
    // colour must not change when the comment is approved. The service's `avatar` seed exists only once approved.
    av.style.backgroundColor = avatarColor(name);
    var head = h('div', { class: 'cw-head' }, [
      h('span', { class: 'cw-name', text: name }),
      h('time', { class: 'cw-time', datetime: c.created_at, title: new Date(c.created_at).toLocaleString(this.lang),
        text: this.ago(c.created_at) }),
      pending ? h('span', { class: 'cw-badge', text: t.pending }) : null
    ]);
    var main = h('div', { class: 'cw-main' }, [
      head,
      c.title ? h('p', { class: 'cw-title', text: c.title }) : null,
      h('p', { class: 'cw-body', text: c.body }),
      pending && c.parent_name ? h('p', { class: 'cw-meta', text: t.reply + ' ' + c.parent_name }) : null,
      pending ? null : h('button', { type: 'button', class: 'cw-btn cw-link cw-reply', text: t.reply,
        'aria-label': t.reply + ' ' + name, onclick: function () {
          self.setParent({ id: c.id, name: name });
        } }),
      pending ? null : h('button', { type: 'button', class: 'cw-btn cw-link cw-report', text: t.report,
        'aria-label': fmt(t.reportOf, { name: name }), 'aria-expanded': 'false', onclick: function (e) {
          self.reportForm(c.id, main, e.currentTarget);
        } })
    ]);
    var li = h('li', { class: 'cw-c' + (pending ? ' is-pending' : ''), 'data-id': c.id }, [
      h('article', { class: 'cw-item', tabindex: '-1' }, [av, main])
    ]);
    li.replies = h('ol', { class: 'cw-replies' });
    li.append(li.replies);
    return li;
  };

  // "Báo vi phạm": a reason and optional words, below the comment; counted once per reader by the service.
  W.reportForm = function (id, main, btn) {
    var self = this, t = this.t, u = 'cw' + this.n + '-r' + id;
    if (main.querySelector('.cw-rform')) { main.querySelector('select').focus(); return; }
    var sel = h('select', { id: u + 's', name: 'reason' }, ['spam', 'offensive', 'false', 'unlawful', 'other']
      .map(function (r) { return h('option', { value: r, text: t['r_' + r] }); }));
    var txt = h('textarea', { id: u + 't', name: 'text', rows: 2, maxlength: 500 });
    var msg = h('p', { class: 'cw-status', role: 'status', 'aria-live': 'polite' });
    var close = function () { f.remove(); btn.setAttribute('aria-expanded', 'false'); btn.focus(); };
    var send = h('button', { type: 'submit', class: 'cw-btn cw-primary', text: t.reportSend });
    var f = h('form', { class: 'cw-rform', novalidate: true, onsubmit: function (e) {
      e.preventDefault();
      send.disabled = true;
      self.api('POST', '/v1/comments/' + encodeURIComponent(id) + '/reports', { reason: sel.value, text: norm(txt.value) })
        .then(function (r) {
          if (r.ok) { f.replaceChildren(msg); msg.className = 'cw-status is-ok'; msg.textContent = t.reported; return; }
          msg.className = 'cw-status is-error';
          msg.textContent = r.status === 429 ? fmt(t.reportRate, { seconds: parseInt(r.headers.get('Retry-After'), 10) || 60 })
            : (r.data.title || t.reportFail);
        }, function () { msg.className = 'cw-status is-error'; msg.textContent = t.net; })
        .then(function () { send.disabled = false; });
    } }, [
      h('div', { class: 'cw-field' }, [h('label', { for: u + 's', text: t.reason }), sel]),
      h('div', { class: 'cw-field' }, [h('label', { for: u + 't', text: t.reportText }), txt]),
      h('div', { class: 'cw-actions' }, [send, h('button', { type: 'button', class: 'cw-btn cw-sec', text: t.reportCancel,
        onclick: close })]),
      msg
    ]);
    main.append(f);
    btn.setAttribute('aria-expanded', 'true');
    sel.focus();
  };

  // "Dữ liệu của tôi": the reader's address; the service sends a link there (download, or confirm an erasure).
  // Only with email on: without it no link could reach the reader.
  W.dataPanel = function () {
    var self = this, t = this.t, u = 'cw' + this.n + '-d';
    var email = h('input', { type: 'email', id: u + 'e', name: 'data_email', autocomplete: 'email', required: true });
    var kind = h('select', { id: u + 'k', name: 'kind' }, [h('option', { value: 'export', text: t.myDataExport }),
      h('option', { value: 'erase', text: t.myDataErase })]);
    var msg = h('p', { class: 'cw-status', role: 'status', 'aria-live': 'polite' });
    return h('details', { class: 'cw-data' }, [h('summary', { text: t.myData }), h('p', { class: 'cw-meta', text: t.myDataHint }),
      h('form', { novalidate: true, onsubmit: function (e) {
        e.preventDefault();
        self.api('POST', '/v1/privacy/requests', { email: norm(email.value), kind: kind.value, lang: self.lang }).then(function (r) {
          msg.className = 'cw-status ' + (r.ok ? 'is-ok' : 'is-error');
          msg.textContent = r.ok ? t.myDataSent : (r.status === 429 ? fmt(t.rate, { seconds: parseInt(r.headers.get('Retry-After'), 10) || 60 })
            : (r.data.title || t.fail));
        }, function () { msg.className = 'cw-status is-error'; msg.textContent = t.net; });
      } }, [h('div', { class: 'cw-field' }, [h('label', { for: u + 'e', text: t.myDataEmail }), email]),
        h('div', { class: 'cw-field' }, [h('label', { for: u + 'k', text: t.myDataKind }), kind]),
        h('div', { class: 'cw-actions' }, [h('button', { type: 'submit', class: 'cw-btn cw-sec', text: t.myDataSend })]), msg])]);
  };

  W.load = function (reset, fresh) {
    var self = this, N = this.nodes, t = this.t;
    var seq = ++this.loadSeq, cursor = reset ? null : this.cursor;
    N.more.disabled = true;
    var q = '?limit=50&order=oldest' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    var path = '/v1/articles/' + encodeURIComponent(this.article) + '/comments' + q;
    return this.api('GET', path, undefined, null, fresh).then(function (r) {
      if (seq !== self.loadSeq) return; // a newer load superseded this one
      if (!r.ok) throw new Error(String(r.status));
      var d = r.data, first = null;
      if (reset) { N.list.replaceChildren(); self.seen = {}; }
      (d.comments || []).forEach(function (c) {
        if (self.seen[c.id]) return;
        var li = self.comment(c, false), parent = c.parent_id && self.seen[c.parent_id];
        self.seen[c.id] = li;
        (parent ? parent.replies : N.list).append(li);
        first = first || li;
        self.dropPending(c.id);
      });
      self.cursor = d.next_cursor || null;
      N.more.hidden = !self.cursor;
      N.more.disabled = false;
      N.count.textContent = typeof d.total === 'number' ? '(' + d.total + ')' : '';
      N.info.hidden = N.list.childElementCount > 0;
      N.info.textContent = t.empty;
      var open = d.open !== false;
      N.closed.hidden = open;
      N.form.hidden = !open;
      if (!reset && first && !self.cursor) first.querySelector('article').focus();
    }).catch(function () {
      if (seq !== self.loadSeq) return;
      N.more.disabled = false;
      N.form.hidden = !N.closed.hidden;
      N.info.hidden = false;
      N.info.replaceChildren(t.loadErr + ' ', h('button', { type: 'button', class: 'cw-btn cw-link', text: t.retry,
        onclick: function () { N.info.textContent = t.loading; self.load(reset); } }));
    });
  };

  W.setParent = function (p) {
    var N = this.nodes;
    this.parent = p;
    N.reply.hidden = !p;
    N.replyName.textContent = p ? p.name : '';
    if (p) {
      var f = this.field('name').value ? this.field('body') : this.field('name');
      N.form.scrollIntoView({ block: 'start', behavior: 'smooth' });
      f.focus({ preventScroll: true });
    }
  };

  // Captchas are created lazily (first focus in the form or when it scrolls near the viewport), single-use.
  W.ensureCaptcha = function () {
    if (!this.captcha || this.captcha.exp < Date.now()) this.newCaptcha(false);
  };

  W.newCaptcha = function (focus) {
    var self = this, N = this.nodes;
    if (this.capLoading) return this.capLoading;
    this.captcha = { exp: Infinity };
    this.capLoading = this.api('POST', '/v1/captchas').then(function (r) {
      if (!r.ok || !r.data.id) throw new Error(String(r.status));
      var d = r.data;
      self.captcha = { id: d.id, exp: Date.now() + ((d.expires_in || 300) - 5) * 1000,
        audio: self.base + d.audio_url + (self.lang === 'en' ? (d.audio_url.indexOf('?') < 0 ? '?' : '&') + 'lang=en' : '') };
      N.img.src = self.base + d.image_url;
      N.audio.pause(); // the old code's audio no longer applies
      N.audio.removeAttribute('src');
      self.field('captcha_answer').value = '';
      if (focus) self.field('captcha_answer').focus();
    }).catch(function () {
      self.captcha = null;
      self.fieldError('captcha_answer', self.t.capLoadErr);
    }).then(function () { self.capLoading = null; });
    return this.capLoading;
  };

  // "Nghe mã" plays the code from its start; while it plays the same button stops it.
  W.listen = function () {
    var self = this, a = this.nodes.audio, c = this.captcha;
    if (this.isPlaying) { a.pause(); this.playing(false); return; } // at once: the pause event comes later
    if (!c || !c.audio) return;
    if (a.getAttribute('src') !== c.audio) a.src = c.audio;
    a.currentTime = 0;
    this.playing(true); // at once: the clip may take a moment to arrive, and can be stopped meanwhile
    var p = a.play();
    if (p && p.catch) p.catch(function () { self.playing(false); /* autoplay policy or decode error */ });
  };

  W.playing = function (on) {
    var b = this.nodes.listen;
    this.isPlaying = on;
    b.textContent = on ? this.t.stop : this.t.listen;
    b.classList.toggle('is-playing', on);
  };

  W.fieldError = function (name, msg) {
    var input = this.field(name), err = this.nodes['err_' + name];
    if (!input || !err) return false;
    err.textContent = msg || '';
    err.hidden = !msg;
    if (msg) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', err.id);
    } else {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
    }
    if (name === 'body') this.count();
    return true;
  };

  W.validate = function (v) {
    var self = this, e = {};
    ['name', 'title', 'body'].forEach(function (k) {
      var n = len(v[k]);
      if (!n) e[k] = self.message(k, 'required');
      else if (n > LIMITS[k]) e[k] = self.message(k, 'too_long', { max: LIMITS[k] });
    });
    if (!v.email) e.email = this.message('email', 'required');
    else if (len(v.email) > 254 || !/^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/.test(v.email)) {
      e.email = this.message('email', 'invalid_email');
    }
    if (len(v.captcha_answer) !== 5) e.captcha_answer = this.t.capLen;
    return e;
  };

  W.showErrors = function (errs) {
    var self = this, first = null;
    FIELDS.forEach(function (k) {
      self.fieldError(k, errs[k]);
      if (errs[k] && !first) first = k;
    });
    if (first) this.field(first).focus();
    return first;
  };

  W.submit = function () {
    var self = this, N = this.nodes, t = this.t;
    if (this.busy) return;
    var v = {};
    FIELDS.forEach(function (k) { v[k] = norm(self.field(k).value); });
    var errs = this.validate(v);
    if (!errs.captcha_answer && (!this.captcha || !this.captcha.id || this.captcha.exp < Date.now())) {
      errs.captcha_answer = t.capExp;
      this.newCaptcha(false);
    }
    if (this.showErrors(errs)) { this.say(t.fix, 'error'); return; }
    this.busy = true;
    N.send.disabled = true;
    this.say(t.sending);
    var parent = this.parent;
    var payload = { name: v.name, email: v.email, title: v.title, body: v.body, captcha_id: this.captcha.id,
      captcha_answer: v.captcha_answer, parent_id: parent ? parent.id : null, website: N.hp.value,
      notify: !!(N.notify && N.notify.checked), lang: this.lang };
    this.captcha = null; // single-use, whatever happens next
    // Sending the same comment again (after a lost answer or a 503) reuses its key: the service then answers
    // with the first acknowledgement instead of queueing it twice.
    var same = JSON.stringify([v.name, v.email, v.title, v.body, payload.parent_id, payload.website,
      payload.notify]);
    if (this.idemFor !== same) {
      this.idemFor = same;
      this.idem = window.crypto && crypto.randomUUID ? crypto.randomUUID() : Date.now() + '-' + Math.random();
    }
    this.api('POST', '/v1/articles/' + encodeURIComponent(this.article) + '/comments', payload,
      { 'Idempotency-Key': this.idem }).then(function (r) {
      if (r.status === 202 || (r.ok && r.data.id)) return self.accepted(r.data, payload, parent);
      self.failed(r);
    }, function () {
      self.say(t.net, 'error');
    }).then(function () {
      self.busy = false;
      N.send.disabled = false;
      if (!self.captcha) self.newCaptcha(false);
    });
  };

  W.accepted = function (d, p, parent) {
    var N = this.nodes;
    this.idemFor = null;
    store('set', 'cmts:me', { name: p.name, email: p.email });
    var list = (store('get', this.pkey) || []).filter(function (x) { return x.id !== d.id; });
    list.push({ id: d.id, receipt: d.receipt, article: this.article, name: p.name, title: p.title, body: p.body,
      created_at: new Date().toISOString(), parent_id: p.parent_id, parent_name: parent ? parent.name : null });
    store('set', this.pkey, list);
    this.field('title').value = '';
    this.field('body').value = '';
    this.field('captcha_answer').value = '';
    this.count();
    this.setParent(null);
    this.showErrors({});
    this.say(this.t.sent, 'ok');
    this.showPending();
    this.schedule();
  };

  W.failed = function (r) {
    var t = this.t, d = r.data, errs = {}, other = [];
    (Array.isArray(d.errors) ? d.errors : []).forEach(function (e) {
      var f = e && e.field, msg = String((e && (e.message || e.code)) || t.fail);
      if (f === 'captcha_id') f = 'captcha_answer';
      if (FIELDS.indexOf(f) >= 0) errs[f] = errs[f] || msg; else other.push(msg);
    });
    // `title` is localised by the service (Accept-Language); `detail` is for developers
    if (d.code === 'captcha_invalid' && !errs.captcha_answer) errs.captcha_answer = this.message('captcha_answer', 'captcha_invalid');
    if (d.code === 'comments_closed') {
      this.nodes.form.hidden = true;
      this.nodes.closed.hidden = false;
      this.nodes.closed.setAttribute('tabindex', '-1');
      this.nodes.closed.focus();
      return;
    }
    if (d.code === 'invalid_parent') this.setParent(null);
    var status = other.join(' ');
    if (r.status === 429) status = fmt(t.rate, { seconds: parseInt(r.headers.get('Retry-After'), 10) || 60 });
    else if (r.status === 413) status = status || t.tooBig;
    else if (!status) status = Object.keys(errs).length ? t.fix : (d.title || t.fail);
    this.field('captcha_answer').value = '';
    this.showErrors(errs);
    this.say(status, 'error');
  };

  W.showPending = function () {
    var self = this, now = Date.now();
    var list = (store('get', this.pkey) || []).filter(function (x) {
      return x && x.id && x.receipt && now - new Date(x.created_at).getTime() < PENDING_MAX_AGE;
    });
    this.nodes.mine.replaceChildren.apply(this.nodes.mine, list.map(function (c) { return self.comment(c, true); }));
    return list;
  };

  W.dropPending = function (id) {
    var list = store('get', this.pkey) || [];
    var rest = list.filter(function (x) { return x.id !== id; });
    if (rest.length !== list.length) {
      store('set', this.pkey, rest.length ? rest : null);
      this.showPending();
    }
  };

  // Newly approved comments: reload past the HTTP cache, and again while public caches still lag behind.
  W.refreshFor = function (ids, tries) {
    var self = this;
    this.load(true, true).then(function () {
      var missing = ids.filter(function (id) { return !self.seen[id]; });
      if (missing.length && tries < 5) setTimeout(function () { self.refreshFor(missing, tries + 1); }, 3000);
    });
  };

  W.schedule = function () {
    var self = this;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(function () { self.poll(); }, POLL_MS);
  };

  W.poll = function () {
    var self = this, list = this.showPending();
    if (!list.length) return;
    if (document.hidden) { this.schedule(); return; }
    Promise.all(list.map(function (c) {
      return self.api('GET', '/v1/comments/' + encodeURIComponent(c.id) + '/status', undefined,
        { Authorization: 'Receipt ' + c.receipt }).then(function (r) {
        var s = r.ok ? r.data.status : (r.status === 404 || r.status === 401 || r.status === 403) ? 'gone' : '';
        return s && s !== 'pending' ? { id: c.id, status: s } : null;
      }, function () { return null; });
    })).then(function (res) {
      var done = res.filter(Boolean), approved = [], msgs = [];
      done.forEach(function (x) {
        self.dropPending(x.id);
        if (x.status === 'approved') approved.push(x.id);
        if (x.status === 'rejected') msgs.push(self.t.rejected);
      });
      if (approved.length) { msgs.unshift(self.t.approved); self.refreshFor(approved, 0); }
      if (msgs.length) self.say(msgs.join(' '), approved.length ? 'ok' : '');
      if (self.showPending().length) self.schedule();
    });
  };

  function boot() {
    var s = ownScript();
    if (!s) return;
    var base = s.src.replace(/[?#].*$/, '').replace(/\/[^/]*$/, '');
    var hosts = document.querySelectorAll('[data-comments-article]');
    Array.prototype.forEach.call(hosts, function (el) {
      if (el.__cw || !el.getAttribute('data-comments-article')) return;
      el.__cw = new Widget(el, base);
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
