import path from 'node:path';
import { defineConfig, type Options } from 'tsup';

type Plugin = NonNullable<Options['esbuildPlugins']>[number];

/** The browser build takes the `.browser.ts` twin of these modules: no Node-only module is reachable from it. */
const browserTwins: Plugin = {
  name: 'browser-twins',
  setup(build) {
    build.onResolve({ filter: /\/(dynamicImport|packageFiles)\.js$/ }, (args) => ({
      path: path.join(args.resolveDir, args.path.replace(/\.js$/, '.browser.ts')),
    }));
  },
};

/** A Node-only ESM file of its own beside the library (tfjs and Node's modules left external). */
const nodeScript: Options = {
  format: ['esm'],
  dts: false,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: false,
  external: [/^@tensorflow\//, /^node:/],
};

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    target: 'node20',
    platform: 'neutral',
    sourcemap: true,
    // The builds write to dist/ at the same time: this one cleans everything but the others' output.
    clean: ['!cli.js', '!cli.js.map', '!browser.js', '!browser.js.map', '!trainWorker.js', '!trainWorker.js.map'],
    // tfjs and its backends are the user's (peer) or resolved at run time: never bundle them.
    external: [/^@tensorflow\//, /^node:/],
    // The CommonJS build has no import.meta; the code that reads it (locating the shipped data) uses __filename there.
    esbuildOptions: (o) => {
      o.logOverride = { ...o.logOverride, 'empty-import-meta': 'silent' };
    },
  },
  {
    // The `browser` export: ESM for bundlers and import maps; the types are index.d.ts's.
    entry: { browser: 'src/index.ts' },
    format: ['esm'],
    dts: false,
    target: 'es2022',
    platform: 'browser',
    sourcemap: true,
    clean: false,
    external: [/^@tensorflow\//],
    esbuildPlugins: [browserTwins],
  },
  {
    // The `diffssl` bin: Node only, ESM, made executable by the shebang.
    ...nodeScript,
    entry: { cli: 'src/cli/main.ts' },
    banner: { js: '#!/usr/bin/env node' },
  },
  {
    // The worker thread of trainDiffusion({ workers }), started by the library from dist/trainWorker.js:
    // one file (no chunk shared with the bin that a concurrent clean could remove).
    ...nodeScript,
    entry: { trainWorker: 'src/diffusion/trainWorker.ts' },
    splitting: false,
  },
]);
