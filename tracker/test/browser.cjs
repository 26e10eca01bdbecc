// Browser test of tracker/ember.js against a running `ember dev`, in headless Chromium.
// Run by scripts/browser-test, which starts the server and sets:
//   EMBER_URL, EMBER_ADMIN_KEY, EMBER_WRITE_KEY, SITE_PORT, TRACKER_JS (the minified tracker).
// The test site (tracker/test/site) is served from http://localhost:SITE_PORT while Ember
// listens on 127.0.0.1: another origin, so the browser applies its real cross-origin rules.
'use strict';
const assert = require('assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const { chromium } = require('playwright-core');

const EMBER = process.env.EMBER_URL;
const ADMIN_KEY = process.env.EMBER_ADMIN_KEY;
const WRITE_KEY = process.env.EMBER_WRITE_KEY;
const SITE_PORT = Number(process.env.SITE_PORT);
const TRACKER = fs.readFileSync(process.env.TRACKER_JS, 'utf8');
const SITE = `http://localhost:${SITE_PORT}`;
const SITE_DIR = path.join(__dirname, 'site');
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const run = crypto.randomBytes(4).toString('hex');

let endpoint = ''; // where the tracker sends: the wire tap in front of Ember (below)
let attrs = ''; // extra data attributes on the tracker's script tag, per test
let bareTag = false; // a script tag without configuration: the page calls ember.init itself

const log = (...a) => console.log('browser-test:', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the test site ---------------------------------------------------------------------------
const PAGES = { '/': 'index.html', '/pricing': 'index.html', '/contact': 'contact.html', '/thanks': 'thanks.html' };
function startSite() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const u = new URL(req.url, SITE);
      if (u.pathname === '/ember.js') {
        res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
        return res.end(TRACKER);
      }
      const file = PAGES[u.pathname];
      if (!file) {
        res.writeHead(404);
        return res.end();
      }
      const html = fs.readFileSync(path.join(SITE_DIR, file), 'utf8')
        .replace('%TRACKER%', bareTag
          ? '<script async src="/ember.js"></script>'
          : `<script src="/ember.js" data-endpoint="${endpoint}" data-write-key="${WRITE_KEY}" ${attrs}></script>`);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(html);
    });
  });
  return new Promise((resolve) => server.listen(SITE_PORT, '127.0.0.1', () => resolve(server)));
}

// --- HTTP helpers --------------------------------------------------------------------------------
function request(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}
const adminGet = (p) => request(EMBER + p, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });

async function waitFor(what, fn, timeoutMs = 10000) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(150);
  }
}

async function leadBy(query) {
  const r = await adminGet(`/v1/leads?${query}`);
  return r.status === 200 ? r.json : null;
}
async function timeline(leadId) {
  const r = await adminGet(`/v1/leads/${encodeURIComponent(leadId)}/timeline`);
  assert.equal(r.status, 200, `timeline of ${leadId}: ${r.text}`);
  return r.json.events;
}

// --- the wire ---------------------------------------------------------------------------------
// The tracker sends to a tap in front of Ember that records every request as it arrives (the
// browser does not report beacons sent while a page unloads) and passes it through untouched:
// method, Content-Type, Origin and body in; status, CORS headers and body out — so the
// browser applies Ember's own CORS answer.
//
// Contract: POST {endpoint}/v1/events, Content-Type text/plain;charset=UTF-8 (a CORS simple
// request), body {"write_key", "batch"}, CORS headers for the site's origin.
const wire = []; // {contentType, origin, body} of every request that reached the tap

async function checkServer() {
  const body = JSON.stringify({
    write_key: WRITE_KEY,
    batch: [{ event_id: `probe-${run}`, type: 'page_view', anonymous_id: `browser-test-probe-${run}`, properties: { path: '/probe' } }],
  });
  const r = await request(`${EMBER}/v1/events`, {
    method: 'POST',
    headers: { Origin: SITE, 'Content-Type': 'text/plain;charset=UTF-8' },
    body,
  });
  assert.equal(r.status, 202, `POST /v1/events as the tracker sends it: ${r.status} ${r.text}`);
  assert.equal(r.json.accepted, 1, `probe event accepted: ${r.text}`);
  const acao = r.headers['access-control-allow-origin'];
  assert.ok(acao === SITE || acao === '*', `CORS: Access-Control-Allow-Origin for ${SITE}, got ${acao}`);
  log(`server honours the wire contract (text/plain accepted, CORS allows ${acao})`);
}

