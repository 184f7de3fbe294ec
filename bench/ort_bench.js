#!/usr/bin/env node
// Times ONNX Runtime (onnxruntime-node, CPU) as kiln's peer.
//
//   node bench/ort_bench.js --model M.onnx --input name=file.npy [...]
//        [--threads T] [--warmup W] [--runs R] [--json]
//        [--expect name=file.npy ...]   also print rel. L2 error of outputs
//        [--profile-out F]   ORT's per-node profile of all runs: mean us per run per node
//   node bench/ort_bench.js --overhead --model bench/models/add16.onnx
//        --input a=... --input b=... [--runs 100000]
//
// Latency is wall time around `await session.run(feeds)`, so it includes the
// Node binding's own cost (JS -> N-API -> ORT and back, output tensor creation).
// For real models that is noise; --overhead measures it on a tiny model.
//
// Install: cd bench && npm install onnxruntime-node@1.30.0 --ignore-scripts
'use strict';

const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`ort_bench: ${msg}\n`);
  process.exit(2);
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    die(`cannot load onnxruntime-node (${e.message}); run ` +
        `'cd ${path.relative(process.cwd(), __dirname) || '.'} && ` +
        `npm install onnxruntime-node@1.30.0 --ignore-scripts'`);
  }
}

// --- .npy reading -----------------------------------------------------------
// Format: magic "\x93NUMPY", major, minor, header length (u16 for v1, u32 for
// v2/v3), then a Python dict literal: {'descr': '<f4', 'fortran_order': False,
// 'shape': (1, 3), }.

const NPY_DTYPES = {
  f4: {ort: 'float32', array: Float32Array},
  f8: {ort: 'float64', array: Float64Array},
  i4: {ort: 'int32', array: Int32Array},
  i8: {ort: 'int64', array: BigInt64Array},
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  const magic = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);  // \x93NUMPY
  if (buf.length < 10 || !buf.subarray(0, 6).equals(magic))
    throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  let headerLen, headerStart;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    headerLen = buf.readUInt32LE(8);
    headerStart = 12;
  } else {
    throw new Error(`${file}: unsupported .npy version ${major}`);
  }
  const header = buf.toString('latin1', headerStart, headerStart + headerLen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shape) throw new Error(`${file}: malformed header: ${header}`);
  if (fortran[1] === 'True') throw new Error(`${file}: Fortran-order arrays are not supported`);

  // '<' little-endian, '|' not applicable, '=' native (little on x86).
  const m = /^([<|=])([fi][48])$/.exec(descr[1]);
  if (!m) throw new Error(`${file}: unsupported dtype '${descr[1]}' (want f4, f8, i4, i8, little-endian)`);
  const dtype = NPY_DTYPES[m[2]];
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);

  const dataStart = headerStart + headerLen;
  const bytes = count * dtype.array.BYTES_PER_ELEMENT;
  if (buf.length - dataStart < bytes)
    throw new Error(`${file}: truncated (need ${bytes} data bytes, have ${buf.length - dataStart})`);
  // Copy: a Buffer's byteOffset inside Node's pool need not be aligned for the typed array.
  const aligned = new ArrayBuffer(bytes);
  new Uint8Array(aligned).set(buf.subarray(dataStart, dataStart + bytes));
  return {type: dtype.ort, dims, data: new dtype.array(aligned)};
}

// --- statistics -------------------------------------------------------------

// Linear interpolation between closest ranks (numpy's default).
function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function summarize(ms) {
  const s = Float64Array.from(ms).sort();
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return {
    median_ms: percentile(s, 0.5),
    p10_ms: percentile(s, 0.1),
    p90_ms: percentile(s, 0.9),
    min_ms: s[0],
    mean_ms: mean,
  };
}

