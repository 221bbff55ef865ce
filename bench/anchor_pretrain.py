"""The PyTorch side of bench/pretrain.mjs: guided-diffusion's own UNetModel trained with L_simple
(t uniform, epsilon MSE, Adam) on the default backbone's architecture, batch 32, 2 threads; median
seconds per step after warm-up. Random images in [-1, 1] (the speed does not depend on them).

  /usr/bin/python3 bench/anchor_pretrain.py --gd-root /tmp/fixgen/gd [--threads 2] [--steps 8]
(see ../shared/anchor/README.md for getting guided-diffusion and Debian's torch)."""
import argparse, json, sys, time

p = argparse.ArgumentParser()
p.add_argument("--gd-root", required=True)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=8)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--flags", default="models/fashion-mnist-adm/flags.json")
a = p.parse_args()
sys.path.insert(0, a.gd_root)
import torch
from guided_diffusion.unet import UNetModel

torch.set_num_threads(a.threads)
torch.manual_seed(0)
f = json.load(open(a.flags))
size = f["image_size"]
model = UNetModel(
    image_size=size, in_channels=f["in_channels"], model_channels=f["num_channels"],
    out_channels=f["in_channels"] * (2 if f["learn_sigma"] else 1), num_res_blocks=f["num_res_blocks"],
    attention_resolutions=tuple(size // int(r) for r in f["attention_resolutions"].split(",") if r),
    dropout=f["dropout"], channel_mult=tuple(int(c) for c in f["channel_mult"].split(",")),
    num_heads=f["num_heads"], num_head_channels=f["num_head_channels"],
    use_scale_shift_norm=f["use_scale_shift_norm"], resblock_updown=f["resblock_updown"],
)
opt = torch.optim.Adam(model.parameters(), lr=2e-4)
betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
ac = torch.cumprod(1 - betas, 0).float()
x0 = torch.rand(512, f["in_channels"], size, size) * 2 - 1
times = []
for step in range(2 + a.steps):
    t0 = time.perf_counter()
    idx = torch.randint(0, 512, (a.batch,))
    t = torch.randint(0, 1000, (a.batch,))
    noise = torch.randn(a.batch, f["in_channels"], size, size)
    xt = ac[t].sqrt().view(-1, 1, 1, 1) * x0[idx] + (1 - ac[t]).sqrt().view(-1, 1, 1, 1) * noise
    loss = ((model(xt, t)[:, : f["in_channels"]] - noise) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step >= 2:
        times.append(time.perf_counter() - t0)
times.sort()
ms = 1000 * times[len(times) // 2]
params = sum(q.numel() for q in model.parameters())
print(json.dumps({"torch": torch.__version__, "threads": a.threads, "batch": a.batch, "params": params,
                  "msPerStep": ms, "imagesPerSecond": a.batch * 1000 / ms}))