function startTap() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      if (req.method === 'POST') {
        let body = null;
        try { body = JSON.parse(raw.toString('utf8')); } catch (e) { /* recorded as null */ }
        wire.push({ contentType: req.headers['content-type'], origin: req.headers.origin, body });
      }
      const headers = {};
      for (const h of ['content-type', 'origin', 'authorization', 'access-control-request-method', 'access-control-request-headers']) {
        if (req.headers[h]) headers[h] = req.headers[h];
      }
      try {
        const r = await request(EMBER + req.url, { method: req.method, headers, body: raw.length ? raw : undefined });
        const out = {};
        for (const [k, v] of Object.entries(r.headers)) if (k.startsWith('access-control-') || k === 'content-type' || k === 'vary') out[k] = v;
        res.writeHead(r.status, out);
        res.end(r.text);
      } catch (e) {
        res.writeHead(502);
        res.end();
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// --- browser helpers --------------------------------------------------------------------------
/** A fresh browser profile. `sent`: requests that reached Ember since it was made (tests run one
 * at a time); `requested`: requests as the browser reports them (with their resource type). */
async function newVisitor(browser, init) {
  const context = await browser.newContext();
  if (init) await context.addInitScript(init);
  const first = wire.length;
  const requested = [];
  context.on('request', (r) => {
    if (!r.url().startsWith(`${endpoint}/v1/events`)) return;
    requested.push({ kind: r.resourceType(), body: JSON.parse(r.postData()) });
    if (process.env.BROWSER_TEST_DEBUG) log('sent', r.resourceType(), r.postData());
  });
  const cookie = async (name) => ((await context.cookies(SITE)).find((c) => c.name === name) || {}).value;
  const v = {
    context, requested, cookie,
    get sent() { return wire.slice(first); },
    events: () => v.sent.flatMap((s) => (s.body ? s.body.batch : [])),
  };
  return v;
}

/** Leaves the site in every tab of the context (pagehide runs; the tab stays open, so the
 * browser still reports the requests the page makes while it goes). */
async function leaveSite(context) {
  for (const p of context.pages()) await p.goto('about:blank');
}

// --- the tests --------------------------------------------------------------------------------
async function testVisitorBecomesOneLead(browser) {
  attrs = 'data-flush-interval="300"';
  const v = await newVisitor(browser);
  const page = await v.context.newPage();
  await page.goto(`${SITE}/`);
  const aid = await waitFor('the anonymous id cookie', () => v.cookie('ember_aid'));
  assert.match(aid, UUID_V4);
  assert.equal(await page.evaluate(() => window.ember.anonymousId()), aid);
  await page.click('#spa-pricing'); // pushState + replaceState of the same URL
  await page.waitForFunction(() => document.title === 'Pricing');
  await page.goBack(); // popstate
  await page.waitForFunction(() => location.pathname === '/');
  await waitFor('three page views sent', () => v.events().length >= 3);
  await page.goto(`${SITE}/contact`);
  const email = `Visitor.${run}@Example.COM`;
  await page.fill('input[name=email]', email);
  await page.fill('input[name=first_name]', 'Ada');
  await page.fill('input[name=job_title]', 'Head of Marketing');
  await page.fill('input[name=company_size]', '250');
  await page.fill('input[name=phone]', '+33 6 00 00 00 00');
  await page.fill('input[name=password]', `secret-${run}`);
  await page.fill('input[name=card]', '4111 1111 1111 1111');
  await page.fill('input[name=login_code]', '862451');
  await page.check('input[name=optin]');
  await Promise.all([page.waitForURL(`${SITE}/thanks`), page.click('#send')]);
  await page.waitForSelector('#thanks');
  await leaveSite(v.context);
  await waitFor('every event sent', () => v.events().filter((e) => e.type === 'page_view').length >= 5);
  assert.equal(await v.cookie('ember_aid'), aid, 'the anonymous id is made once');

  // What went over the wire.
  for (const s of v.sent) {
    assert.equal(s.contentType, 'text/plain;charset=UTF-8', 'a CORS simple request');
    assert.equal(s.origin, SITE);
    assert.equal(s.body.write_key, WRITE_KEY);
    assert.ok(s.body.batch.length >= 1 && s.body.batch.length <= 100);
  }
  const evs = v.events();
  assert.equal(new Set(evs.map((e) => e.event_id)).size, evs.length, 'event ids are unique');
  for (const e of evs) {
    assert.match(e.event_id, UUID_V4);
    assert.equal(e.anonymous_id, aid);
    assert.ok(!Number.isNaN(Date.parse(e.occurred_at)) && e.occurred_at.endsWith('Z'), e.occurred_at);
  }
  const views = evs.filter((e) => e.type === 'page_view');
  assert.deepEqual(views.map((e) => e.properties.path), ['/', '/pricing', '/', '/contact', '/thanks'], 'one view per URL change');
  assert.equal(views[1].properties.title, 'Pricing');
  assert.equal(views[1].properties.url, `${SITE}/pricing`);
  const form = evs.find((e) => e.type === 'form_submit');
  assert.ok(form, 'form_submit sent');
  assert.equal(form.email, email);
  assert.equal(form.properties.form_id, 'needs-survey');
  assert.deepEqual(form.traits, { first_name: 'Ada', job_title: 'Head of Marketing', company_size: 250, email_opt_in: true });
  const text = JSON.stringify(v.sent);
  assert.ok(!text.includes(`secret-${run}`) && !text.includes('password'), 'password fields are never sent');
  assert.ok(!text.includes('+33 6'), 'unmapped fields are never sent');
  assert.ok(!text.includes('4111') && !text.includes('862451'), 'card fields and one-time codes are never sent, even marked');
  log(`visitor: ${evs.length} events in ${v.sent.length} requests (${[...new Set(v.requested.map((s) => s.kind))].join(', ')})`);

  // What Ember made of it: one lead, reached by the email and by the cookie id.
  const lead = await waitFor('the lead by email', () => leadBy(`email=${encodeURIComponent(email)}`));
  const byCookie = await leadBy(`anonymous_id=${encodeURIComponent(aid)}`);
  assert.ok(byCookie, 'the anonymous id resolves to a lead');
  assert.equal(byCookie.id, lead.id, 'the page-view visitor and the form filler are one lead');
  assert.equal(lead.email, email.toLowerCase());
  assert.ok(lead.anonymous_ids.includes(aid));
  assert.equal(lead.traits.job_title, 'Head of Marketing');
  const tl = await waitFor('the whole timeline', async () => {
    const t = await timeline(lead.id);
    return t.length >= evs.length ? t : null;
  });
  const ids = tl.map((t) => t.event.id);
  for (const e of evs) assert.ok(ids.includes(e.event_id), `event ${e.type} ${e.event_id} on the lead's timeline`);
  assert.deepEqual(
    tl.filter((t) => t.event.type === 'page_view').map((t) => t.event.properties.path),
    ['/', '/pricing', '/', '/contact', '/thanks'],
  );
  assert.equal(tl.filter((t) => t.event.type === 'form_submit').length, 1);
  // homepage 1 + 1, pricing 10, needs-survey form 20 (examples/b2b-saas.yaml)
  const final = await leadBy(`email=${encodeURIComponent(email)}`);
  assert.equal(final.scores.engagement, 32, JSON.stringify(final.scores));
  await v.context.close();
  log(`PASS page views + SPA navigation + form fill make ONE lead (${lead.id}, engagement 32)`);
}

async function testApi(browser) {
  attrs = 'data-flush-interval="200"';
  // Calls queued in an array before the file loads run once it has started.
  const v = await newVisitor(browser, () => {
    window.ember = [['track', 'cta_click', { cta: 'queued-before-load' }], ['identify', 'Grace.RUN@Example.com', { company: 'Navy' }]];
  });
  await v.context.addInitScript((r) => { window.ember[1][1] = window.ember[1][1].replace('RUN', r); }, run);
  const page = await v.context.newPage();
  await page.goto(`${SITE}/`);
  const id = await page.evaluate(() => window.ember.track('download', { content_id: 'roi-calculator' }));
  assert.match(id, UUID_V4, 'track returns the event id');
  assert.equal(await page.evaluate(() => window.ember.identify('not an email')), null);
  await waitFor('four events sent', () => v.events().length >= 4);
  assert.deepEqual(v.events().map((e) => e.type), ['page_view', 'cta_click', 'identify', 'download']);
  const aid = await v.cookie('ember_aid');
  const email = `grace.${run}@example.com`;
  const lead = await waitFor('the identified lead', async () => {
    const l = await leadBy(`email=${email}`);
    return l && l.event_count >= 4 ? l : null;
  });
  assert.equal((await leadBy(`anonymous_id=${aid}`)).id, lead.id, 'identify ties the browser to the lead');
  assert.equal(lead.traits.company, 'Navy');
  assert.ok(lead.tags.includes('high_intent'), `the download rule fired: ${lead.tags}`);
  assert.equal(lead.scores.engagement, 1 + 25, JSON.stringify(lead.scores)); // homepage, strategy whitepaper
  await v.context.close();

  // No data attributes: configured by a queued ember.init (an async script tag).
  bareTag = true;
  const w = await newVisitor(browser);
  await w.context.addInitScript((o) => {
    window.ember = [['track', 'cta_click', { cta: 'before-init' }], ['init', o]];
  }, { endpoint, writeKey: WRITE_KEY, flushInterval: 200 });
  const p2 = await w.context.newPage();
  await p2.goto(`${SITE}/`);
  await waitFor('events of the page that calls init', () => w.events().length >= 2);
  assert.deepEqual(w.events().map((e) => e.type), ['page_view', 'cta_click']);
  await p2.evaluate(() => {
    window.ember.init({ endpoint: 'https://elsewhere.example', writeKey: 'x' }); // ignored: already started
    window.ember.track('cta_click', { cta: 'after-second-init' });
  });
  await waitFor('the event after a second init, sent to the same place', () => w.events().length >= 3);
  await w.context.close();
  bareTag = false;
  log('PASS queued calls, ember.init without data attributes, track and identify reach one lead');
}

async function testDoNotTrack(browser) {
  attrs = 'data-flush-interval="200"';
  const signals = {
    'navigator.doNotTrack = "1"': () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' }),
    'navigator.globalPrivacyControl = true': () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }),
  };
  for (const [name, init] of Object.entries(signals)) {
    const v = await newVisitor(browser, init);
    const page = await v.context.newPage();
    await page.goto(`${SITE}/`);
    await page.click('#spa-pricing');
    assert.equal(await page.evaluate(() => window.ember.track('cta_click', { cta: 'x' })), null);
    assert.equal(await page.evaluate(() => window.ember.identify('dnt@example.com')), null);
    await page.goto(`${SITE}/contact`);
    await page.fill('input[name=email]', `dnt.${run}@example.com`);
    await Promise.all([page.waitForURL(`${SITE}/thanks`), page.click('#send')]);
    assert.equal(await page.evaluate(() => window.ember.anonymousId()), null);
    await sleep(600);
    await leaveSite(v.context);
    await sleep(300);
    assert.equal(v.sent.length, 0, `${name}: nothing sent`);
    assert.deepEqual((await v.context.cookies(SITE)).map((c) => c.name), [], `${name}: no cookie`);
    assert.equal(await leadBy(`email=dnt.${run}%40example.com`), null);
    await v.context.close();
    log(`PASS ${name}: no request, no cookie`);
  }
}

