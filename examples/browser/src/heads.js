// The two heads and their training, written once for the worker and for the test's Node run: tfjs and diffssl are
// passed in, so each side uses its own copy of them.

/** The attention head of the demo: 64-wide tokens, a CLS token, two Transformer blocks of 4 heads. */
export const ATTENTION_ARC = 'Use_CLS_Token:True:64,Insert_CLS_Token,Attention:64:4:2:1,Extract_CLS_Token';
const SETTINGS = {
  linear: { lr: 3e-3 },
  attention: { lr: 1e-3 },
};

/** A head for maps of `shape` [N, h, w, C]: `{ model, dispose }`, `model` being what diffssl's `train` takes. */
export function makeHead(lib, kind, shape, seed = 0) {
  const [, side, , channels] = shape;
  if (kind === 'linear') {
    const head = new lib.LinearHead({ channels, pool: side, classes: 10, seed });
    return { model: head, dispose: () => head.dispose() };
  }
  const tokens = new lib.Tokenizer({ channels, side, pool: side, dim: 64, norm: 'layer', seed });
  const head = new lib.AttentionHead({ arc: ATTENTION_ARC, classes: 10, seed: seed + 1 });
  const model = {
    trainableVariables: [...tokens.trainableVariables, ...head.trainableVariables],
    logits: (x, o) => head.forward(tokens.forward(x, o), o),
  };
  return { model, dispose: () => (tokens.dispose(), head.dispose()) };
}

/**
 * Trains one head with Adam on `train` ({ values, shape, labels }) and scores it on `test`. Returns the head (the
 * caller disposes it), its test top-1, and the wall time per update.
 */
export async function trainHead({ tf, lib }, kind, train, test, { epochs, batchSize, seed = 0, onProgress } = {}) {
  const x = tf.tensor4d(train.values, train.shape);
  const xt = tf.tensor4d(test.values, test.shape);
  const head = makeHead(lib, kind, train.shape, seed);
  const optimizer = lib.adam(SETTINGS[kind].lr);
  try {
    const t0 = performance.now();
    const r = await lib.train(head.model, lib.tensorDataset(x, train.labels, 10), {
      epochs,
      batchSize,
      optimizer,
      seed,
      onProgress: (p) => onProgress?.({ head: kind, step: p.done, total: p.total, loss: p.loss }),
    });
    const ms = performance.now() - t0;
    const score = await lib.evaluate(head.model, lib.tensorDataset(xt, test.labels, 10), { batchSize: 128 });
    return { head, accuracy: score.top1, steps: r.globalStep, msPerStep: ms / r.globalStep };
  } catch (e) {
    head.dispose();
    throw e;
  } finally {
    optimizer.dispose();
    tf.dispose([x, xt]);
  }
}

/** Class probabilities `[N · 10]` of maps ({ values, shape }) under a trained head. */
export async function predict(tf, head, maps) {
  const probs = tf.tidy(() => tf.softmax(head.model.logits(tf.tensor4d(maps.values, maps.shape), { training: false })));
  const out = await probs.data();
  probs.dispose();
  return out;
}
