/**
 * Gradient registration. tfjs-core registers no gradient functions by itself: `@tensorflow/tfjs`,
 * `@tensorflow/tfjs-node` and bundled apps import `@tensorflow/tfjs-core/dist/register_all_gradients`
 * for that. A project with only tfjs-core has none, and plain Node cannot even import that file:
 * tfjs-core ships it as ES modules with extensionless relative imports in a package that is not
 * `"type": "module"`. So this is done at run time, not as an import side effect (which would break
 * `import 'diffssl'` in Node for everyone).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { DiffSSLError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';

const SPECIFIER = '@tensorflow/tfjs-core/dist/register_all_gradients';
/** Kernels whose gradients every head's training needs; all present means some copy of tfjs registered them. */
const PROBES = ['Sum', 'BatchMatMul', 'Add', 'Exp', 'Reshape'];

let pending: Promise<string> | undefined;

const registered = () => PROBES.every((k) => tf.getGradient(k) != null);

/**
 * A Node module-resolution hook scoped to files inside tfjs-core's `dist/`: when one of their
 * relative imports fails, retry it with `.js`, then `/index.js` (what a bundler would do). It only
 * runs after Node's own resolution failed, and only for tfjs-core's files.
 */
const HOOK = `export async function resolve(spec, ctx, next) {
  try { return await next(spec, ctx); } catch (e) {
    if (!(ctx.parentURL && ctx.parentURL.includes('/@tensorflow/tfjs-core/dist/') && spec.startsWith('.') && !spec.endsWith('.js'))) throw e;
    try { return await next(spec + '.js', ctx); } catch { return next(spec + '/index.js', ctx); }
  }
}`;

async function load(): Promise<string> {
  if (registered()) return 'already registered';
  const errors: string[] = [];
  try {
    await importUnbundled(SPECIFIER);
    if (registered()) return `imported ${SPECIFIER}`;
  } catch (e) {
    errors.push((e as Error).message);
  }
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (isNode) {
    try {
      const mod = await importUnbundled<typeof import('node:module')>('node:module');
      if (typeof mod.register === 'function') {
        mod.register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
        await importUnbundled(`${SPECIFIER}.js`);
        if (registered()) return `imported ${SPECIFIER}.js through a resolution hook`;
      }
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw new DiffSSLError(
    `tfjs has no gradient functions registered and diffssl could not load them (${errors.join('; ')}). ` +
      `Import '@tensorflow/tfjs' or '@tensorflow/tfjs-node' (both register them), or add ` +
      `import '${SPECIFIER}'; to an app that a bundler builds.`,
  );
}

/**
 * Makes sure tfjs's gradient functions are registered, loading tfjs-core's own
 * `register_all_gradients` when nothing has yet. Idempotent and cheap after the first call; the
 * trainer calls it, call it yourself before using `tf.grad` or an optimizer directly.
 * @returns how the gradients came to be there.
 * @throws DiffSSLError when they cannot be loaded in this environment (the message says what to import).
 */
export function ensureGradients(): Promise<string> {
  if (registered()) return Promise.resolve('already registered');
  pending ??= load().finally(() => {
    pending = undefined;
  });
  return pending;
}
