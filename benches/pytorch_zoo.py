#!/usr/bin/env python3
"""The PyTorch twins of `crossadapt bench train`: every architecture of the zoo with the same
shapes, spec syntax and defaults (src/model/spec.rs), optimisers, thread count, warm-up and
timed steps, so the two samples/second figures can be divided.

Inputs (as src/model/embedding.rs): one embedding table for all fields, each field's ids offset
into it, N(0, 0.01^2) initialised, updated row-sparse by SparseAdam (lr 0.1); every other
weight Glorot-uniform with zero biases, Adam (lr 1e-3). Loss: mean BCE with logits. Batches:
uniform random ids, labels from a rule on the first two fields (src/train/bench.rs).

Where PyTorch has a fused kernel for a block the twin uses it (scaled_dot_product_attention for
AutoInt): the comparison is against PyTorch at its best, not against a naive transcription.

    python3 benches/pytorch_zoo.py --model deepfm --batch 4096 --fields 26 --steps 200
    python3 benches/pytorch_zoo.py --model "autoint:layers=2" --flush-denormal
"""
import argparse
import platform
import time

import torch
import torch.nn.functional as fn
from torch import nn

ARCHS = ["lr", "mlp", "widedeep", "deepfm", "dcn", "dcnv2", "xdeepfm", "autoint", "fibinet",
         "finalmlp"]
ALIASES = {"wide_deep": "widedeep", "wide&deep": "widedeep", "wdl": "widedeep",
           "dcn_v2": "dcnv2", "dcn-v2": "dcnv2", "fibinet++": "fibinet", "fibi": "fibinet",
           "final_mlp": "finalmlp"}


# The spec keys each architecture understands (Arch::keys), in the order they print.
KEYS = {"lr": ["emb"], "mlp": ["emb", "hidden"], "widedeep": ["emb", "hidden"],
        "deepfm": ["emb", "hidden"], "dcn": ["emb", "hidden", "cross"],
        "dcnv2": ["emb", "hidden", "cross"], "xdeepfm": ["emb", "hidden", "cin"],
        "autoint": ["emb", "hidden", "layers", "heads", "att"],
        "fibinet": ["emb", "hidden", "ratio"], "finalmlp": ["emb", "hidden", "hidden2", "heads"]}


def sizes(text):
    if text in ("", "none"):
        return []
    return [int(p) for p in text.replace("-", "x").split("x")]


def parse_spec(text):
    """`arch[:key=value,...]` with the defaults of ModelSpec::default_for."""
    name, _, rest = text.partition(":")
    arch = ALIASES.get(name.strip().lower(), name.strip().lower())
    if arch not in ARCHS:
        raise SystemExit(f"unknown model architecture `{name}`; valid ones: {', '.join(ARCHS)}")
    s = dict(arch=arch, emb=16, hidden=[400, 400, 400], cross=3, cin=[64, 64, 64], layers=3,
             heads=2, att=32, ratio=3, hidden2=[400])
    if arch == "lr":
        s.update(emb=1, hidden=[])
    elif arch == "autoint":
        s["hidden"] = []
    elif arch == "finalmlp":
        s["heads"] = 1
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, _, value = pair.partition("=")
        if key not in KEYS[arch]:
            raise SystemExit(f"model spec `{text}`: unknown key `{key}` for {arch}")
        s[key] = sizes(value) if key in ("hidden", "hidden2", "cin") else int(value)
    return s


