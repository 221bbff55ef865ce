/**
 * The browser build's `importUnbundled`: Node built-ins, sharp and tfjs-node are refused with an
 * error that says what to pass instead, so no Node-only module is ever requested from a page.
 * @module
 */
import { InputError } from '../errors.js';

const NODE_ONLY = /^(node:|sharp$|@tensorflow\/tfjs-node)/;

/** `import()` left to run time, as in Node, except for Node-only modules. */
export const importUnbundled = <T = unknown>(specifier: string): Promise<T> =>
  NODE_ONLY.test(specifier)
    ? Promise.reject(
        new InputError(
          `${specifier} is Node-only and diffssl's browser build does not load it: ` +
            'pass a URL, a Blob or bytes where a path would be read, and draw images on a canvas instead of writing files',
        ),
      )
    : import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);
