// Bundles the page and its worker into dist/ beside every file they fetch, so the page names them by same-origin URLs.
//   node build.mjs [--outdir DIR]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const at = process.argv.indexOf('--outdir');
const OUT = path.resolve(at > 0 ? process.argv[at + 1] : path.join(HERE, 'dist'));

/** diffssl is linked from the repository, whose own node_modules hold a second tfjs: one copy keeps one engine. */
const oneTfjs = {
  name: 'one-tfjs',
  setup(build) {
    build.onResolve({ filter: /^@tensorflow\// }, (args) =>
      args.pluginData === 'here'
        ? undefined
        : build.resolve(args.path, { kind: args.kind, resolveDir: HERE, pluginData: 'here' }),
    );
  },
};

/** Bundles the page and the worker; esbuild's `browser` condition picks diffssl's browser build. */
export async function build({ outdir = OUT, quiet = false } = {}) {
  fs.rmSync(outdir, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: { main: path.join(HERE, 'src/main.js'), worker: path.join(HERE, 'src/worker.js') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    metafile: true,
    logLevel: quiet ? 'error' : 'warning',
    plugins: [oneTfjs],
  });
  const copies = [
    path.join(HERE, 'index.html'),
    ...wasmFiles(),
    path.join(ROOT, 'models/fashion-mnist-adm/weights.safetensors'),
    path.join(ROOT, 'models/fashion-mnist-adm/flags.json'),
    ...fs
      .readdirSync(path.join(ROOT, 'data/fashion-mnist'))
      .filter((f) => f.endsWith('.gz'))
      .map((f) => path.join(ROOT, 'data/fashion-mnist', f)),
  ];
  for (const f of copies) fs.copyFileSync(f, path.join(outdir, path.basename(f)));
  copyUnbundled(outdir);
  const sizes = Object.fromEntries(
    Object.entries(result.metafile.outputs)
      .filter(([f]) => f.endsWith('.js'))
      .map(([f, o]) => [path.basename(f), o.bytes]),
  );
  if (!quiet)
    for (const [f, n] of Object.entries(sizes)) console.log(`${f.padEnd(12)} ${(n / 1024).toFixed(0).padStart(6)} KiB`);
  return { outdir, sizes };
}

/**
 * importmap.html's files, unbundled: tfjs's own ES module builds, a stand-in for the Node built-ins that
 * tfjs-backend-wasm imports for its Node branch, and the package laid out as a server of node_modules would
 * serve it (dist/browser.js with models/ and data/ beside dist/).
 */
function copyUnbundled(outdir) {
  const vendor = path.join(outdir, 'vendor');
  const pkg = path.join(vendor, 'diffssl');
  const tfjs = path.join(HERE, 'node_modules/@tensorflow');
  fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(tfjs, 'tfjs-core/dist/tf-core.fesm.js'), path.join(vendor, 'tf-core.fesm.js'));
  fs.copyFileSync(
    path.join(tfjs, 'tfjs-backend-wasm/dist/tf-backend-wasm.fesm.js'),
    path.join(vendor, 'tf-backend-wasm.fesm.js'),
  );
  fs.writeFileSync(path.join(vendor, 'node-builtin.js'), 'export default {};\n');
  fs.copyFileSync(path.join(ROOT, 'dist/browser.js'), path.join(pkg, 'dist/browser.js'));
  fs.cpSync(path.join(ROOT, 'models/fashion-mnist-adm'), path.join(pkg, 'models/fashion-mnist-adm'), {
    recursive: true,
  });
  fs.cpSync(path.join(ROOT, 'data/fashion-mnist'), path.join(pkg, 'data/fashion-mnist'), { recursive: true });
  for (const f of ['importmap.html', 'src/importmap.js'])
    fs.copyFileSync(path.join(HERE, f), path.join(outdir, path.basename(f)));
}

function wasmFiles() {
  const dir = path.join(HERE, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.wasm'))
    .map((f) => path.join(dir, f));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await build();