async function testConsent(browser) {
  attrs = 'data-require-consent data-flush-interval="200"';
  const v = await newVisitor(browser);
  const page = await v.context.newPage();
  await page.goto(`${SITE}/`);
  await page.click('#spa-pricing');
  await page.evaluate(() => window.ember.track('cta_click', { cta: 'before-consent' }));
  await sleep(600);
  assert.equal(v.sent.length, 0, 'nothing sent before consent');
  assert.equal(await v.cookie('ember_aid'), undefined, 'no cookie before consent');
  assert.equal(await page.evaluate(() => window.ember.anonymousId()), null);

  await page.evaluate(() => window.ember.consent(true));
  const aid = await waitFor('the anonymous id after consent', () => v.cookie('ember_aid'));
  await waitFor('the page view sent after consent', () => v.events().length >= 1);
  assert.deepEqual(v.events().map((e) => [e.type, e.properties.path]), [['page_view', '/pricing']], 'only what happened after consent');
  const lead = await waitFor('the consented visitor', () => leadBy(`anonymous_id=${aid}`));
  assert.deepEqual((await timeline(lead.id)).map((t) => t.event.type), ['page_view']);

  // The choice is remembered on the next page; withdrawing it stops everything and deletes the id.
  await page.goto(`${SITE}/contact`);
  await waitFor('the next page view', () => v.events().length >= 2);
  await page.evaluate(() => window.ember.consent(false));
  assert.equal(await v.cookie('ember_aid'), undefined, 'consent(false) deletes the anonymous id');
  await page.evaluate(() => window.ember.track('cta_click', { cta: 'after-withdrawal' }));
  await sleep(600);
  await leaveSite(v.context);
  await sleep(300);
  assert.equal(v.events().length, 2, 'nothing sent after consent(false)');
  await v.context.close();
  log('PASS requireConsent: nothing before consent(true), nothing after consent(false)');
}