function relL2(got, want) {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; ++i) {
    const d = Number(got[i]) - Number(want[i]);
    num += d * d;
    den += Number(want[i]) * Number(want[i]);
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

// --- profile ----------------------------------------------------------------
// ORT writes its trace to <prefix>_<date>.json in the working directory when profiling ends;
// the summary (the format bench/ort_bench.py writes, for bench/profile_compare.py) sums each
// node's "<node>_kernel_time" events and divides by the runs.

function profileTraces(out) {
  const dir = path.dirname(path.resolve(out)), base = path.basename(out) + '.trace_';
  return fs.readdirSync(dir).filter((f) => f.startsWith(base));
}

function writeProfileSummary(session, out, runs, before) {
  const dir = path.dirname(path.resolve(out)), base = path.basename(out) + '.trace_';
  session.endProfiling();
  const made = profileTraces(out).filter((f) => !before.has(f));
  if (made.length !== 1) die(`profiling ended but no new trace ${base}*.json appeared in ${dir}`);
  const tracePath = path.join(dir, made[0]);
  const nodes = {};
  for (const e of JSON.parse(fs.readFileSync(tracePath, 'utf8'))) {
    if (e.cat !== 'Node' || !e.name || !e.name.endsWith('_kernel_time')) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    const entry = nodes[name] || (nodes[name] = {op: (e.args && e.args.op_name) || '?', us: 0});
    entry.us += Number(e.dur || 0);
  }
  for (const entry of Object.values(nodes)) entry.us /= runs;
  fs.writeFileSync(out, JSON.stringify({runs, trace: tracePath, nodes}, null, 1) + '\n');
}

// --- command line -----------------------------------------------------------

function parseArgs(argv) {
  const opts = {model: null, inputs: [], expects: [], threads: 1, warmup: 10, runs: 50,
                json: false, overhead: false, profileOut: null};
  const need = (i) => {
    if (i + 1 >= argv.length) die(`${argv[i]} needs a value`);
    return argv[i + 1];
  };
  const pair = (s, flag) => {
    const eq = s.indexOf('=');
    if (eq <= 0) die(`${flag} wants name=file.npy, got '${s}'`);
    return {name: s.slice(0, eq), file: s.slice(eq + 1)};
  };
  const count = (s, flag, min) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) die(`${flag} wants an integer >= ${min}, got '${s}'`);
    return n;
  };
  let runsGiven = false;
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    switch (a) {
      case '--model': opts.model = need(i); ++i; break;
      case '--input': opts.inputs.push(pair(need(i), a)); ++i; break;
      case '--expect': opts.expects.push(pair(need(i), a)); ++i; break;
      case '--threads': opts.threads = count(need(i), a, 1); ++i; break;
      case '--warmup': opts.warmup = count(need(i), a, 0); ++i; break;
      case '--runs': opts.runs = count(need(i), a, 1); runsGiven = true; ++i; break;
      case '--json': opts.json = true; break;
      case '--profile-out': opts.profileOut = need(i); ++i; break;
      case '--overhead': opts.overhead = true; break;
      case '-h':
      case '--help':
        process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 10)
                                 .map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
        process.exit(0);
      default: die(`unknown argument '${a}' (see --help)`);
    }
  }
  if (!opts.model) die('--model is required');
  if (opts.overhead && !runsGiven) opts.runs = 100000;
  if (opts.overhead && opts.warmup < 1000) opts.warmup = 1000;
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ort = loadOrt();

  // ORT creates its trace file with the session: the ones there before are not this run's.
  const tracesBefore = new Set(opts.profileOut !== null ? profileTraces(opts.profileOut) : []);
  const session = await ort.InferenceSession.create(opts.model, {
    intraOpNumThreads: opts.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    enableProfiling: opts.profileOut !== null,
    profileFilePrefix: opts.profileOut !== null ? path.resolve(`${opts.profileOut}.trace`) : undefined,
  });

  const feeds = {};
  for (const {name, file} of opts.inputs) {
    if (!session.inputNames.includes(name))
      die(`model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    let t;
    try {
      t = readNpy(file);
    } catch (e) {
      die(e.message);
    }
    feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length) die(`missing --input for: ${missing.join(', ')}`);

  for (let i = 0; i < opts.warmup; ++i) await session.run(feeds);

  const ms = new Float64Array(opts.runs);
  let outputs;
  for (let i = 0; i < opts.runs; ++i) {
    const t0 = process.hrtime.bigint();
    outputs = await session.run(feeds);
    ms[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }

  if (opts.profileOut !== null)
    writeProfileSummary(session, opts.profileOut, opts.warmup + opts.runs, tracesBefore);

  const result = {
    runtime: `onnxruntime-node ${ort.env.versions.node}`,
    model: opts.model,
    threads: opts.threads,
    warmup: opts.warmup,
    runs: opts.runs,
    ...summarize(ms),
  };
  if (opts.overhead) {
    result.note = 'per-call time of session.run, including the Node binding\'s own cost';
    result.median_us = result.median_ms * 1e3;
  }
  for (const {name, file} of opts.expects) {
    if (!(name in outputs)) die(`--expect: model has no output '${name}'`);
    result[`rel_l2_${name}`] = relL2(outputs[name].data, readNpy(file).data);
  }

  if (opts.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const f = (x) => x.toFixed(opts.overhead ? 4 : 3);
  process.stdout.write(`${result.runtime}, ${path.basename(opts.model)}, ${opts.threads} thread(s), ` +
                       `${opts.warmup} warm-up + ${opts.runs} runs\n`);
  for (const [n, t] of Object.entries(outputs))
    process.stdout.write(`  output ${n}: ${t.type} [${t.dims.join(', ')}]\n`);
  process.stdout.write(`  median ${f(result.median_ms)} ms  p10 ${f(result.p10_ms)} ms  ` +
                       `p90 ${f(result.p90_ms)} ms  min ${f(result.min_ms)} ms\n`);
  if (opts.overhead)
    process.stdout.write(`  per-call overhead (includes the Node binding's own cost): ` +
                         `median ${result.median_us.toFixed(2)} us\n`);
  for (const {name} of opts.expects)
    process.stdout.write(`  ${name}: rel L2 error vs reference ${result[`rel_l2_${name}`].toExponential(2)}\n`);
}

main().catch((e) => die(e.stack || String(e)));
