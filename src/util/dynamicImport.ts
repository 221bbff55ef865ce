/**
 * `import()` of a module that bundlers must leave alone: Node built-ins (absent in a browser
 * bundle, reached only on the path-handling branches) and optional peers that may not be
 * installed. A variable specifier plus the ignore comments keep esbuild, Vite and webpack from
 * resolving it at build time.
 */
export const importUnbundled = <T = unknown>(specifier: string): Promise<T> =>
  import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);