async function testFirstTouch(browser) {
  attrs = 'data-flush-interval="200"';
  const v = await newVisitor(browser);
  let page = await v.context.newPage();
  await page.goto(`${SITE}/?utm_source=newsletter&utm_medium=email&utm_campaign=spring`);
  await page.evaluate(() => history.replaceState({}, '', '/')); // the site strips its UTMs: no second view
  await waitFor('the first visit', () => v.events().length >= 1);
  await leaveSite(v.context);
  const first = { source: 'newsletter', medium: 'email', campaign: 'spring' };
  assert.deepEqual(v.events()[0].context.utm, first);

  page = await v.context.newPage(); // a second visit, from another campaign
  await page.goto(`${SITE}/contact?utm_source=ads&utm_campaign=summer&utm_term=scoring`);
  await page.evaluate(() => history.pushState({}, '', '/pricing')); // later pages keep the session's touch
  await waitFor('the second visit', () => v.events().length >= 3);
  const evs = v.events();
  assert.deepEqual(evs.map((e) => e.properties.path), ['/', '/contact', '/pricing']);
  for (const e of evs.slice(1)) {
    assert.deepEqual(e.context.utm, { source: 'ads', campaign: 'summer', term: 'scoring' }, 'last touch');
    assert.deepEqual(e.context.first_touch.utm, first, 'first touch never overwritten');
  }
  const aid = await v.cookie('ember_aid');
  const lead = await waitFor('the two-visit lead', async () => {
    const l = await leadBy(`anonymous_id=${aid}`);
    return l && l.event_count >= 3 ? l : null;
  });
  assert.equal(lead.first_touch.source, 'newsletter');
  assert.equal(lead.last_touch.source, 'ads');
  await v.context.close();
  log('PASS UTM: first touch kept across a second visit with other UTMs; last touch sent as context.utm');
}

