"""Full-scale accuracy reference (not a test): the 256x256 model with every layer random and live.

guided-diffusion's UNetModel for 256x256_diffusion_uncond, float32, every parameter re-initialised by the
anchor's reinit_ (every residual branch live), one image x ~ N(0,1), t = 150; writes the state dict and
the reference's block outputs, which bench/fullscale-check.mjs compares diffssl's forward against, per
conv algorithm. Uses ../shared/anchor (refload, common, st) at run time; nothing is copied from it.

usage: /usr/bin/python3 bench/fullscale_ref.py --gd-root /tmp/fixgen/gd --anchor ../shared/anchor --out DIR
"""
import argparse
import os
import sys

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--gd-root", required=True)
ap.add_argument("--anchor", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--blocks", default="8,19,24,30,37")
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
sys.path.insert(0, os.path.abspath(a.anchor))
import common  # noqa: E402
import refload  # noqa: E402
import st  # noqa: E402
from gen_manifests import UNETS, parse_flags  # noqa: E402

torch.set_num_threads(2)
ns = refload.load_openai(a.gd_root)
su = ns.script_util
args = dict(su.model_and_diffusion_defaults())
args.update(parse_flags(UNETS["256x256_diffusion_uncond"][1], su.model_and_diffusion_defaults()))
args["use_fp16"] = False
model, _ = su.create_model_and_diffusion(**args)
model.eval()
common.reinit_(model, a.seed)
g = torch.Generator().manual_seed(a.seed)
x = common.randn(g, (1, 3, 256, 256))
t = torch.full((1,), 150, dtype=torch.int64)
rec, _ = common.capture_unet_forward(model, x, t)
os.makedirs(a.out, exist_ok=True)
st.write(os.path.join(a.out, "weights.safetensors"), {k: v for k, v in model.state_dict().items()})
keep = {"x": x.permute(0, 2, 3, 1), "out": rec["out"].permute(0, 2, 3, 1)}
for b in [int(v) for v in a.blocks.split(",")]:
    keep[f"block_{b}"] = rec[f"block_{b}"].permute(0, 2, 3, 1)
    print(f"block {b}: {tuple(keep[f'block_{b}'].shape)} max |v| {keep[f'block_{b}'].abs().max():.3f}", flush=True)
st.write(os.path.join(a.out, "activations.safetensors"), keep, {"t": "150", "seed": str(a.seed)})
print("wrote", a.out)
