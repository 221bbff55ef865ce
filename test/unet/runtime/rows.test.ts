import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { bandRows, downsampledRows, mapBands, rowsOf, upsampledRows } from '../../../src/unet/runtime/rows';
import { groupNorm, groupNormAffine, applyAffine } from '../../../src/unet/groupNorm';
import { conv3x3, conv3x3Gemm, withFastInputGrad, type RowPad } from '../../../src/ops/conv3x3';
import { winogradConv3x3, winogradFilters } from '../../../src/unet/runtime/winograd';
import { ADMUNet } from '../../../src/unet/admUnet';
import { downsampleAvg, upsampleNearest } from '../../../src/unet/resample';
import { BACKENDS, compareArrays, fixtureJson, setBackend } from '../../helpers';

const TINY = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;
const equal = (a: tf.Tensor, b: tf.Tensor) => expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));

describe('bandRows', () => {
  it('gives whole tiles (multiples of 4, at least 4) within the budget, or every row when they fit', () => {
    expect(bandRows(256, 1000, 64_000)).toBe(64);
    expect(bandRows(256, 1000, 66_000)).toBe(64);
    expect(bandRows(256, 1000, 1)).toBe(4);
    expect(bandRows(30, 1000, 1e9)).toBe(30);
  });
});

for (const backend of BACKENDS) {
  describe(`maps in bands of rows on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('bands of a map, of its activation, of its ×2 upsampling and of its 2×2 pooling are the rows of the whole', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const x = tf.randomNormal([1, 9, 5, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
        const f = (t: tf.Tensor4D) => tf.relu(t);
        const cases: [ReturnType<typeof rowsOf>, tf.Tensor4D][] = [
          [rowsOf(x), x],
          [rowsOf(x, f), f(x)],
          [upsampledRows(rowsOf(x, f)), upsampleNearest(f(x))],
          [downsampledRows(rowsOf(x)), downsampleAvg(x)],
        ];
        for (const [rows, whole] of cases) {
          expect(rows.shape).toEqual(whole.shape);
          const h = whole.shape[1];
          for (const [top, count] of [
            [0, h],
            [0, 1],
            [1, 2],
            [h - 3, 3],
            [h - 1, 1],
          ])
            equal(rows.get(top, count), tf.slice(whole, [0, top, 0, 0], [1, count, -1, -1]));
        }
      });
      expect(tf.memory().numTensors).toBe(before);
    });

    it('mapBands joins the bands in order, holding no copy of them afterwards', () => {
      const x = tf.randomNormal([1, 10, 3, 2], 0, 1, 'float32', 2) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const joined = tf.tidy(() =>
        mapBands(10, 4, (top, count) => tf.tidy(() => tf.mul(rowsOf(x).get(top, count), 2))),
      );
      expect(tf.memory().numTensors).toBe(before + 1);
      equal(
        joined,
        tf.tidy(() => tf.mul(x, 2)),
      );
      tf.dispose([x, joined]);
    });

    it('GroupNorm statistics gathered in bands equal those of the whole map', () => {
      tf.tidy(() => {
        const x = tf.add(tf.randomNormal([1, 11, 6, 64], 0, 2, 'float32', 3), 1) as tf.Tensor4D;
        const [gamma, beta] = [
          tf.randomNormal([64], 1, 0.2, 'float32', 4),
          tf.randomNormal([64], 0, 0.2, 'float32', 5),
        ];
        const d = compareArrays(
          applyAffine(x, groupNormAffine(x, gamma, beta, undefined, { rows: 4 })).dataSync(),
          groupNorm(x, gamma, beta).dataSync(),
          1e-5,
          1e-5,
        );
        expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      });
    });

    // A band with its neighbour rows, padded only at the map's edges, gives those rows of the whole conv.
    const bands: [number, number, RowPad][] = [
      [0, 5, [1, 0]],
      [3, 5, [0, 0]],
      [6, 4, [0, 1]],
      [0, 10, [1, 1]],
    ];
    it('every 3×3 conv path, given a band and its row padding, gives the rows of the whole conv', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const [h, w, cin, cout] = [10, 7, 16, 8];
        const x = tf.randomNormal([1, h, w, cin], 0, 1, 'float32', 6) as tf.Tensor4D;
        const k = tf.randomNormal([3, 3, cin, cout], 0, 1 / 12, 'float32', 7) as tf.Tensor4D;
        const b = tf.randomNormal([cout], 0, 0.1, 'float32', 8);
        const wT = tf.transpose(tf.reshape(k, [9 * cin, cout])) as tf.Tensor2D;
        const whole = tf.add(tf.conv2d(x, k, 1, 1), b);
        const paths: [string, (v: tf.Tensor4D, pad: RowPad) => tf.Tensor4D, number][] = [
          ['direct', (v, pad) => conv3x3(v, k, b, 1, pad), 1e-5],
          ['gemm', (v, pad) => conv3x3Gemm(v, wT, b, pad), 1e-5],
          ['winograd2', (v, pad) => winogradConv3x3(v, winogradFilters(k, 2), b, 2, pad), 2e-5],
          ['winograd4', (v, pad) => winogradConv3x3(v, winogradFilters(k, 4), b, 4, pad), 1e-4],
        ];
        for (const [name, conv, tol] of paths)
          for (const [first, count, pad] of bands) {
            const y = conv(tf.slice(x, [0, first, 0, 0], [1, count, w, cin]), pad);
            const outTop = first + 1 - pad[0];
            const want = tf.slice(whole, [0, outTop, 0, 0], [1, count + pad[0] + pad[1] - 2, w, cout]);
            expect(y.shape, name).toEqual(want.shape);
            const d = compareArrays(y.dataSync(), want.dataSync(), tol, tol);
            expect(d.ok, `${name} rows from ${first}: max abs ${d.maxAbs}`).toBe(true);
          }
      });
      expect(tf.memory().numTensors).toBe(before);
    });

    it('the fast input gradient of a band equals autodiff of the same band', () => {
      const x = tf.randomNormal([1, 6, 5, 4], 0, 1, 'float32', 9) as tf.Tensor4D;
      const k = tf.randomNormal([3, 3, 4, 3], 0, 0.3, 'float32', 10) as tf.Tensor4D;
      for (const [, , pad] of bands) {
        const loss = (f: (v: tf.Tensor4D) => tf.Tensor4D) => (v: tf.Tensor) => tf.sum(tf.square(f(v as tf.Tensor4D)));
        const auto = tf.grad(
          loss((v) =>
            tf.conv2d(v, k, 1, [
              [0, 0],
              [pad[0], pad[1]],
              [1, 1],
              [0, 0],
            ]),
          ),
        )(x);
        const fast = tf.grad(loss((v) => withFastInputGrad(v, k, (z) => conv3x3(z, k, tf.zeros([3]), 1, pad), pad)))(x);
        const d = compareArrays(fast.dataSync(), auto.dataSync(), 1e-4, 1e-4);
        expect(d.ok, `pad ${pad}: max abs ${d.maxAbs}`).toBe(true);
        tf.dispose([auto, fast]);
      }
      tf.dispose([x, k]);
    });

    it('a model run in bands (one example at a time) gives what it gives whole, forward and backward, in less memory, and leaks nothing', async () => {
      // 32 KiB bands split every 32×32 and 16×16 map of this model into bands of 4 rows.
      const whole = ADMUNet.create(TINY, 5, { conv: 'direct' });
      const banded = ADMUNet.fromStateDict(TINY, whole.stateDict(), { conv: 'direct', bandBytes: 32 * 1024 });
      const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 11) as tf.Tensor4D;
      const feedback = tf.randomNormal([2, 32, 32, 32], 0, 0.1, 'float32', 12) as tf.Tensor4D;
      const run = (m: ADMUNet) => {
        const r = m.forward(x, [100, 600], { capture: [3, 12] });
        return [r.features.get(3)!, r.features.get(12)!, r.output!].filter(Boolean);
      };
      const before = tf.memory().numTensors;
      const [a, b] = [run(whole), run(banded)];
      tf.tidy(() => {
        const full = [whole.forward(x, [100, 600]).output!, banded.forward(x, [100, 600]).output!];
        for (const [got, want] of [...b.map((t, i) => [t, a[i]]), [full[1], full[0]]]) {
          const d = compareArrays(got.dataSync(), want.dataSync(), 1e-5, 1e-5);
          expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
        }
      });
      tf.dispose([...a, ...b]);
      expect(tf.memory().numTensors).toBe(before);
      // Bands are the point: a batch carried through them one example at a time (skips parked outside
      // the heap on wasm) peaks lower than the same batch run whole.
      const peak = async (m: ADMUNet) => {
        const info = await tf.profile(() => m.forward(x, [100, 600]).output!);
        tf.dispose(info.result as tf.Tensor);
        return info.peakBytes - tf.memory().numBytes;
      };
      const [peakWhole, peakBanded] = [await peak(whole), await peak(banded)];
      // Measured 0.50 (wasm, which also parks the skips) and 0.70 (cpu); batches kept whole through the
      // bands gave 0.81 and 1.0.
      expect(peakBanded).toBeLessThan((backend === 'wasm' ? 0.6 : 0.8) * peakWhole);
      expect(tf.memory().numTensors).toBe(before);
      // DifFeed's gradient: from a decoder block back to a tensor added into an encoder block.
      const grad = (m: ADMUNet) =>
        tf.grad((f: tf.Tensor) =>
          tf.sum(
            tf.square(
              m.forward(x, [100, 600], { capture: [12], add: new Map([[2, f as tf.Tensor4D]]) }).features.get(12)!,
            ),
          ),
        )(feedback);
      const [ga, gb] = [grad(whole), grad(banded)];
      const d = compareArrays(gb.dataSync(), ga.dataSync(), 1e-4, 1e-4);
      expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      expect(ga.dataSync().some((v) => v !== 0)).toBe(true);
      tf.dispose([ga, gb, x, feedback]);
      whole.dispose();
      banded.dispose();
    });
  });
}
