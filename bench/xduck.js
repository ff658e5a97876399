// bench/xduck.js: DuckDB (@duckdb/node-api from .deps/npm) for
// bench/xregion.sh, the stand-in for Ray Data's read_parquet.
//   node xduck.js gen DIR TOTAL_MIB      write part-NNN.parquet files of
//        32..128 MiB (cycling 32, 64, 96, 128 MiB; the last one trimmed,
//        32 MiB at least) adding up to about TOTAL_MIB; rows per file from
//        the bytes per row of a calibration file.  Columns: id BIGINT,
//        ts TIMESTAMP, x, y DOUBLE, k INTEGER, s VARCHAR (32 random hex
//        digits): random values, so compression saves little.
//   node xduck.js scan GLOB all|two     SELECT count(*) and sum(hash()) of every
//        column (all: sum(hash(COLUMNS(*))): no statistic answers it, every value is read and
//        decoded) or of x and s (two: a projection; DuckDB reads only those
//        column chunks and the footers).  Prints: rows seconds.
// DuckDB runs with threads=2 (this machine's cores); no extension loads.
'use strict';
const path = require('path');
const fs = require('fs');
const root = path.resolve(__dirname, '..');
const modDir = process.env.FERRY_NPM_DIR || path.join(root, '.deps', 'npm', 'node_modules');
const { DuckDBInstance } = require(path.join(modDir, '@duckdb', 'node-api'));

const q = (s) => "'" + s.replace(/'/g, "''") + "'";
const SELECT = (n) => `SELECT range AS id, TIMESTAMP '2024-01-01' + to_microseconds(range * 1000) AS ts,
  random() AS x, random() AS y, (random() * 2147483647)::INTEGER AS k, md5(random()::VARCHAR) AS s
  FROM range(${n})`;

async function main() {
  const [cmd, a, b] = process.argv.slice(2);
  const inst = await DuckDBInstance.create(':memory:', { threads: '2', autoinstall_known_extensions: 'false' });
  const conn = await inst.connect();
  if (cmd === 'gen' && a && b) {
    const total = Number(b) * 1048576;
    if (!(total > 0)) throw new Error('TOTAL_MIB must be a positive number');
    fs.mkdirSync(a, { recursive: true });
    const cal = path.join(a, '.calibrate.parquet');
    const calRows = 200000;
    await conn.run(`COPY (${SELECT(calRows)}) TO ${q(cal)} (FORMAT parquet)`);
    const bpr = fs.statSync(cal).size / calRows;
    fs.unlinkSync(cal);
    const cycle = [32, 64, 96, 128].map((m) => m * 1048576);
    let left = total, i = 0;
    while (left > 0) {
      let size = Math.min(cycle[i % cycle.length], left);
      if (left - size > 0 && left - size < 32 * 1048576) size = left; // no runt at the end
      size = Math.max(size, Math.min(32 * 1048576, total));
      const rows = Math.max(1, Math.round(size / bpr));
      const f = path.join(a, `part-${String(i).padStart(3, '0')}.parquet`);
      await conn.run(`COPY (${SELECT(rows)}) TO ${q(f + '.tmp')} (FORMAT parquet)`);
      fs.renameSync(f + '.tmp', f);
      console.log(`${path.basename(f)} ${rows} rows ${fs.statSync(f).size} bytes`);
      left -= size;
      i++;
    }
    return;
  }
  if (cmd === 'scan' && a && (b === 'all' || b === 'two')) {
    const sql = b === 'all'
      ? `SELECT count(*), sum(hash(COLUMNS(*))) FROM read_parquet(${q(a)})`
      : `SELECT count(*), sum(hash(x)), sum(hash(s)) FROM read_parquet(${q(a)})`;
    const t0 = process.hrtime.bigint();
    const r = await conn.runAndReadAll(sql);
    const t1 = process.hrtime.bigint();
    const rows = r.getRows()[0][0].toString();
    console.log(`${rows} ${(Number(t1 - t0) / 1e9).toFixed(6)}`);
    return;
  }
  throw new Error('usage: node xduck.js gen DIR TOTAL_MIB | scan GLOB all|two');
}

main().catch((e) => {
  console.error('xduck: ' + (e && e.message ? e.message : e));
  process.exit(1);
});