async function testRetryAndFallbacks(browser) {
  // No sendBeacon (fetch keepalive path), no crypto.randomUUID, and a first answer of 503.
  attrs = 'data-beacon="false" data-flush-interval="200"';
  const v = await newVisitor(browser, () => Object.defineProperty(Crypto.prototype, 'randomUUID', { value: undefined }));
  let calls = 0;
  await v.context.route(`${endpoint}/v1/events`, (route) => {
    calls += 1;
    if (calls === 1) return route.fulfill({ status: 503, headers: { 'Access-Control-Allow-Origin': '*' }, body: '{}' });
    return route.continue();
  });
  const page = await v.context.newPage();
  await page.goto(`${SITE}/`);
  await waitFor('the retried request', () => v.requested.length >= 2 && v.sent.length >= 1, 8000);
  const [a, b] = v.requested;
  assert.equal(a.kind, 'fetch');
  assert.deepEqual(a.body.batch.map((e) => e.event_id), b.body.batch.map((e) => e.event_id), 'a retry resends the same event ids');
  assert.deepEqual(v.sent.map((s) => s.body.batch.map((e) => e.event_id)), [a.body.batch.map((e) => e.event_id)], 'the retry reached Ember');
  const aid = await v.cookie('ember_aid');
  assert.match(aid, UUID_V4, 'the getRandomValues fallback makes UUID v4 ids');
  assert.match(a.body.batch[0].event_id, UUID_V4);
  // A second copy of what already arrived is counted once by the server.
  const ev = b.body.batch[0];
  const again = await request(`${endpoint}/v1/events`, {
    method: 'POST',
    headers: { Origin: SITE, 'Content-Type': 'text/plain;charset=UTF-8' },
    body: JSON.stringify({ write_key: WRITE_KEY, batch: [ev] }),
  });
  assert.equal(again.json.duplicate, 1, again.text);
  const lead = await waitFor('the retried visitor', () => leadBy(`anonymous_id=${aid}`));
  assert.equal(lead.event_count, 1);
  assert.equal((await timeline(lead.id)).length, 1);
  await v.context.close();
  log('PASS retry after 503 with the same event id, counted once; fetch and UUID fallbacks');
}

