import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  target: 'node20',
  platform: 'neutral',
  sourcemap: true,
  clean: true,
  // tfjs and its backends are the user's (peer) or resolved at run time: never bundle them.
  external: [/^@tensorflow\//, /^node:/],
});
