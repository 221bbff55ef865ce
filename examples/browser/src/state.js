// Everything the page computed, on window.__diffssl, for people in the console and for the browser test.
export const state = {
  ready: false, // every step done (or failed: see errors)
  phase: 'starting',
  backend: null,
  backendReason: null,
  crossOriginIsolated: globalThis.crossOriginIsolated === true,
  wasmThreads: null,
  params: null,
  features: null, // { t, b, pool, shape: { train, test }, train: Float32Array, test: Float32Array, ms }
  training: false,
  linearAccuracy: null,
  attentionAccuracy: null,
  trainHistory: [], // { head, step, total, loss }
  worker: null, // the worker's backend and timings
  cka: null, // { blocks, matrix }
  samples: null, // { n, steps, ms }
  predictions: [], // { name, label, className, confidence }
  lastInputs: null, // the last classified images as the backbone took them, 28×28 in [-1, 1]
  clicks: 0,
  clicksDuringTraining: 0,
  timings: {}, // ms per stage
  errors: [],
};
globalThis.__diffssl = state;

/** Records an error where the page shows it and the test reads it. */
export function reportError(where, e) {
  const message = `${where}: ${e?.message ?? e}`;
  state.errors.push(message);
  const box = document.getElementById('errors');
  box.textContent = state.errors.join('\n');
  console.error(message, e);
}
