import * as tf from '@tensorflow/tfjs-core';

/** Adam's hyper-parameters. */
export interface AdamSettings {
  lr: number;
  betas: [number, number];
  eps: number;
}

/**
 * Adam as PyTorch computes it (`torch.optim.Adam`, weight decay 0), with its moments held here so
 * that a checkpoint can save and restore them exactly. tfjs's own optimizer recomputes its bias
 * corrections on restore by `pow`, not by the running product it used before, so a resumed run
 * would not match a straight one bit for bit.
 */
export class AdamState {
  /** First moments by weight name. */
  readonly m: Map<string, tf.Tensor>;
  /** Second moments by weight name. */
  readonly v: Map<string, tf.Tensor>;

  /** @param step updates done so far (the moments' age). */
  constructor(
    private readonly s: AdamSettings,
    public step: number,
    m?: Map<string, tf.Tensor>,
    v?: Map<string, tf.Tensor>,
  ) {
    this.m = m ?? new Map();
    this.v = v ?? new Map();
  }

  /** One update of `vars` by `grads` (same names); weights without a gradient are left alone. */
  update(vars: Map<string, tf.Variable>, grads: Map<string, tf.Tensor | undefined>): void {
    this.step += 1;
    const [b1, b2] = this.s.betas;
    const bc1 = 1 - b1 ** this.step;
    const sqrtBc2 = Math.sqrt(1 - b2 ** this.step);
    for (const [name, p] of vars) {
      const g = grads.get(name);
      if (!g) continue;
      const [m, v] = tf.tidy(() => {
        const m0 = this.m.get(name) ?? tf.zerosLike(p);
        const v0 = this.v.get(name) ?? tf.zerosLike(p);
        const m1 = tf.add(tf.mul(m0, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(v0, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v1), sqrtBc2), this.s.eps);
        p.assign(tf.sub(p, tf.mul(tf.div(m1, denom), this.s.lr / bc1)));
        return [m1, v1];
      });
      this.m.get(name)?.dispose();
      this.v.get(name)?.dispose();
      this.m.set(name, tf.keep(m));
      this.v.set(name, tf.keep(v));
    }
  }

  /** Frees the moments. */
  dispose(): void {
    this.m.forEach((t) => t.dispose());
    this.v.forEach((t) => t.dispose());
    this.m.clear();
    this.v.clear();
  }
}
