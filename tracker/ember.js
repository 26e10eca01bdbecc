/*! ember.js — the Ember website tracker. No dependencies, ES2017. See tracker/README.md. */
(() => {
  'use strict';
  const VERSION = '0.1.0';
  const w = window, d = document, nav = navigator, loc = location;
  const prior = w.ember;
  if (prior && prior.version) return; // loaded twice: keep the first copy

  // Cookie names, lifetimes and limits.
  const AID = 'ember_aid', FIRST = 'ember_ft', LAST = 'ember_lt', CONSENT = 'ember_consent';
  const YEAR = 31536000;
  const UTM = ['source', 'medium', 'campaign', 'term', 'content'];
  const MAX_EVENTS = 100; // server limit per request
  const MAX_BEACON = 60000; // sendBeacon and keepalive fetches carry at most 64 KiB in flight
  const MAX_ATTEMPTS = 5;
  const MAX_QUEUE = 500; // events kept in memory while the endpoint fails; the oldest go first
  const MAX_VALUE = 100; // characters of one stored UTM or referrer value
  const MAX_COOKIE = 1024; // bytes of one stored touch cookie, encoded (the site's Cookie header has ~8 KB for all)
  const EMAIL = /^[^\s@]+@[^\s@]+$/;
  /** Query parameters that look like secrets (OAuth codes, magic-link tokens, signatures…): never
   * sent. A parameter goes when its name, or a word of it (`access_token`, `X-Amz-Signature`,
   * `sessionId`), is one of these. Option `stripParams` replaces the list. */
  const STRIP = ['token', 'code', 'password', 'passwd', 'pwd', 'secret', 'key', 'apikey', 'auth', 'session', 'sessionid',
    'sid', 'sig', 'signature', 'credential', 'jwt', 'otp', 'ticket', 'nonce', 'state', 'hash'];

  let cfg = null; // options, once init ran
  let queue = []; // [event, attempts] waiting to be sent
  let calls = Array.isArray(prior) ? prior.slice() : []; // calls made before init
  let timer = 0;
  let lastPage = null; // key of the last page view, against duplicates
  let backoff = 0;
  let retryAt = 0; // while a failed request waits for its backoff, nothing else is sent before this time
  let dropped = 0; // events dropped because the queue was full
  let leaving = false; // between pagehide and pageshow

  // --- storage --------------------------------------------------------------------------------
  const getCookie = (n) => {
    const m = d.cookie.match(new RegExp('(?:^|; )' + n + '=([^;]*)'));
    try { return m ? decodeURIComponent(m[1]) : null; } catch (e) { return null; }
  };
  const setCookie = (n, v, maxAge) => {
    d.cookie = n + '=' + encodeURIComponent(v) + '; path=/' +
      (maxAge == null ? '' : '; max-age=' + maxAge) +
      (cfg && cfg.cookieDomain ? '; domain=' + cfg.cookieDomain : '') +
      '; SameSite=Lax' + (loc.protocol === 'https:' ? '; Secure' : '');
  };
  const getJSON = (n) => { try { return JSON.parse(getCookie(n)); } catch (e) { return null; } };
  const rawCookie = (n) => { const m = d.cookie.match(new RegExp('(?:^|; )' + n + '=([^;]*)')); return m ? m[1] : ''; };
  /** At most `n` characters (code points: a cut never splits a surrogate pair). */
  const cut = (v, n) => { const a = Array.from(String(v)); return a.length > n ? a.slice(0, n).join('') : String(v); };
  /** Stores a touch as JSON, its strings shortened until the cookie fits MAX_COOKIE bytes. */
  const setTouch = (n, t, maxAge) => {
    for (let lim = MAX_VALUE; lim >= 1; lim >>= 1) {
      const v = JSON.stringify(t, (k, x) => (typeof x === 'string' && k !== 'at' ? cut(x, lim) : x));
      if (encodeURIComponent(v).length <= MAX_COOKIE) return setCookie(n, v, maxAge);
    }
  };
  const now = () => new Date().toISOString();

  /** A random UUID v4: crypto.randomUUID, else crypto.getRandomValues, else Math.random. */
  const uuid = () => {
    const c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    const b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  };

  // --- privacy ----------------------------------------------------------------------------------
  const doNotTrack = () => cfg.respectDoNotTrack !== false &&
    (nav.doNotTrack === '1' || w.doNotTrack === '1' || nav.globalPrivacyControl === true);
  /** Whether anything may be stored or sent now. */
  const allowed = () => {
    if (!cfg || doNotTrack()) return false;
    const c = getCookie(CONSENT);
    return c === '1' || (c !== '0' && !cfg.requireConsent);
  };

  /** The visitor's anonymous id, made once and kept a year in a first-party cookie. */
  const anonymousId = () => {
    if (!allowed()) return null;
    let id = getCookie(AID);
    if (!id || id.length > 128) setCookie(AID, (id = uuid()), YEAR);
    return id;
  };

  /** Whether a query parameter name looks like a secret (see STRIP). */
  const secretName = (name) => {
    const list = Array.isArray(cfg.stripParams) ? cfg.stripParams : STRIP;
    const words = name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
    return list.indexOf(words.replace(/[^a-z0-9]/g, '')) >= 0 || words.split(/[^a-z0-9]+/).some((w) => list.indexOf(w) >= 0);
  };
  /** A URL as it may be sent: no #fragment, no secret-looking query parameter; '' when unparseable. */
  const cleanUrl = (href) => {
    try {
      const u = new URL(href);
      u.hash = '';
      Array.from(u.searchParams.keys()).forEach((k) => secretName(k) && u.searchParams.delete(k));
      return u.href;
    } catch (e) { return ''; }
  };

  // --- acquisition (UTM) --------------------------------------------------------------------
  /** The touch of the current URL: its utm_* values, and (on landing) an external referrer. */
  const touch = (landing) => {
    const q = new URLSearchParams(loc.search), utm = {};
    let any = false;
    UTM.forEach((k) => { const v = q.get('utm_' + k); if (v) { utm[k] = cut(v, MAX_VALUE); any = true; } });
    let referrer = landing ? d.referrer : '';
    try { if (referrer && new URL(referrer).host === loc.host) referrer = ''; } catch (e) { referrer = ''; }
    if (referrer) referrer = cleanUrl(referrer);
    if (!any && !referrer) return null;
    const t = { utm };
    if (referrer) t.referrer = referrer; // shortened with the rest when stored (setTouch)
    return t;
  };
  /** Keeps the last touch for the browser session and the first touch for a year, never replaced. */
  const remember = (landing) => {
    const t = touch(landing);
    if (t) setTouch(LAST, t);
    if (!getCookie(FIRST)) setTouch(FIRST, Object.assign({ at: now() }, t), YEAR);
  };

  // --- events -----------------------------------------------------------------------------------
  /** Queues one event; returns its id, or null when nothing may be sent. */
  const send = (type, properties, email, traits) => {
    if (!allowed()) return null;
    const last = getJSON(LAST), first = getJSON(FIRST);
    const context = { library: 'ember.js/' + VERSION };
    if (last) {
      if (Object.keys(last.utm || {}).length) context.utm = last.utm;
      if (last.referrer) context.referrer = cleanUrl(last.referrer);
    }
    if (first) {
      if (first.referrer) first.referrer = cleanUrl(first.referrer); // stored by an older version
      context.first_touch = first;
    }
    const ev = {
      event_id: uuid(),
      type: String(type),
      occurred_at: now(),
      anonymous_id: anonymousId(),
      properties: properties || {},
      context,
    };
    if (email) ev.email = email;
    if (traits && Object.keys(traits).length) ev.traits = traits;
    enqueue([[ev, 0]], false);
    if (queue.length >= cfg.batchSize && Date.now() >= retryAt) flush();
    else schedule(cfg.flushInterval);
    return ev.event_id;
  };

  /** Path and query without utm_* (a site that strips them must not count a second view). */
  const pageKey = () => {
    const q = new URLSearchParams(loc.search);
    UTM.forEach((k) => q.delete('utm_' + k));
    return loc.pathname + '?' + q;
  };
  /** A page view of the current URL, unless the previous one was of the same URL. */
  const page = () => {
    const key = pageKey();
    if (key === lastPage || !allowed()) return null;
    remember(lastPage == null);
    lastPage = key;
    return send('page_view', { path: loc.pathname, url: cleanUrl(loc.href), title: d.title });
  };

  // --- delivery ---------------------------------------------------------------------------------
  const schedule = (ms) => { if (!timer) timer = setTimeout(flush, ms); };
  /** Adds events to the queue (retried ones before newer ones), dropping the oldest past maxQueue. */
  const enqueue = (items, first) => {
    queue = first ? items.concat(queue) : queue.concat(items);
    const over = queue.length - cfg.maxQueue;
    if (over > 0) { queue.splice(0, over); dropped += over; }
  };
  const bytes = (s) => new Blob([s]).size;
  const url = () => cfg.endpoint.replace(/\/+$/, '') + '/v1/events';

  /** Puts events back for another try (same event ids: the server counts each once). */
  const retry = (items) => {
    enqueue(items.filter((it) => ++it[1] < MAX_ATTEMPTS), true);
    // Requests of one flush that fail together wait once, not once each.
    if (Date.now() >= retryAt) {
      backoff = Math.min(backoff ? backoff * 2 : 2000, 60000);
      retryAt = Date.now() + backoff;
    }
    clearTimeout(timer);
    timer = setTimeout(flush, Math.max(0, retryAt - Date.now()));
  };

  /** Sends one request: sendBeacon, else fetch — with keepalive only while the page goes away,
   * since browsers refuse keepalive requests past 64 KiB in flight, beacons included. */
  const post = (items) => {
    const body = JSON.stringify({ write_key: cfg.writeKey, batch: items.map((it) => it[0]) });
    const small = bytes(body) <= MAX_BEACON;
    if (small && cfg.beacon && nav.sendBeacon && nav.sendBeacon(url(), body)) return;
    fetch(url(), {
      method: 'POST',
      body,
      keepalive: small && (leaving || d.visibilityState === 'hidden'),
      credentials: 'omit',
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
    }).then((r) => {
      if (r.status >= 500 || r.status === 429 || r.status === 408) retry(items);
      else backoff = retryAt = 0; // accepted, or refused for good (4xx): trying again would not help
    }, () => retry(items));
  };

  /** Sends everything queued, split into requests of at most 100 events and 60 KB. While a
   * failed request waits for its backoff, only a page going away (`force`) sends earlier. */
  const flush = (force) => {
    clearTimeout(timer);
    timer = 0;
    if (!queue.length) return;
    if (!allowed()) { queue = []; return; } // consent withdrawn while a retry waited
    if (force !== true && Date.now() < retryAt) { timer = setTimeout(flush, retryAt - Date.now()); return; }
    const items = queue;
    queue = [];
    let chunk = [], size = 0;
    items.forEach((it) => {
      const n = bytes(JSON.stringify(it[0])) + 1;
      if (chunk.length && (chunk.length >= MAX_EVENTS || size + n > MAX_BEACON)) { post(chunk); chunk = []; size = 0; }
      chunk.push(it);
      size += n;
    });
    post(chunk);
  };

  // --- forms ------------------------------------------------------------------------------------
  /** Card fields (`autocomplete="cc-…"`) and passwords or one-time codes, whatever their type. */
  const secretField = (el) => /(^|\s)(cc-|current-password|new-password|one-time-code)/.test(el.getAttribute('autocomplete') || '');

  /** `<form data-ember-identify>`: a form_submit with the email field and data-ember-trait fields. */
  const onSubmit = (e) => {
    const f = e.target;
    if (!f || !f.getAttribute || f.getAttribute('data-ember-identify') == null) return;
    let email = '';
    const traits = {};
    Array.from(f.elements).forEach((el) => {
      const type = el.type, trait = el.getAttribute('data-ember-trait');
      if (type === 'password' || type === 'file' || el.disabled || (type === 'radio' && !el.checked)) return;
      if (secretField(el)) return trait != null && console.warn('ember: "' + trait + '" is a card or password field: never sent');
      const v = type === 'checkbox' ? el.checked : String(el.value || '').trim();
      if (trait === 'email' || (!trait && !email && (type === 'email' || el.name === 'email'))) email = v;
      else if (trait && v !== '') traits[trait] = type === 'number' && isFinite(v) ? Number(v) : v;
    });
    const id = f.getAttribute('data-ember-identify') || f.getAttribute('id') || f.getAttribute('name') || 'form';
    send('form_submit', { form_id: id, path: loc.pathname, url: cleanUrl(loc.href) }, EMAIL.test(email) ? email : null, traits);
    flush(true); // the page is probably about to go
  };

  // --- public API -----------------------------------------------------------------------------
  const ready = (name, args) => {
    if (cfg) return true;
    calls.push([name].concat(Array.from(args)));
    return false;
  };

  const api = {
    version: VERSION,
    /** Starts the tracker (once): endpoint and writeKey are required. */
    init(options) {
      if (cfg) return api;
      const o = options || {};
      if (!o.endpoint || !o.writeKey) {
        console.warn('ember: init needs `endpoint` and `writeKey`');
        return api;
      }
      cfg = Object.assign({
        flushInterval: 5000, batchSize: 10, requireConsent: false, respectDoNotTrack: true,
        spa: true, pageViews: true, forms: true, beacon: true, maxQueue: MAX_QUEUE,
      }, o);
      if (!(cfg.maxQueue >= 1)) cfg.maxQueue = MAX_QUEUE; // never unbounded, whatever was given
      // Touch cookies too large for the site's Cookie header (older versions, crafted links) go.
      [FIRST, LAST].forEach((n) => rawCookie(n).length > MAX_COOKIE && setCookie(n, '', 0));
      if (allowed() && getCookie(AID)) setCookie(AID, getCookie(AID), YEAR); // keep a year from the last visit
      if (cfg.spa) {
        ['pushState', 'replaceState'].forEach((m) => {
          const orig = history[m];
          history[m] = function () {
            const r = orig.apply(this, arguments);
            if (cfg.pageViews) setTimeout(page, 0);
            return r;
          };
        });
        w.addEventListener('popstate', () => cfg.pageViews && setTimeout(page, 0));
      }
      d.addEventListener('visibilitychange', () => d.visibilityState === 'hidden' && flush(true));
      w.addEventListener('pagehide', () => { leaving = true; flush(true); });
      w.addEventListener('pageshow', (e) => {
        leaving = false;
        if (e.persisted && cfg.pageViews) { lastPage = null; page(); } // back from the bfcache: a view
      });
      if (cfg.forms) d.addEventListener('submit', onSubmit, true);
      if (cfg.pageViews) page();
      const pending = calls;
      calls = [];
      pending.forEach((c) => api.push(c));
      return api;
    },
    /** Sends an event of any type; returns its event_id, or null when not allowed. */
    track(type, properties) {
      return ready('track', arguments) ? send(type, Object.assign({ path: loc.pathname }, properties)) : null;
    },
    /** A page view of the current URL (skipped when the previous page view had the same URL). */
    page() {
      return ready('page', arguments) ? page() : null;
    },
    /** Ties this browser to an email (an `identify` event with the given traits). */
    identify(email, traits) {
      if (!ready('identify', arguments)) return null;
      const e = String(email || '').trim();
      if (!EMAIL.test(e)) return null;
      return send('identify', { path: loc.pathname }, e, Object.assign({}, traits));
    },
    /** Records the visitor's choice. `false` also drops what is queued and deletes Ember's cookies. */
    consent(granted) {
      if (!ready('consent', arguments)) return;
      setCookie(CONSENT, granted ? '1' : '0', YEAR);
      if (granted) {
        if (cfg.pageViews) page();
      } else {
        queue = [];
        lastPage = null;
        [AID, FIRST, LAST].forEach((n) => setCookie(n, '', 0));
      }
    },
    /** The anonymous id, or null when tracking is not allowed. */
    anonymousId() {
      return cfg ? anonymousId() : null;
    },
    /** Sends what is queued now (after the backoff, when the endpoint just failed). */
    flush() {
      flush();
    },
    /** `{queued, dropped}`: events waiting, and events dropped because the queue was full. */
    stats() {
      return { queued: queue.length, dropped };
    },
    /** Runs one queued call `[method, ...args]` (the form the loader snippet queues). */
    push(call) {
      const f = api[call[0]];
      return typeof f === 'function' ? f.apply(api, call.slice(1)) : undefined;
    },
  };
  w.ember = api;

  // Configuration from the script tag: <script src=".../ember.js" data-endpoint data-write-key>.
  const tag = d.currentScript || d.querySelector('script[data-write-key]');
  const ds = (tag && tag.dataset) || {};
  if (ds.endpoint && ds.writeKey) {
    const flag = (v) => (v == null ? undefined : v !== 'false');
    const num = (v) => (v == null ? undefined : Number(v));
    const o = {
      endpoint: ds.endpoint, writeKey: ds.writeKey, cookieDomain: ds.cookieDomain,
      requireConsent: flag(ds.requireConsent), respectDoNotTrack: flag(ds.respectDoNotTrack),
      spa: flag(ds.spa), pageViews: flag(ds.pageViews), forms: flag(ds.forms), beacon: flag(ds.beacon),
      flushInterval: num(ds.flushInterval), batchSize: num(ds.batchSize), maxQueue: num(ds.maxQueue),
      stripParams: ds.stripParams == null ? undefined : ds.stripParams.split(',').map((p) => p.trim().toLowerCase()).filter(Boolean),
    };
    Object.keys(o).forEach((k) => o[k] === undefined && delete o[k]);
    api.init(o);
  } else {
    // Calls queued before init, e.g. ember.init from the page's own script.
    const pending = calls.filter((c) => c[0] === 'init');
    calls = calls.filter((c) => c[0] !== 'init');
    pending.slice(0, 1).forEach((c) => api.push(c));
  }
})();
