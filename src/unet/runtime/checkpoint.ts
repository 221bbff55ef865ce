/**
 * Gradient checkpointing (PyTorch's `torch.utils.checkpoint`, guided-diffusion's `use_checkpoint`)
 * for tfjs: a function of some tensors and of trainable variables, run with the gradient tape off
 * and recorded as a single node whose backward pass runs it again under a tape of its own.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/** The parts of tfjs's engine state that a nested gradient computation changes. */
interface TapeState {
  activeTape: unknown;
  gradientDepth: number;
}

/**
 * `f(inputs)`, keeping for the backward pass only `inputs` rather than every intermediate of `f`.
 *
 * Under a gradient recording (`tf.variableGrads`, `tf.grads`…), `f` runs inside the forward function
 * of a `tf.customGrad`, where tfjs records nothing, and the tape gets one node whose inputs are
 * `inputs` and the trainable `variables` (tfjs gives a customGrad's gradient only to its explicit
 * inputs, so the variables are passed as such; `f` itself reads them wherever it does). Its backward
 * pass sets the outer tape aside, runs `f` again on the saved inputs under a fresh tape
 * and back-propagates `dy` through it, which gives the gradients of the inputs and the variables:
 * those of a plain forward, one more forward's worth of compute later. Outside a recording this is
 * `f(inputs)`.
 *
 * `f` must compute the same values when run again: no randomness that is not seeded, and the
 * variables unchanged until the backward pass (as inside one `tf.variableGrads`). Variables with
 * `trainable = false` get no gradient; an input or variable `f` does not use gets zeros. Gradients
 * through the recomputation are not themselves recorded: no second-order gradients.
 * @param f computes the output from `inputs` (and the variables); intermediates are freed.
 * @param variables the variables `f` reads that may need a gradient.
 */
export function checkpointed<T extends tf.Tensor>(
  f: (inputs: tf.Tensor[]) => T,
  inputs: readonly tf.Tensor[],
  variables: readonly tf.Variable[],
): T {
  if (!tf.engine().isTapeOn()) return f([...inputs]);
  const trainable = variables.filter((v) => v.trainable);
  const n = inputs.length;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, n) as tf.Tensor[];
    // tfjs keeps the saved inputs on the tape (clones that share their data) until the outer gradient is done.
    save(xs);
    return {
      value: f(xs),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        recompute(f, saved, trainable, Array.isArray(dy) ? dy[0] : dy),
    };
  });
  return op(...inputs, ...trainable) as T;
}

/**
 * The gradients of `f` at `saved` (then of `variables`) for the output gradient `dy`, from `f` run
 * again under a tape of its own.
 *
 * tfjs's `engine.gradients` assumes it is not called from inside another one's backward pass: it
 * replaces the engine's active tape with its own and, when done, frees that tape's saved tensors
 * and drops it, so the outer call would find no tape to clean up afterwards. The outer tape and
 * gradient depth are therefore set aside for the inner call (depth 0: a fresh tape, cleaned up
 * when done) and restored after it, also when it throws.
 */
function recompute(
  f: (inputs: tf.Tensor[]) => tf.Tensor,
  saved: tf.Tensor[],
  variables: tf.Variable[],
  dy: tf.Tensor,
): tf.Tensor[] {
  const engine = tf.engine();
  const state = engine.state as unknown as TapeState;
  const outer: TapeState = { activeTape: state.activeTape, gradientDepth: state.gradientDepth };
  state.gradientDepth = 0;
  try {
    return tf.tidy(() => {
      const xs = [...saved, ...variables];
      const { value, grads } = engine.gradients(() => f(saved), xs, dy, true);
      value.dispose();
      return xs.map((x, i) => grads[i] ?? tf.zerosLike(x));
    });
  } catch (e) {
    // A recomputation that failed leaves its own tape's saved tensors behind.
    const inner = state.activeTape as { saved: tf.Tensor[] }[] | null;
    if (inner && inner !== outer.activeTape) inner.forEach((node) => tf.dispose(node.saved));
    throw e;
  } finally {
    state.activeTape = outer.activeTape;
    state.gradientDepth = outer.gradientDepth;
  }
}
