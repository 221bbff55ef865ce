#!/usr/bin/python3
"""Writes test/fixtures/resize/pil-resize.safetensors: PIL's resizes on float images.

The reference (guided-diffusion `image_datasets.py`, `center_crop_arr`) halves with
`resize(tuple(x // 2 for x in size), resample=Image.BOX)` while the short side is >= 2*size, then
`resize(tuple(round(x * scale) ...), resample=Image.BICUBIC)` so the short side is `size`, then
crops the centre. Here every channel is a PIL mode-'F' image (float32, no 8-bit rounding), so the
expected values are PIL's own resampling arithmetic (double weights and sums, float32 between the
horizontal and the vertical pass).

Run with Debian's Python, which has Pillow: /usr/bin/python3 scripts/make-resize-fixture.py

Keys (all F32, HWC): `<case>.input`, `<case>.resized` (after the halvings and the bicubic resize),
`<case>.output` (the centre crop; for `resize` cases, the single PIL resize to `target`).
`__metadata__.cases` is JSON: per case its kind, size or target and filter, and the halving chain.
"""
import json
import os
import struct

import numpy as np
import PIL
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'resize', 'pil-resize.safetensors')


def channels(arr):
    """HWC float32 -> list of mode-'F' images."""
    return [Image.fromarray(np.ascontiguousarray(arr[:, :, c]), mode='F') for c in range(arr.shape[2])]


def stack(imgs):
    return np.stack([np.asarray(im, dtype=np.float32) for im in imgs], axis=2)


def center_crop(arr, image_size):
    """guided-diffusion's center_crop_arr, per channel, on mode-'F' images."""
    ims = channels(arr)
    chain = [list(ims[0].size)]
    while min(*ims[0].size) >= 2 * image_size:
        ims = [im.resize(tuple(x // 2 for x in im.size), resample=Image.BOX) for im in ims]
        chain.append(list(ims[0].size))
    scale = image_size / min(*ims[0].size)
    ims = [im.resize(tuple(round(x * scale) for x in im.size), resample=Image.BICUBIC) for im in ims]
    chain.append(list(ims[0].size))
    resized = stack(ims)
    crop_y = (resized.shape[0] - image_size) // 2
    crop_x = (resized.shape[1] - image_size) // 2
    out = resized[crop_y : crop_y + image_size, crop_x : crop_x + image_size]
    # PIL sizes are (width, height); the chain is stored as [height, width].
    return resized, np.ascontiguousarray(out), [[h, w] for w, h in chain]


def resize(arr, target, resample):
    h, w = target
    return stack([im.resize((w, h), resample=resample) for im in channels(arr)])


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    blobs = []
    offset = 0
    for key in sorted(tensors):
        data = np.ascontiguousarray(tensors[key], dtype='<f4').tobytes()
        header[key] = {'dtype': 'F32', 'shape': list(tensors[key].shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    rng = np.random.default_rng(20240611)
    img = lambda h, w, c: rng.uniform(-1, 1, size=(h, w, c)).astype(np.float32)
    # name: (input HWC, image_size) — the evaluation transform.
    crops = {
        # 23 x 37 -> short side 16: no halving, bicubic downscale (antialiased support) to 16 x 26.
        'down': (img(23, 37, 3), 16),
        # 9 x 12 -> 20: bicubic upscale to 20 x 27.
        'up': (img(9, 12, 1), 20),
        # 50 x 64 -> 11: BOX halving twice (50 x 64 -> 25 x 32 -> 12 x 16, the second on an odd side),
        # then bicubic 12 x 16 -> 11 x 15.
        'halve2': (img(50, 64, 1), 11),
        # 35 x 29 -> 7: BOX halving on odd sides twice (35 x 29 -> 17 x 14 -> 8 x 7), no bicubic (same size).
        'odd': (img(35, 29, 1), 7),
        # A tall image: 40 x 18 -> 8: one halving 40 x 18 -> 20 x 9, bicubic 20 x 9 -> 18 x 8.
        'tall': (img(40, 18, 3), 8),
        # 13 x 41 -> 6: one halving to 6 x 20 where PIL's float rounding at the window edges leaves out input
        # row 6 (13 -> 6) and a column (41 -> 20) altogether; no bicubic (same size).
        'skip': (img(13, 41, 1), 6),
    }
    # name: (input, [h, w], filter) — one PIL resize, each axis its own way.
    resizes = {
        # height down (antialiased), width up.
        'mixed': (img(30, 10, 1), [12, 25], 'bicubic'),
        # BOX to floor(side / 2) on odd sides, directly.
        'box-odd': (img(7, 11, 2), [3, 5], 'box'),
        # BOX 41 -> 20 and 13 -> 6: the sizes where an input pixel falls in no output window (see 'skip').
        'box-tie': (img(41, 13, 1), [20, 6], 'box'),
        # larger: several blocks of output rows per pass (61 -> 33 antialiased, 40 -> 75 upscaled).
        'blocks': (img(61, 40, 1), [33, 75], 'bicubic'),
        # a large downscale factor (support 2 * 4.2): 21 x 5 -> 5 x 5 (width unchanged: no horizontal pass).
        'down4': (img(21, 5, 1), [5, 5], 'bicubic'),
    }
    tensors = {}
    cases = {}
    for name, (x, size) in crops.items():
        resized, out, chain = center_crop(x, size)
        tensors[f'{name}.input'] = x
        tensors[f'{name}.resized'] = resized
        tensors[f'{name}.output'] = out
        cases[name] = {'kind': 'centerCrop', 'size': size, 'chain': chain}
    filters = {'bicubic': Image.BICUBIC, 'box': Image.BOX}
    for name, (x, target, filt) in resizes.items():
        tensors[f'{name}.input'] = x
        tensors[f'{name}.output'] = resize(x, target, filters[filt])
        cases[name] = {'kind': 'resize', 'target': target, 'filter': filt}
    write_safetensors(
        OUT,
        tensors,
        {
            'cases': json.dumps(cases, separators=(',', ':')),
            'generator': 'scripts/make-resize-fixture.py',
            'pillow': PIL.__version__,
            'numpy': np.__version__,
        },
    )
    print(OUT, os.path.getsize(OUT), 'bytes')
    print(json.dumps(cases))


if __name__ == '__main__':
    main()
