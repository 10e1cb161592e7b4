#!/usr/bin/env python3
"""The PyTorch twin of `crossadapt bench train --model deepfm`: same model, shapes, optimisers,
thread count, warm-up and timed steps, so the two samples/second figures can be divided.

Model (as src/model/arch/deepfm.rs): F fields x V ids embedding tables of size E; logit =
first-order linear over the flattened embeddings + FM second-order term + MLP tower (ReLU)
with a linear output. Embeddings: sparse Adam (lr 0.1, only the rows in the batch); dense:
Adam (lr 1e-3). Batches: uniform random ids, labels from a rule on the first two fields.

    python3 benches/pytorch_deepfm.py --emb 16 --hidden 400x400x400 --batch 4096 --fields 26
"""
import argparse
import time

import torch
from torch import nn


class DeepFM(nn.Module):
    def __init__(self, fields, ids, emb, hidden):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(ids, emb, sparse=True) for _ in range(fields))
        for t in self.tables:
            nn.init.normal_(t.weight, std=0.01)
        flat = fields * emb
        self.first = nn.Linear(flat, 1)
        layers, d = [], flat
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(d, 1)

    def forward(self, ids):
        e = torch.stack([t(ids[:, i]) for i, t in enumerate(self.tables)], dim=1)  # B,F,E
        x = e.flatten(1)
        s = e.sum(1)
        fm = 0.5 * (s * s - (e * e).sum(1)).sum(1, keepdim=True)
        return (self.first(x) + fm + self.out(self.mlp(x))).squeeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emb", type=int, default=16)
    ap.add_argument("--hidden", default="400x400x400")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--fields", type=int, default=26)
    ap.add_argument("--ids", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    hidden = [int(h) for h in a.hidden.split("x") if h]
    model = DeepFM(a.fields, a.ids, a.emb, hidden)
    sparse = [p for t in model.tables for p in t.parameters()]
    dense = [p for n, p in model.named_parameters() if not n.startswith("tables")]
    opt_emb = torch.optim.SparseAdam(sparse, lr=0.1)
    opt_dense = torch.optim.Adam(dense, lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    batches = []
    for _ in range(4):
        ids = torch.randint(0, a.ids, (a.batch, a.fields))
        p = torch.where((ids[:, 0] + ids[:, 1]) % 3 == 0, 0.6, 0.2)
        batches.append((ids, torch.bernoulli(p)))

    def step(i):
        ids, y = batches[i % len(batches)]
        opt_emb.zero_grad()
        opt_dense.zero_grad()
        loss = loss_fn(model(ids), y)
        loss.backward()
        opt_emb.step()
        opt_dense.step()

    for i in range(a.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(a.steps):
        step(i)
    secs = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    print(f"pytorch {torch.__version__} deepfm emb={a.emb} hidden={a.hidden} batch={a.batch} "
          f"fields={a.fields} threads={a.threads} params={params}")
    print(f"samples_per_sec={a.batch * a.steps / secs:.0f} step_ms={secs * 1e3 / a.steps:.1f}")


if __name__ == "__main__":
    main()
