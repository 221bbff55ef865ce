#!/usr/bin/python3
"""Writes test/fixtures/resize/torch-interpolate.safetensors: PyTorch's bilinear resizes of feature maps.

Dense features bring every block's map to one side with `F.interpolate(x, size=(s, s), mode='bilinear',
align_corners=False)`, as ddpm-segmentation and the paper's UperNet decoders do. Seeded random NCHW maps of
ADM block sides (7, 14, 28 and odd ones), up and down, are resized by torch and stored NHWC.

Run with Debian's Python, which has torch: /usr/bin/python3 scripts/make-interpolate-fixture.py

Keys (all F32, NHWC): `<case>.input`, `<case>.output`; `__metadata__.cases` is JSON: per case its input and
output side.
"""
import importlib
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
# one safetensors writer for the fixture scripts (its module name has dashes, hence import_module)
write_safetensors = importlib.import_module('make-resize-fixture').write_safetensors

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'resize', 'torch-interpolate.safetensors')
CASES = {'up7to28': (7, 28), 'up14to28': (14, 28), 'same28': (28, 28), 'up5to12': (5, 12), 'down12to5': (12, 5), 'up3to64': (3, 64)}


def main():
    g = torch.Generator().manual_seed(0)
    tensors, cases = {}, {}
    for name, (side, out) in CASES.items():
        x = torch.randn(2, 3, side, side, generator=g) * 2
        y = F.interpolate(x, size=(out, out), mode='bilinear', align_corners=False)
        tensors[f'{name}.input'] = x.permute(0, 2, 3, 1).numpy()
        tensors[f'{name}.output'] = y.permute(0, 2, 3, 1).numpy()
        cases[name] = {'side': side, 'out': out}
    write_safetensors(OUT, tensors, {'cases': json.dumps(cases), 'torch': torch.__version__})


if __name__ == '__main__':
    main()
