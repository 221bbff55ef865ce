// The page of importmap.html, served as written (no bundler): the shipped backbone at its default URL, features of
// the first ?n= shipped training images at (t, b, pool) from the query, on window.__diffssl for the test.
import * as tf from '@tensorflow/tfjs-core';
import { extractFeatures, loadDefaultBackbone, loadFashionMNIST, useBestBackend } from 'diffssl';

const q = new URLSearchParams(location.search);
const num = (k, d) => Number(q.get(k) ?? d);
const o = { n: num('n', 8), t: num('t', 10), b: num('b', 8), pool: num('pool', 4) };
const state = (globalThis.__diffssl = { ready: false, errors: [], backend: null, features: null });
const say = (text) => (document.getElementById('status').textContent = text);

async function main() {
  // wasmPaths: the binaries sit beside the page; the weights and data come from the package's own URLs
  state.backend = (await useBestBackend({ force: 'wasm', wasmPaths: './' })).backend;
  const unet = await loadDefaultBackbone();
  const train = await loadFashionMNIST({ split: 'train' });
  const x = tf.slice(train.images, 0, o.n);
  train.dispose();
  const set = await extractFeatures(x, { t: o.t, b: o.b, pool: o.pool, seed: 0, model: unet });
  const map = set.get(o.t, o.b);
  state.features = { ...o, shape: map.shape, values: Array.from(await map.data()) };
  set.dispose();
  x.dispose();
  unet.dispose();
  say(`${state.backend}: features of ${o.n} images at t = ${o.t}, b = ${o.b}: [${state.features.shape}]`);
}

main()
  .catch((e) => {
    state.errors.push(String(e?.message ?? e));
    say(`error: ${e?.message ?? e}`);
  })
  .finally(() => (state.ready = true));
