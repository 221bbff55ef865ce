// diffssl quick start: the paper's thesis at small scale, on the backbone shipped with diffssl (an ADM U-Net
// pretrained as a text-free denoiser on Fashion-MNIST, labels never seen). Features f(x0, t, b) of shipped
// Fashion-MNIST images, and how well a linear probe and kNN classify with each (t, b), against raw pixels.
//
// Run from the repository root:  npm run demo   (builds, then runs this file; a few minutes on two cores)
// It imports the built package exactly as a user's script does: `import ... from 'diffssl'`.
import * as tf from '@tensorflow/tfjs-core';
import {
  extractFeatures,
  knnEvaluate,
  linearProbe,
  loadDefaultBackbone,
  loadFashionMNIST,
  useBestBackend,
} from 'diffssl';

const T_LIST = [10, 50, 200, 600]; // noise steps (of T = 1000)
const B_LIST = [3, 6, 9, 10, 12, 15, 18]; // blocks of the 19-block backbone (10 is the middle block)
const POOL = 2; // adaptive average pool every map to 2×2
const [N_TRAIN, N_TEST] = [1000, 500];

// 1. Backend: tfjs-node(-gpu) when the project has it, else the bundled wasm backend, else cpu.
const { backend, reason } = await useBestBackend();
console.log(`backend: ${backend} (${reason})`);

// 2. The embedded backbone (extractFeatures uses it when no model is given; loaded here to show its blocks).
const model = await loadDefaultBackbone();
console.log(
  `backbone: ${model.numParameters.toLocaleString('en')} parameters, ${model.totalBlocks} blocks, 28×28 grayscale`,
);
console.log('  b       ' + model.blocks.map((k) => String(k.b).padStart(4)).join(''));
console.log('  channels' + model.blocks.map((k) => String(k.channels).padStart(4)).join(''));
console.log('  side    ' + model.blocks.map((k) => String(k.size).padStart(4)).join(''));

// 3. Data: the first images of the Fashion-MNIST subsets shipped with diffssl, [N, 28, 28, 1] in [-1, 1].
const [train, test] = [await loadFashionMNIST({ split: 'train' }), await loadFashionMNIST({ split: 'test' })];
const xTrain = tf.slice(train.images, 0, N_TRAIN);
const xTest = tf.slice(test.images, 0, N_TEST);
const [yTrain, yTest] = [train.labels.slice(0, N_TRAIN), test.labels.slice(0, N_TEST)];
console.log(`data: ${N_TRAIN} training and ${N_TEST} test images, 10 classes (${train.classNames.join(', ')})`);

// 4. Features for every (t, b): one batched pass per t, stopping after the deepest block asked for.
const start = performance.now();
const opts = { t: T_LIST, b: B_LIST, seed: 0, pool: POOL, model };
const [fTrain, fTest] = [await extractFeatures(xTrain, opts), await extractFeatures(xTest, opts)];
console.log(
  `features: ${T_LIST.length} t × ${B_LIST.length} b in ${((performance.now() - start) / 1000).toFixed(0)} s`,
);

// 5. A linear probe and 20-NN per (t, b), and on the raw pixels.
const flat = (x) => tf.reshape(x, [x.shape[0], -1]);
async function score(a, b) {
  const [trX, teX] = [flat(a), flat(b)];
  const { accuracy } = await linearProbe(trX, yTrain, teX, yTest, { weightDecay: 1e-3 });
  const [knn] = knnEvaluate({ features: trX, labels: yTrain }, { features: teX, labels: yTest }, { k: [20] });
  tf.dispose([trX, teX]);
  return [accuracy, knn.top1];
}
const pct = (a) => `${(100 * a).toFixed(1)}`.padStart(6);
const [pxLinear, pxKnn] = await score(xTrain, xTest);
console.log(`\ntest accuracy, % (linear probe / 20-NN); raw pixels: ${pct(pxLinear).trim()} / ${pct(pxKnn).trim()}`);
console.log('  t \\ b  ' + B_LIST.map((b) => String(b).padStart(13)).join(''));
let best = { acc: 0 };
for (const t of T_LIST) {
  const cells = [];
  for (const b of B_LIST) {
    const [lin, knn] = await score(fTrain.get(t, b), fTest.get(t, b));
    if (lin > best.acc) best = { acc: lin, t, b };
    cells.push(`${pct(lin)} /${pct(knn)}`);
  }
  console.log(`  ${String(t).padStart(5)} ` + cells.join(''));
}
console.log(
  `best linear probe: t = ${best.t}, b = ${best.b}, ${pct(best.acc).trim()} % (pixels ${pct(pxLinear).trim()} %)`,
);
console.log('The full table, on all 10,000 + 2,000 shipped images, is in models/fashion-mnist-adm/README.md.');

// 6. Free everything: the feature sets, the images, the model's weights.
tf.dispose([xTrain, xTest]);
[fTrain, fTest, train, test, model].forEach((o) => o.dispose());
console.log(`\ntensors still allocated: ${tf.memory().numTensors}`);
