// Minifies tracker/ember.js with terser and prints its sizes; fails when the gzipped file
// passes the budget. Usage: NODE_PATH=<tools>/node_modules node tracker/build.cjs [OUT]
// (`scripts/chromium` prints <tools>; `npm install terser` there once).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { minify } = require('terser');
const acorn = require('acorn'); // terser's own parser


const BUDGET_GZIP = 4096; // bytes

(async () => {
  const src = fs.readFileSync(path.join(__dirname, 'ember.js'), 'utf8');
  // Plain ES2017: nothing newer may slip in (object spread, optional chaining, `catch {}`…).
  acorn.parse(src, { ecmaVersion: 2017, sourceType: 'script' });
  const out = process.argv[2] || path.join(__dirname, 'dist', 'ember.min.js');
  const { code } = await minify(src, {
    ecma: 2017,
    compress: { passes: 2 },
    mangle: true,
    format: { comments: /^!/ },
  });
  acorn.parse(code, { ecmaVersion: 2017, sourceType: 'script' });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, code);
  const gz = zlib.gzipSync(code, { level: 9 }).length;
  console.log(`ember.js: ${Buffer.byteLength(src)} B source, ${Buffer.byteLength(code)} B minified, ${gz} B minified+gzipped -> ${out}`);
  if (gz > BUDGET_GZIP) {
    console.error(`ember.js is over its budget: ${gz} B gzipped > ${BUDGET_GZIP} B`);
    process.exit(1);
  }
})().catch((e) => { console.error(e); process.exit(1); });
