"""The PyTorch side of `make bench`: exactly the training step `fx-tui bench` times, written the way
a PyTorch user would (timm Swin, torch.optim.AdamW, torch.autocast), so the two run side by side on
the same machine, threads, batch and image size and their ratio means something.

Step (cls): student forward in train mode (drop path), linear head on the pooled feature, masked
BCE-with-logits; EMA teacher forward without grad; MSE consistency of the pooled features, mixed
with weight 0.5; backward; AdamW. Step (seg): the same with fx's UperNet decoder (PPM 256, FPN 128,
Conv-BN-ReLU blocks), a Conv3x3 head upsampled to the input, soft Dice, and the consistency of the
fused FPN map and the projected stage-4 map (L2-normalised over channels).
The EMA teacher update itself runs once per epoch in fx (the paper's protocol), so neither side
times it inside the step.

Prints one line: `torch: <img/s> img/s` (the mean over the timed steps after one warm-up step).
"""
import argparse
import time

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH = {
    "swin_base": "swin_base_patch4_window7_224",
    "swin_small": "swin_small_patch4_window7_224",
    "swin_tiny": "swin_tiny_patch4_window7_224",
}
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class ConvBnRelu(nn.Sequential):
    def __init__(self, cin, cout, k):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UperNet(nn.Module):
    """fx's decoder (core/fx/src/upernet.rs): PPM bins 1/2/4/6 on stage 4, FPN, fuse."""

    def __init__(self, dims, ppm=256, fpn=128):
        super().__init__()
        top = dims[-1]
        self.bins = [1, 2, 4, 6]
        self.ppm = nn.ModuleList(ConvBnRelu(top, ppm, 1) for _ in self.bins)
        self.bottleneck = ConvBnRelu(top + len(self.bins) * ppm, top, 3)
        self.lateral = nn.ModuleList(ConvBnRelu(c, fpn, 1) for c in dims)
        self.fpn = nn.ModuleList(ConvBnRelu(fpn, fpn, 3) for _ in dims[:-1])
        self.fuse = ConvBnRelu(len(dims) * fpn, fpn, 3)

    def forward(self, stages):
        top = stages[-1]
        size = top.shape[2:]
        pooled = [top] + [
            F.interpolate(m(F.adaptive_avg_pool2d(top, b)), size=size, mode="bilinear", align_corners=False)
            for b, m in zip(self.bins, self.ppm)
        ]
        stage4 = self.bottleneck(torch.cat(pooled, 1))
        n = len(stages)
        lat = [self.lateral[i](stage4 if i == n - 1 else stages[i]) for i in range(n)]
        for i in range(n - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[2:], mode="bilinear", align_corners=False)
        s0 = lat[0].shape[2:]
        outs = [F.interpolate(self.fpn[i](lat[i]), size=s0, mode="bilinear", align_corners=False) for i in range(n - 1)]
        outs.append(F.interpolate(lat[-1], size=s0, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(outs, 1)), stage4


class Model(nn.Module):
    def __init__(self, arch, task, classes, size):
        super().__init__()
        self.task = task
        kw = dict(pretrained=False, drop_path_rate=0.2 if arch == "swin_base" else 0.1, img_size=size)
        if task == "cls":
            self.backbone = timm.create_model(ARCH[arch], num_classes=0, **kw)
            self.head = nn.Linear(self.backbone.num_features, classes)
        else:
            self.backbone = timm.create_model(ARCH[arch], features_only=True, **kw)
            dims = self.backbone.feature_info.channels()
            self.decoder = UperNet(dims)
            self.head = nn.Conv2d(128, classes, 3, padding=1)

    def forward(self, x):
        if self.task == "cls":
            pooled = self.backbone(x)
            return self.head(pooled), pooled
        stages = [s.permute(0, 3, 1, 2) for s in self.backbone(x)]  # timm Swin features are NHWC
        fused, stage4 = self.decoder(stages)
        logits = F.interpolate(self.head(fused), size=x.shape[2:], mode="bilinear", align_corners=False)
        return logits, (fused, stage4)


def unit(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="swin_base")
    ap.add_argument("--task", default="cls", choices=["cls", "seg"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    classes = 14 if a.task == "cls" else 3
    student = Model(a.arch, a.task, classes, a.image_size)
    teacher = Model(a.arch, a.task, classes, a.image_size)
    student.to(dev)
    teacher.to(dev)
    teacher.load_state_dict(student.state_dict())
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.05)
    w = 0.5
    b, s = a.batch_size, a.image_size
    gray = torch.rand(b, 1, s, s, device=dev)
    mean, std = MEAN.to(dev), STD.to(dev)
    if a.task == "cls":
        labels = (torch.rand(b, classes, device=dev) > 0.7).float()
        labels[0, 0] = float("nan")  # an unknown label, masked out as fx does
    else:
        masks = (torch.rand(b, classes, s, s, device=dev) > 0.5).float()
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def step():
        x = (gray.expand(-1, 3, -1, -1) - mean) / std
        with autocast:
            out, feats = student(x)
            with torch.no_grad():
                _, tfeats = teacher(x)
        out = out.float()
        if a.task == "cls":
            known = (~labels.isnan()).float()
            task = F.binary_cross_entropy_with_logits(out, labels.nan_to_num(0.0), weight=known, reduction="sum")
            task = task / known.sum().clamp_min(1.0)
            cons = F.mse_loss(feats.float(), tfeats.float())
        else:
            p = out.sigmoid()
            inter = (p * masks).sum((0, 2, 3))
            denom = p.sum((0, 2, 3)) + masks.sum((0, 2, 3))
            task = 1 - ((2 * inter + 1) / (denom + 1)).mean()
            cons = 0.5 * sum(F.mse_loss(unit(f.float()), unit(t.float())) for f, t in zip(feats, tfeats))
        loss = task * (1 - w) + cons * w
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    student.train()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    step()  # warm-up: allocator, oneDNN primitive caches / cuDNN autotuning
    sync()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    rate = b * a.steps / (time.perf_counter() - t)
    print(f"torch: {rate:.3f} img/s ({a.arch} {a.task} {a.precision}, batch {b}, {s} px, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
