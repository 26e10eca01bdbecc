// Drives /dashboard in headless Chromium and compares what it draws with the JSON reports.
// Run by scripts/dashboard-test (BASE, SHOT, EMBER_ADMIN_KEY in the environment).
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const base = process.env.BASE, shot = process.env.SHOT, key = process.env.EMBER_ADMIN_KEY;
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };
const same = (a, b, what) => check(JSON.stringify(a) === JSON.stringify(b), `${what}: page ${JSON.stringify(a)} ≠ API ${JSON.stringify(b)}`);
async function api(path) {
  const r = await fetch(base + path, { headers: { Authorization: `Bearer ${key}` } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const external = [];
  page.on("request", (req) => { if (!req.url().startsWith(base)) external.push(req.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // A script or style the CSP refuses (a hash that does not match) is a console error.
  page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) errors.push(m.text()); });
  await page.goto(base + "/dashboard");
  await page.waitForSelector("#key", { state: "visible" });
  await page.fill("#key", key);
  await page.click("#login-form button");
  await page.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  const stored = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length }));
  same(stored, { session: 0, local: 0 }, "after login, sessionStorage and localStorage hold nothing (the key stays in memory)");
  check(await page.evaluate(() => getComputedStyle(document.body).margin) === "0px", "the inline style applies (allowed by its CSP hash)");

  const from = await page.inputValue("#from"), to = await page.inputValue("#to");
  const q = `from=${from}&to=${to}`;
  const [funnel, camps, quality] = await Promise.all([
    api(`/v1/reports/funnel?${q}&by=channel`), api(`/v1/reports/campaigns?${q}`), api(`/v1/reports/quality?${q}`)]);

  // Funnel by stage.
  const stages = await page.$$eval("[data-chart=funnel] g", (gs) => gs.map((g) => ({
    stage: g.dataset.stage, leads: Number(g.dataset.leads), label: g.querySelector("text.value").textContent })));
  same(stages.map((s) => [s.stage, s.leads]), funnel.total.stages.map((c) => [c.stage, c.leads]), "funnel by stage");
  stages.forEach((s) => check(s.label.startsWith(String(s.leads)), `funnel label of ${s.stage} shows ${s.leads}: ${s.label}`));
  check(funnel.total.stages[0].leads >= 4, `the data made leads (${funnel.total.stages[0].leads})`);

  // Conversion by channel.
  const conv = await page.$$eval("[data-chart=conversion] g", (gs) => gs.map((g) => [g.dataset.channel, g.dataset.metric, g.dataset.ratio]));
  const want = [];
  for (const r of funnel.rows) {
    if (r.stages.length > 1) want.push([r.group, "next", r.stages[1].conversion === null ? "" : String(r.stages[1].conversion)]);
    want.push([r.group, "customer", r.lead_to_customer === null ? "" : String(r.lead_to_customer)]);
  }
  same(conv, want, "conversion by channel");
  check(funnel.rows.length >= 3, `several channels (${funnel.rows.map((r) => r.group)})`);

  // Score distribution of new leads (the selected group, summed over months).
  const group = await page.$eval("[data-chart=scores]", (s) => s.dataset.group);
  const bars = await page.$$eval("[data-chart=scores] g", (gs) => gs.map((g) => [Number(g.dataset.binFrom), Number(g.dataset.value)]));
  const bins = [];
  for (const m of quality.months) (m.scores[group] || []).forEach((b, i) => {
    bins[i] = bins[i] || [b.from, 0]; bins[i][1] += b.leads; });
  same(bars, bins, `score distribution (${group})`);
  check(bins.reduce((a, b) => a + b[1], 0) === quality.months.reduce((a, m) => a + m.new_leads, 0), "every new lead is in one score bin");

  // Campaign step drop-off.
  const steps = await page.$$eval("[data-chart=campaign] g", (gs) => gs.map((g) => [g.dataset.campaign, Number(g.dataset.step), Number(g.dataset.reached), Number(g.dataset.exited)]));
  same(steps, camps.campaigns.flatMap((c) => c.steps.map((s) => [c.campaign, s.step, s.reached, s.exited])), "campaign step drop-off");
  const nl = camps.campaigns.find((c) => c.campaign === "newsletter-nurture");
  check(nl && nl.sent >= 1 && nl.steps[0].opened === 1, `newsletter sends and one human open (${JSON.stringify(nl && nl.steps[0])})`);

  check(external.length === 0, `no request leaves the server: ${external}`);
  check(errors.length === 0, `no script errors: ${errors}`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  // A reload forgets the key: the page asks for it again.
  await page.reload();
  await page.waitForSelector("#key", { state: "visible" });
  check(await page.isHidden("#app"), "after a reload the reports are hidden until the key is given again");
  console.log(`compared: ${stages.length} funnel stages, ${conv.length} conversion bars, ${bars.length} score bins, ${steps.length} campaign steps`);
} finally {
  await browser.close();
}
if (failures.length) {
  console.error("dashboard test FAILED:\n  " + failures.join("\n  "));
  process.exit(1);
}
console.log("dashboard test passed: the charts show the API's numbers");
