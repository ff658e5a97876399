// Runs SQL statements with DuckDB (@duckdb/node-api from .deps/npm) and
// prints one JSON line: {"results": [[row, ...] per statement]}, each row
// an array of values, BIGINT/HUGEINT as decimal strings.  Usage:
//   node duckdb_query.js '<JSON array of SQL strings>'
// With the single argument --probe it only loads the package (exit 0 when
// it can be used).  Called by tests/integration/test_fuse_apps.py.
'use strict';
const path = require('path');

const root = path.resolve(__dirname, '..', '..', '..');
const modDir = process.env.FERRY_NPM_DIR || path.join(root, '.deps', 'npm', 'node_modules');
const { DuckDBInstance } = require(path.join(modDir, '@duckdb', 'node-api'));

function plain(v) {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object') return v;
  return String(v);
}

async function main() {
  const arg = process.argv[2];
  if (arg === '--probe') {
    const inst = await DuckDBInstance.create(':memory:');
    const conn = await inst.connect();
    await conn.runAndReadAll('SELECT 1');
    console.log(JSON.stringify({ ok: true }));
    return;
  }
  const stmts = JSON.parse(arg);
  const inst = await DuckDBInstance.create(':memory:', { threads: '2', autoinstall_known_extensions: 'false' });
  const conn = await inst.connect();
  const results = [];
  for (const sql of stmts) {
    const reader = await conn.runAndReadAll(sql);
    results.push(reader.getRows().map((row) => row.map(plain)));
  }
  console.log(JSON.stringify({ results }));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
