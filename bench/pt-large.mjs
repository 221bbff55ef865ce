// Benchmark (not a test): a synthetic torch.save checkpoint over 2 GiB with the keys and shapes of
// 256x256_diffusion_uncond, streamed to a temp directory (never held in memory, deleted at the end),
// then read three ways, each in its own process so that its peak RSS (VmHWM) is its own:
//   read     TorchCheckpointReader: open, readFloat32 of every tensor (what ADMUNet.load reads)
//   convert  `diffssl convert big.pt big.safetensors` (the CLI's main(), dtypes kept)
//   load     ADMUNet.load(big.pt, '256x256_diffusion_uncond') on the cpu backend (weights become tf tensors)
// usage: npm run build && node bench/pt-large.mjs [--dir DIR] [--keep] [--phases read,convert,load]
// The file is mixed like a convert_to_fp16() checkpoint: the manifest's float16 keys inside
// input_blocks 0–11 are float16, everything else float32, which keeps it just over 2 GiB (offsets
// past 2^31) while the real release file, all float32, is 2.21 GB.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);

if (argv[0] === '--phase') await phase(argv[1], argv[2]);
else await parent();

async function parent() {
  const dir = fs.mkdtempSync(path.join(opt('dir', os.tmpdir()), 'diffssl-pt-large-'));
  const file = path.join(dir, 'big.pt');
  const phases = opt('phases', 'read,convert,load').split(',');
  try {
    const t0 = performance.now();
    const info = await generate(file, dir);
    const genS = (performance.now() - t0) / 1000;
    const size = fs.statSync(file).size;
    console.log(
      `generated ${file}: ${(size / 1e9).toFixed(3)} GB (${size} bytes, ${(size / 2 ** 30).toFixed(3)} GiB), ${info.tensors} tensors (${info.half} float16), ${genS.toFixed(1)} s, generator peak RSS ${mb(vmHWM())}`,
    );
    const results = [];
    for (const p of phases) {
      const r = spawnSync(
        process.execPath,
        ['--max-old-space-size=8192', fileURLToPath(import.meta.url), '--phase', p, file],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const line = r.stdout.trim().split('\n').at(-1);
      if (r.status !== 0 || !line?.startsWith('{'))
        throw new Error(`phase ${p} failed (status ${r.status}): ${r.stdout}`);
      const res = JSON.parse(line);
      results.push(res);
      console.log(
        `${p.padEnd(8)} ${res.seconds.toFixed(1).padStart(6)} s  ${(size / 1e6 / res.seconds).toFixed(0).padStart(5)} MB/s of file` +
          `  peak RSS ${mb(res.vmHWM)} (sampled ${mb(res.sampledPeak)}, ${(res.vmHWM / size).toFixed(2)}× the file; process after imports ${mb(res.baseline)})${res.note ? `  ${res.note}` : ''}`,
      );
    }
    console.log(
      JSON.stringify({
        date: new Date().toISOString(),
        node: process.version,
        fileBytes: size,
        generateSeconds: genS,
        ...info,
        results,
      }),
    );
  } finally {
    if (!argv.includes('--keep')) fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

/** Streams the checkpoint to `file`: one storage in memory at a time. */
async function generate(file, dir) {
  // The zip/pickle writer the tests use (and float16 rounding), bundled on the fly: they are TypeScript.
  const esbuild = await import('esbuild');
  const built = await esbuild.build({
    stdin: {
      contents: "export * from './test/io/torchWriter.ts'; export { f32ToF16 } from './src/io/float16.ts';",
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    logLevel: 'error',
  });
  const modFile = path.join(dir, 'torchWriter.mjs');
  fs.writeFileSync(modFile, built.outputFiles[0].text);
  const W = await import(pathToFileURL(modFile).href);

  const m = JSON.parse(
    fs.readFileSync(path.join(root, 'test', 'fixtures', 'manifests', '256x256_diffusion_uncond.json'), 'utf8'),
  );
  const listed = new Set(m.float16_under_use_fp16);
  const isHalf = (k) => listed.has(k) && /^input_blocks\.([0-9]|1[01])\./.test(k);
  const tensors = [];
  const storages = new Map();
  m.state_dict.forEach(([name, shape], i) => {
    const dtype = isHalf(name) ? 'float16' : 'float32';
    const numel = shape.reduce((a, b) => a * b, 1);
    // stateDictPickle only needs each storage's byte length here.
    storages.set(String(i), { dtype, data: { length: numel * (dtype === 'float16' ? 2 : 4) } });
    tensors.push([name, { storage: String(i), shape }]);
  });
  const pickle = W.stateDictPickle({ tensors, storages });

  // Cheap "random" data: a table of small normal-ish values, tiled at a different offset per tensor.
  const TABLE = 1 << 20;
  const f32 = new Float32Array(TABLE);
  let s = 12345;
  for (let i = 0; i < TABLE; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const u = s / 2 ** 32;
    s = (s * 1103515245 + 12345) >>> 0;
    f32[i] = 0.05 * (u + s / 2 ** 32 - 1);
  }
  const f16 = W.f32ToF16(f32);
  const fd = fs.openSync(file, 'w');
  const write = (b) => {
    for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off, b.length - off);
  };
  const zip = new W.ZipWriter(write, {}, zlib.crc32 ?? undefined);
  zip.add({ name: 'archive/data.pkl', data: pickle });
  let half = 0;
  tensors.forEach(([, t], i) => {
    const { dtype, data } = storages.get(t.storage);
    const src = dtype === 'float16' ? new Uint8Array(f16.buffer) : new Uint8Array(f32.buffer);
    const out = new Uint8Array(data.length);
    for (let o = 0, start = (i * 7919 * 4) % src.length; o < out.length; start = 0) {
      const n = Math.min(src.length - start, out.length - o);
      out.set(src.subarray(start, start + n), o);
      o += n;
    }
    if (dtype === 'float16') half++;
    zip.add({ name: `archive/data/${t.storage}`, data: out });
  });
  zip.add({ name: 'archive/version', data: new TextEncoder().encode('3\n') });
  zip.finish();
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  return { tensors: tensors.length, half };
}

/** One measurement, in a fresh process; prints one JSON line. */
async function phase(name, file) {
  const lib = await import('diffssl');
  const tf = await import('@tensorflow/tfjs-core');
  let sampledPeak = 0;
  const sample = () => (sampledPeak = Math.max(sampledPeak, process.memoryUsage().rss));
  sample();
  const baseline = process.memoryUsage().rss;
  const timer = setInterval(sample, 5);
  const t0 = performance.now();
  let note = '';
  if (name === 'read') {
    const r = await lib.TorchCheckpointReader.open(file);
    let values = 0;
    for (const k of r.keys()) {
      values += (await r.readFloat32(k)).length;
      sample();
    }
    await r.close();
    note = `${values} values`;
  } else if (name === 'convert') {
    const { main } = await import(pathToFileURL(path.join(root, 'dist', 'cli.js')).href);
    const out = `${file}.safetensors`;
    let err = '';
    const code = await main(['convert', file, out, '--quiet'], {
      stdout: () => {},
      stderr: (t) => (err += t),
      isTTY: false,
    });
    if (code !== 0) throw new Error(err);
    note = `output ${(fs.statSync(out).size / 1e9).toFixed(3)} GB`;
    fs.rmSync(out);
  } else if (name === 'load') {
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
    const unet = await lib.ADMUNet.load(file, '256x256_diffusion_uncond', { onProgress: sample });
    note = `${tf.memory().numTensors} tensors, ${(tf.memory().numBytes / 1e9).toFixed(3)} GB held by tfjs`;
    unet.dispose();
  } else throw new Error(`unknown phase ${name}`);
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  sample();
  console.log(JSON.stringify({ phase: name, seconds, vmHWM: vmHWM(), sampledPeak, baseline, note }));
}

function vmHWM() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function mb(n) {
  return `${(n / 1e6).toFixed(0)} MB`;
}
