/**
 * Gradient registration. tfjs-core registers no gradient functions by itself: `@tensorflow/tfjs`,
 * `@tensorflow/tfjs-node` and bundled apps import `@tensorflow/tfjs-core/dist/register_all_gradients`
 * for that. A project with only tfjs-core has none, and plain Node cannot import that file as it
 * is: tfjs-core ships it as ES modules with extensionless relative imports (some of which, like
 * `../gradients`, name both a file and a directory) in a package that is not `"type": "module"`.
 * So this is done at run time, on the training API's first use, not as an import side effect
 * (which would break `import 'diffssl'` in Node for everyone).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { DiffSSLError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { shareWasmClones } from './wasm/sharedClones.js';
import { isNode } from '../util/isNode.js';

const SPECIFIER = '@tensorflow/tfjs-core/dist/register_all_gradients';
/** Kernels whose gradients every head's training needs; all present means some copy of tfjs registered them. */
const PROBES = ['Sum', 'BatchMatMul', 'Add', 'Exp', 'Reshape'];

let pending: Promise<string> | undefined;
let hooked = false;

const registered = () => PROBES.every((k) => tf.getGradient(k) != null);

/**
 * A Node module-resolution hook for tfjs-core's ES module files, doing what a bundler would: when
 * a relative import of one of them, or the bare gradients specifier itself, fails (not found, or
 * a directory), retry it with `.js`, then `/index.js`; and load those files as ES modules, which
 * Node would otherwise take for CommonJS. Other modules resolve as before.
 */
const HOOK = `const SPEC = ${JSON.stringify(SPECIFIER)};
const ours = (spec, ctx) => spec === SPEC || spec === SPEC + '.js' || (spec.startsWith('.') && !!ctx.parentURL && ctx.parentURL.includes('/@tensorflow/tfjs-core/dist/'));
export async function resolve(spec, ctx, next) {
  if (!ours(spec, ctx)) return next(spec, ctx);
  let r;
  try { r = await next(spec, ctx); } catch (e) {
    if (spec.endsWith('.js')) throw e;
    try { r = await next(spec + '.js', ctx); } catch { r = await next(spec + '/index.js', ctx); }
  }
  return r.url.endsWith('.js') && r.url.includes('/@tensorflow/tfjs-core/dist/') ? { ...r, format: 'module' } : r;
}`;

/** Installs {@link HOOK} once, before any import of tfjs-core's files: a failed import is cached by Node and never retried. */
async function installHook(): Promise<boolean> {
  if (hooked) return true;
  if (!isNode) return false;
  const mod = await importUnbundled<typeof import('node:module')>('node:module');
  if (typeof mod.register !== 'function') return false;
  mod.register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
  return (hooked = true);
}

async function load(): Promise<string> {
  if (registered()) return 'already registered';
  const errors: string[] = [];
  try {
    await installHook();
  } catch (e) {
    errors.push(`resolution hook: ${(e as Error).message}`);
  }
  try {
    // A literal specifier, so that bundlers resolve and include it; Node goes through the hook.
    await import('@tensorflow/tfjs-core/dist/register_all_gradients');
    if (registered()) return `imported ${SPECIFIER}`;
  } catch (e) {
    errors.push((e as Error).message);
  }
  try {
    // A build that turned the import above into require() (CommonJS output) gets here.
    await importUnbundled(`${SPECIFIER}.js`);
    if (registered()) return `imported ${SPECIFIER}.js`;
  } catch (e) {
    errors.push((e as Error).message);
  }
  throw new DiffSSLError(
    `tfjs has no gradient functions registered and diffssl could not load them (${errors.join('; ')}). ` +
      `Import '@tensorflow/tfjs' or '@tensorflow/tfjs-node' (both register them), or add ` +
      `import '${SPECIFIER}'; to an app that a bundler builds.`,
  );
}

/**
 * Makes sure tfjs's gradient functions are registered, loading tfjs-core's own
 * `register_all_gradients` when nothing has yet. Idempotent and cheap after the first call.
 * {@link train} and {@link trainStep} call it; call it yourself before using `tf.grad`,
 * `tf.variableGrads` or `optimizer.minimize` directly. Under Node it installs, once, a
 * module-resolution hook that touches only tfjs-core's own files (see the module notes). On the
 * wasm backend it also makes `Identity` and same-dtype `Cast` share their input's data instead of
 * copying it, as the cpu backend does (every tensor the gradient tape saves is such a clone).
 * @returns how the gradients came to be there.
 * @throws DiffSSLError when they cannot be loaded in this environment (the message says what to import).
 * @category Training
 */
export function ensureGradients(): Promise<string> {
  // The tape's saved tensors are clones: make those free on wasm (see ./wasm/sharedClones).
  shareWasmClones();
  if (registered()) return Promise.resolve('already registered');
  pending ??= load().finally(() => {
    pending = undefined;
  });
  return pending;
}
