import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    target: 'node20',
    platform: 'neutral',
    sourcemap: true,
    // Both builds write to dist/ at the same time: this one cleans everything but the CLI's output.
    clean: ['!cli.js', '!cli.js.map'],
    // tfjs and its backends are the user's (peer) or resolved at run time: never bundle them.
    external: [/^@tensorflow\//, /^node:/],
    // The CommonJS build has no import.meta; the code that reads it (locating the shipped data) uses __filename there.
    esbuildOptions: (o) => {
      o.logOverride = { ...o.logOverride, 'empty-import-meta': 'silent' };
    },
  },
  {
    // The `diffssl` bin: Node only, ESM, made executable by the shebang.
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    dts: false,
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    clean: false,
    banner: { js: '#!/usr/bin/env node' },
    external: [/^@tensorflow\//, /^node:/],
  },
]);
