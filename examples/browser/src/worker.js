// The heads train here, off the main thread: the page sends feature maps (transferred, not copied), this posts
// progress, accuracies and later predictions with the trained linear head.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients'; // a bundled app registers tfjs's gradients itself
import '@tensorflow/tfjs-backend-wasm';
import * as lib from 'diffssl';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { predict, trainHead } from './heads.js';

let linear = null; // the trained linear head, kept to classify the page's images
const started = startBackend();

async function startBackend() {
  setThreadsCount(Math.max(1, navigator.hardwareConcurrency || 1));
  try {
    const c = await lib.useBestBackend({ force: 'wasm', wasmPaths: './' });
    return { backend: c.backend, reason: c.reason, threads: getThreadsCount() };
  } catch (e) {
    const c = await lib.useBestBackend({ force: 'cpu' });
    return { backend: c.backend, reason: `${c.reason} (wasm failed: ${e.message})`, threads: 1 };
  }
}

async function trainBoth({ train, test, epochs, batchSize, seed }) {
  const onProgress = (p) => postMessage({ type: 'progress', ...p });
  for (const kind of ['linear', 'attention']) {
    const r = await trainHead({ tf, lib }, kind, train, test, { epochs, batchSize, seed, onProgress });
    if (kind === 'linear') (linear?.dispose(), (linear = r.head));
    else r.head.dispose();
    postMessage({ type: 'result', head: kind, accuracy: r.accuracy, steps: r.steps, msPerStep: r.msPerStep });
  }
}

/** DDIM samples from the backbone, loaded here from the same URL as the page's (the browser's cache serves it). */
async function sample({ n, steps }) {
  const unet = await lib.loadDefaultBackbone({ weights: new URL('./weights.safetensors', location.href) });
  try {
    const x = lib.sampleDDIM(unet, { batch: n, steps, seed: 0 });
    const values = await x.data();
    x.dispose();
    return values;
  } finally {
    unet.dispose();
  }
}

onmessage = async ({ data }) => {
  try {
    const backend = await started;
    if (data.type === 'hello') postMessage({ type: 'ready', ...backend });
    else if (data.type === 'train') (await trainBoth(data), postMessage({ type: 'done' }));
    else if (data.type === 'sample') postMessage({ type: 'samples', values: await sample(data) });
    else if (data.type === 'classify') {
      if (!linear) throw new Error('classify before the linear head was trained');
      const probs = await predict(tf, linear, data.maps);
      postMessage({ type: 'predictions', id: data.id, probs });
    }
  } catch (e) {
    postMessage({ type: 'error', message: `${data.type}: ${e?.message ?? e}` });
  }
};