async function testSplitting(browser) {
  attrs = 'data-flush-interval="60000" data-batch-size="1000"';
  const v = await newVisitor(browser);
  const page = await v.context.newPage();
  await page.goto(`${SITE}/`);
  await page.evaluate(() => {
    for (let i = 0; i < 249; i++) window.ember.track('cta_click', { cta: `button-${i}`, filler: 'x'.repeat(200) });
    window.ember.flush();
  });
  await waitFor('250 events sent', () => v.events().length >= 250);
  const sizes = v.sent.map((s) => s.body.batch.length);
  assert.ok(sizes.every((n) => n <= 100), `at most 100 events per request: ${sizes}`);
  assert.ok(v.sent.every((s) => Buffer.byteLength(JSON.stringify(s.body)) <= 64 * 1024), 'at most 64 KiB per request');
  const aid = await v.cookie('ember_aid');
  const lead = await waitFor('all 250 events stored', async () => {
    const l = await leadBy(`anonymous_id=${aid}`);
    return l && l.event_count === 250 ? l : null;
  }, 20000);
  assert.equal(lead.event_count, 250);
  await v.context.close();
  log(`PASS 250 events split into requests of ${sizes.join(' + ')} events, all stored`);
}

async function testCookiesStayBounded(browser) {
  // A crafted link: long UTM values, some of them multi-byte (each é is 6 bytes once encoded).
  attrs = 'data-flush-interval="200"';
  const v = await newVisitor(browser);
  const long = (c, n) => encodeURIComponent(c.repeat(n));
  await v.context.addCookies([{ name: 'ember_lt', value: 'x'.repeat(3000), url: SITE }]); // left by an older version
  const page = await v.context.newPage();
  await page.goto(`${SITE}/?utm_source=${long('é', 400)}&utm_medium=${long('"', 400)}&utm_campaign=${long('c', 400)}` +
    `&utm_term=${long('t', 400)}&utm_content=${long('<', 400)}`);
  await waitFor('the page view', () => v.events().length >= 1);
  const jar = await v.context.cookies(SITE);
  const sizes = Object.fromEntries(jar.map((c) => [c.name, c.name.length + 1 + c.value.length]));
  for (const n of ['ember_ft', 'ember_lt']) {
    assert.ok(sizes[n], `${n} is set: ${JSON.stringify(sizes)}`);
    assert.ok(sizes[n] <= 1100, `${n} holds at most ~1 KB: ${sizes[n]} B`);
  }
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);
  assert.ok(total <= 2400, `Ember's cookies add at most ~2.4 KB to the Cookie header: ${total} B`);
  const utm = v.events()[0].context.utm;
  assert.ok(utm.source.startsWith('é') && Array.from(utm.source).length <= 100, `utm_source kept, shortened: ${utm.source.length}`);
  assert.ok(Array.from(utm.campaign).length <= 100);
  await v.context.close();
  log(`PASS a crafted UTM link stores ${total} B of cookies (ember_ft ${sizes.ember_ft} B, ember_lt ${sizes.ember_lt} B); an oversized old cookie is replaced`);
}

async function testUrlsCarryNoSecrets(browser) {
  attrs = 'data-flush-interval="200"';
  const v = await newVisitor(browser);
  const page = await v.context.newPage();
  await page.goto(`${SITE}/?token=magic-${run}&page=2&code=oauth-${run}&access_token=at-${run}&X-Amz-Signature=sig-${run}` +
    `&sessionId=s-${run}#id_token=frag-${run}`, { referer: `http://idp.example/callback?code=ref-${run}&lang=en#state=frag2-${run}` });
  await waitFor('the page view', () => v.events().length >= 1);
  const ev = v.events()[0];
  assert.equal(ev.properties.url, `${SITE}/?page=2`, 'fragment and secret-looking parameters dropped');
  assert.equal(ev.context.referrer, 'http://idp.example/callback?lang=en', 'the referrer is cleaned the same way');
  const cookies = JSON.stringify(await v.context.cookies(SITE));
  const sent = JSON.stringify(v.sent);
  for (const secret of ['magic', 'oauth', 'at', 'sig', 's', 'frag', 'ref', 'frag2']) {
    assert.ok(!sent.includes(`${secret}-${run}`) && !cookies.includes(`${secret}-${run}`), `${secret}-… is neither sent nor stored`);
  }
  await v.context.close();

  // The list is configurable: `data-strip-params` replaces it.
  attrs = 'data-flush-interval="200" data-strip-params="page, ref"';
  const w = await newVisitor(browser);
  const p2 = await w.context.newPage();
  await p2.goto(`${SITE}/?page=2&ref=x&code=kept`);
  await waitFor('the page view', () => w.events().length >= 1);
  assert.equal(w.events()[0].properties.url, `${SITE}/?code=kept`);
  await w.context.close();
  log('PASS page URLs and referrers are sent without #fragment and secret-looking parameters (configurable)');
}

