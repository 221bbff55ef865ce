import { describe, expect, it } from 'vitest';
import { tfjsShape, toReferenceLayout, toTfjsLayout } from '../../src/unet/layout';

describe('weight layouts: reference (PyTorch) ↔ tfjs', () => {
  it('OIHW → HWIO and [out, in] → [in, out] are the transposes tfjs needs, and invert exactly', () => {
    const oihw = Float32Array.from({ length: 2 * 3 * 3 * 3 }, (_, i) => i);
    const hwio = toTfjsLayout('a.weight', [2, 3, 3, 3], oihw);
    expect(tfjsShape('a.weight', [2, 3, 3, 3])).toEqual([3, 3, 3, 2]);
    // element (o=1, i=2, y=0, x=1) of OIHW sits at [y=0][x=1][i=2][o=1] in HWIO
    expect(hwio[((0 * 3 + 1) * 3 + 2) * 2 + 1]).toBe(oihw[((1 * 3 + 2) * 3 + 0) * 3 + 1]);
    expect(toReferenceLayout('a.weight', [2, 3, 3, 3], hwio)).toEqual(oihw);
    const lin = Float32Array.from({ length: 6 }, (_, i) => i); // [out 2, in 3]
    expect(Array.from(toTfjsLayout('l.weight', [2, 3], lin))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(Array.from(toTfjsLayout('q.weight', [2, 3, 1], lin))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(Array.from(toTfjsLayout('label_emb.weight', [2, 3], lin))).toEqual(Array.from(lin)); // embeddings are looked up, not multiplied
  });
});