def linear(inp, out):
    layer = nn.Linear(inp, out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def glorot(*shape):
    fan_in, fan_out = shape[-2], shape[-1]
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return nn.Parameter(torch.empty(*shape).uniform_(-limit, limit))


class Mlp(nn.Module):
    def __init__(self, inp, hidden):
        super().__init__()
        layers = []
        for h in hidden:
            layers += [linear(inp, h), nn.ReLU()]
            inp = h
        self.net = nn.Sequential(*layers)
        self.out_dim = inp

    def forward(self, x):
        return self.net(x)


class Twin(nn.Module):
    """src/model/arch/*.rs, one branch per architecture."""

    def __init__(self, s, fields, ids):
        super().__init__()
        self.s = s
        a, d, f = s["arch"], s["emb"], fields
        flat = f * d
        self.table = nn.Embedding(f * ids, d, sparse=True)
        nn.init.normal_(self.table.weight, std=0.01)
        self.register_buffer("offsets", torch.arange(f) * ids)
        if a in ("lr", "widedeep", "deepfm", "xdeepfm", "fibinet"):
            self.first = linear(flat, 1)
        if a in ("mlp", "widedeep", "deepfm", "xdeepfm"):
            self.mlp = Mlp(flat, s["hidden"])
            self.deep_out = linear(self.mlp.out_dim, 1)
        if a in ("dcn", "dcnv2"):
            n = s["cross"]
            if a == "dcnv2":
                self.cross = nn.ModuleList(linear(flat, flat) for _ in range(n))
            else:
                self.cross_w = nn.ParameterList(glorot(flat, 1) for _ in range(n))
                self.cross_b = nn.ParameterList(nn.Parameter(torch.zeros(flat)) for _ in range(n))
            self.mlp = Mlp(flat, s["hidden"]) if s["hidden"] else None
            self.out = linear(flat + (self.mlp.out_dim if self.mlp else 0), 1)
        if a == "xdeepfm":
            prev, ws = f, []
            for h in s["cin"]:
                ws.append(glorot(prev * f, h))
                prev = h
            self.cin = nn.ParameterList(ws)
            self.cin_out = linear(sum(s["cin"]), 1)
        if a == "autoint":
            inp, att, layers = d, s["att"], []
            for _ in range(s["layers"]):
                layers.append(nn.ModuleList(linear(inp, att) for _ in range(4)))  # q k v res
                inp = att
            self.att = nn.ModuleList(layers)
            self.att_out = linear(f * att, 1)
            if s["hidden"]:
                self.mlp = Mlp(flat, s["hidden"])
                self.deep_out = linear(self.mlp.out_dim, 1)
        if a == "fibinet":
            reduced = max(f // max(s["ratio"], 1), 1)
            self.squeeze, self.excite = linear(f, reduced), linear(reduced, f)
            self.bilinear = nn.ParameterList([glorot(d, d), glorot(d, d)])
            pairs = [(i, j) for i in range(f) for j in range(i + 1, f)]
            self.register_buffer("left", torch.tensor([p[0] for p in pairs]))
            self.register_buffer("right", torch.tensor([p[1] for p in pairs]))
            self.mlp = Mlp(2 * len(pairs) * d, s["hidden"])
            self.deep_out = linear(self.mlp.out_dim, 1)
        if a == "finalmlp":
            self.stream1, self.stream2 = Mlp(flat, s["hidden"]), Mlp(flat, s["hidden2"])
            self.lin1, self.lin2 = linear(self.stream1.out_dim, 1), linear(self.stream2.out_dim, 1)
            h = s["heads"]
            self.fusion = glorot(h, self.stream1.out_dim // h, self.stream2.out_dim // h)

    def forward(self, ids):
        e = self.table(ids + self.offsets)  # (B, F, d)
        a = self.s["arch"]
        x = e.flatten(1)
        if a == "lr":
            y = self.first(x)
        elif a == "mlp":
            y = self.deep_out(self.mlp(x))
        elif a == "widedeep":
            y = self.first(x) + self.deep_out(self.mlp(x))
        elif a == "deepfm":
            s = e.sum(1)
            fm = 0.5 * (s * s - (e * e).sum(1)).sum(1, keepdim=True)
            y = self.first(x) + fm + self.deep_out(self.mlp(x))
        elif a in ("dcn", "dcnv2"):
            xl = x
            if a == "dcnv2":
                for layer in self.cross:
                    xl = x * layer(xl) + xl
            else:
                for w, b in zip(self.cross_w, self.cross_b):
                    xl = x * (xl @ w) + b + xl
            joined = torch.cat([xl, self.mlp(x)], 1) if self.mlp else xl
            y = self.out(joined)
        elif a == "xdeepfm":
            b, f, d = e.shape
            x0 = e.transpose(1, 2).reshape(b * d, f)
            xk, pooled = x0, []
            for w in self.cin:
                z = (xk.unsqueeze(2) * x0.unsqueeze(1)).reshape(b * d, -1)
                xk = z @ w
                pooled.append(xk.reshape(b, d, -1).sum(1))
            y = self.first(x) + self.cin_out(torch.cat(pooled, 1))
            if self.s["hidden"]:
                y = y + self.deep_out(self.mlp(x))
        elif a == "autoint":
            b, f, _ = e.shape
            h, xa = self.s["heads"], e
            for q, k, v, res in self.att:
                split = lambda t: t.reshape(b, f, h, -1).transpose(1, 2)  # noqa: E731
                o = fn.scaled_dot_product_attention(split(q(xa)), split(k(xa)), split(v(xa)))
                xa = torch.relu(o.transpose(1, 2).reshape(b, f, -1) + res(xa))
            y = self.att_out(xa.flatten(1))
            if self.s["hidden"]:
                y = y + self.deep_out(self.mlp(x))
        elif a == "fibinet":
            z = e.mean(2)
            w = torch.relu(self.excite(torch.relu(self.squeeze(z))))
            v = e * w.unsqueeze(2)

            def pairs(t, m):
                return ((t @ m)[:, self.left] * t[:, self.right]).flatten(1)

            deep = self.mlp(torch.cat([pairs(e, self.bilinear[0]), pairs(v, self.bilinear[1])], 1))
            y = self.first(x) + self.deep_out(deep)
        else:  # finalmlp
            o1, o2 = self.stream1(x), self.stream2(x)
            h, ha, hb = self.fusion.shape
            n = o1.shape[0]
            o1h = o1.reshape(n, h, ha).transpose(0, 1)
            o2h = o2.reshape(n, h, hb).transpose(0, 1)
            bil = ((o1h @ self.fusion) * o2h).sum(2).sum(0)
            y = self.lin1(o1) + self.lin2(o2) + bil.unsqueeze(1)
        return y.squeeze(1)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            info = fh.read()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines()
                 if l.startswith("model name")), "unknown CPU")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines()
                  if l.startswith("flags")), [])
    return name + (" +avx512" if "avx512f" in flags else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="deepfm")
    ap.add_argument("--emb", type=int)
    ap.add_argument("--hidden")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--fields", type=int, default=26)
    ap.add_argument("--ids", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True) before building the model")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    flushed = torch.set_flush_denormal(True) if a.flush_denormal else False
    torch.manual_seed(a.seed)
    s = parse_spec(a.model)
    if a.emb is not None:
        s["emb"] = a.emb
    if a.hidden is not None:
        s["hidden"] = sizes(a.hidden)
    model = Twin(s, a.fields, a.ids)
    dense = [p for n, p in model.named_parameters() if not n.startswith("table")]
    opt_emb = torch.optim.SparseAdam([model.table.weight], lr=0.1)
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
    times = []
    for i in range(a.steps):
        t = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t)
    half, tenth = a.steps // 2, max(a.steps // 10, 1)
    steady = times[half:]
    params = sum(p.numel() for p in model.parameters())
    spec = s["arch"] + ":" + ",".join(
        f"{k}={'x'.join(map(str, v)) or 'none' if isinstance(v, list) else v}"
        for k, v in s.items() if k in KEYS[s["arch"]])
    print(f"pytorch {torch.__version__} model={spec} batch={a.batch} fields={a.fields} "
          f"ids={a.ids} threads={a.threads} params={params} steps={a.steps} warmup={a.warmup} "
          f"steady_samples_per_sec={a.batch * len(steady) / sum(steady):.0f} "
          f"samples_per_sec={a.batch * a.steps / sum(times):.0f} "
          f"first_ms={sum(times[:tenth]) * 1e3 / tenth:.1f} "
          f"last_ms={sum(times[-tenth:]) * 1e3 / tenth:.1f} "
          f"step_ms={sum(steady) * 1e3 / len(steady):.1f} "
          f"flush_denormal={'on' if flushed else 'off'} cpu=\"{cpu_model()}\"")


if __name__ == "__main__":
    main()