async function testBackoffAndBoundedQueue(browser) {
  // The endpoint fails every time; the tracker must wait out its backoff and keep at most maxQueue events.
  attrs = 'data-beacon="false" data-flush-interval="200" data-batch-size="10" data-max-queue="50"';
  const v = await newVisitor(browser);
  await v.context.route(`${endpoint}/v1/events`, (route) =>
    route.fulfill({ status: 503, headers: { 'Access-Control-Allow-Origin': '*' }, body: '{}' }));
  const page = await v.context.newPage();
  await page.goto(`${SITE}/`);
  await waitFor('the first (failing) request', () => v.requested.length >= 1);
  await sleep(300); // its 503 has arrived: the tracker now waits 2 s
  await page.evaluate(() => { for (let i = 0; i < 200; i++) window.ember.track('cta_click', { cta: `n-${i}` }); });
  await sleep(1000);
  assert.equal(v.requested.length, 1, `nothing is sent during the backoff, whatever the batch size: ${v.requested.length} requests`);
  assert.deepEqual(await page.evaluate(() => window.ember.stats()), { queued: 50, dropped: 151 }, 'the queue keeps the newest 50 events');
  await waitFor('the retry after the backoff', () => v.requested.length >= 2, 4000);
  const second = v.requested[1].body.batch;
  assert.equal(second.length, 50);
  assert.deepEqual([second[0].properties.cta, second[49].properties.cta], ['n-150', 'n-199'], 'the oldest were dropped');
  await sleep(2500); // the next backoff is 4 s
  assert.equal(v.requested.length, 2, `the backoff doubles: ${v.requested.length} requests`);
  const sends = {};
  for (const r of v.requested) for (const e of r.body.batch) sends[e.event_id] = (sends[e.event_id] || 0) + 1;
  assert.ok(Object.values(sends).every((n) => n <= 2), 'no event sent more often than the attempts so far');
  await v.context.close();
  log('PASS a failing endpoint gets 2 requests in 4 s (backoff honoured at batch size), the queue stays at 50 (151 dropped, counted)');
}

(async () => {
  const site = await startSite();
  const tap = await startTap();
  endpoint = `http://127.0.0.1:${tap.address().port}`;
  let browser;
  try {
    await checkServer();
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const tests = [testVisitorBecomesOneLead, testApi, testDoNotTrack, testConsent, testFirstTouch, testRetryAndFallbacks,
      testSplitting, testCookiesStayBounded, testUrlsCarryNoSecrets, testBackoffAndBoundedQueue];
    // BROWSER_TESTS=name,name runs only those (e.g. testBackoffAndBoundedQueue).
    const only = (process.env.BROWSER_TESTS || '').split(',').map((t) => t.trim()).filter(Boolean);
    const unknown = only.filter((n) => !tests.some((t) => t.name === n));
    if (unknown.length) throw new Error(`BROWSER_TESTS names no test: ${unknown.join(', ')}`);
    const failed = [];
    for (const t of tests.filter((t) => !only.length || only.includes(t.name))) {
      try {
        await t(browser);
      } catch (e) {
        console.error(`browser-test: FAIL ${t.name}:`, e && e.stack ? e.stack : e);
        failed.push(t.name);
        attrs = ''; bareTag = false;
      }
    }
    if (failed.length) throw new Error(`${failed.length} test(s) failed: ${failed.join(', ')}`);
    log('all browser tests passed');
  } catch (e) {
    console.error('browser-test: FAILED:', e && e.stack ? e.stack : e);
    process.exitCode = 1;
  } finally {
    if (browser) await browser.close();
    site.close();
    tap.close();
    setTimeout(() => process.exit(process.exitCode || 0), 100).unref();
  }
})();
