#!/usr/bin/env python3
"""Load a crossadapt model bundle (docs/bundles.md) into its PyTorch twin and check the twin
predicts what crossadapt predicts.

    python3 benches/bundle_check.py --bundle DIR --day N [--crossadapt target/debug/crossadapt]
        [--set data.KEY=VALUE ...]

Runs `crossadapt predict --bundle DIR --day N --inputs` for the day's raw rows and crossadapt's
own logits, then, in PyTorch only: reads model.safetensors with safetensors.torch.load_file into
the twin of benches/pytorch_zoo.py with model.load_state_dict (strict: every name and shape must
match), encodes the raw rows through the bundle's vocabulary (raw key -> id, OOV for unseen keys,
numeric scaling from bundle.json), predicts, and prints the largest logit and probability
differences. Exit status 1 when either exceeds --tol (default 1e-5).
"""
import argparse
import csv
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_zoo import Twin, parse_spec  # noqa: E402  (the benchmark twins, one per arch)


def read_safetensors_raw(path):
    """name -> (dtype, shape, bytes), without any framework (U64 keys need no torch support)."""
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], data[b:e])
    return out


def schema_fingerprint(schema):
    text = json.dumps({"categorical": schema["categorical"], "numeric": schema["numeric"],
                       "user": schema["user"]}, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


class Bundle:
    def __init__(self, path):
        self.path = path
        with open(os.path.join(path, "bundle.json")) as fh:
            self.manifest = m = json.load(fh)
        if m["format"] != "crossadapt-bundle" or m["version"] != 1:
            raise SystemExit(f"{path}: not a version-1 crossadapt bundle")
        if schema_fingerprint(m["schema"]) != m["schema_fingerprint"]:
            raise SystemExit(f"{path}: schema_fingerprint does not match the schema")
        for name, d in m.get("files", {}).items():
            with open(os.path.join(path, name), "rb") as fh:
                sha = hashlib.sha256(fh.read()).hexdigest()
            if sha != d["sha256"]:
                raise SystemExit(f"{path}/{name} is damaged (SHA-256 differs from bundle.json)")
        v = m["vocabulary"]
        raw = read_safetensors_raw(os.path.join(path, v["file"]))
        # Raw key -> id: the key at position i has id first_id + i.
        self.ids = []
        for i, f in enumerate(v["categorical"]):
            dtype, shape, data = raw[f"keys.{i}"]
            assert dtype == "U64" and shape == [f["entries"]], f"keys.{i}"
            keys = np.frombuffer(data, dtype="<u8").tolist()
            self.ids.append({k: v["first_id"] + j for j, k in enumerate(keys)})
        self.oov = v["oov_id"]
        self.offsets = [f["offset"] for f in v["categorical"]]
        self.rows = sum(f["rows"] for f in v["categorical"])
        self.mean = np.array([n["mean"] for n in v["numeric"]], dtype=np.float32)
        self.std = np.array([n["std"] for n in v["numeric"]], dtype=np.float32)

    def encode(self, keys, values):
        """Raw keys (rows x fields, Python ints) and raw numeric values to model inputs."""
        ids = torch.tensor([[self.ids[f].get(k, self.oov) for f, k in enumerate(row)]
                            for row in keys], dtype=torch.int64)
        x = (np.asarray(values, dtype=np.float32).reshape(len(keys), len(self.mean))
             - self.mean) / self.std
        x[~np.isfinite(x)] = 0.0
        return ids, torch.from_numpy(x)

    def twin(self):
        m = self.manifest
        model = BundleTwin(m["model"], self.rows, self.offsets, len(m["schema"]["numeric"]))
        state = load_file(os.path.join(self.path, m["weights_file"]))
        model.load_state_dict(state, strict=True)
        return model.eval()


class _Inputs(nn.Embedding):
    """crossadapt's input layer in the twin's `table` slot: the categorical fields' rows, then
    each numeric value times its field's learned vector (`num_emb`)."""

    pending = None

    def forward(self, rows):
        e = super().forward(rows)
        num, w = self.pending
        if w is None:
            return e
        return torch.cat([e, num.unsqueeze(2) * w.unsqueeze(0)], 1)


class BundleTwin(Twin):
    """The zoo twin with the bundle's table (one row block per field, `offsets` giving each
    block's first row) and crossadapt's numeric fields appended as fields."""

    def __init__(self, spec, rows, offsets, num_num):
        s = parse_spec(spec)
        super().__init__(s, len(offsets) + num_num, 1)
        self.table = _Inputs(rows, s["emb"])
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.int64))
        self.num_emb = nn.Parameter(torch.zeros(num_num, s["emb"])) if num_num else None
        # FiBiNET's field-pair indices follow from the field count: constants, not weights.
        for name in ("left", "right"):
            if name in self._buffers:
                self.register_buffer(name, self._buffers.pop(name), persistent=False)

    def forward(self, ids, num):
        self.table.pending = (num, self.num_emb)
        return super().forward(ids)


def read_predictions(path, bundle):
    m = bundle.manifest
    cats = [f"cat.{n}" for n in m["schema"]["categorical"]]
    nums = [f"num.{n}" for n in m["schema"]["numeric"]]
    keys, values, logits, probs = [], [], [], []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            keys.append([int(r[c]) for c in cats])
            values.append([float(r[c]) for c in nums])
            logits.append(float(r["logit"]))
            probs.append(float(r["prob"]))
    return keys, values, np.array(logits), np.array(probs)


def twin_predict(bundle, keys, values, threads=2):
    torch.set_num_threads(threads)
    model = bundle.twin()
    ids, num = bundle.encode(keys, values)
    with torch.no_grad():
        z = model(ids, num).double().numpy()
    return z, 1.0 / (1.0 + np.exp(-z))


def compare(bundle, keys, values, logits, probs, tol):
    z, p = twin_predict(bundle, keys, values)
    dz, dp = float(np.abs(z - logits).max()), float(np.abs(p - probs).max())
    oov = sum(1 for row in keys for f, k in enumerate(row) if k not in bundle.ids[f])
    print(f"torch {torch.__version__} model={bundle.manifest['model']} rows={len(keys)} "
          f"unseen_keys={oov} max_abs_logit_diff={dz:.3g} max_abs_prob_diff={dp:.3g} tol={tol:g}")
    return dz <= tol and dp <= tol


def run_predict(crossadapt, bundle_dir, day, sets, out):
    cmd = [crossadapt, "predict", "--bundle", bundle_dir, "--day", str(day), "--inputs",
           "--out", out]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--day", type=int, required=True)
    # Where cargo put the binary: CARGO_TARGET_DIR when set (CI sets it), else ./target.
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--crossadapt", default=os.path.join(target, "debug", "crossadapt"))
    ap.add_argument("--set", action="append", default=[], help="passed to crossadapt predict")
    ap.add_argument("--predictions", help="use this `predict --inputs` CSV instead of running")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    bundle = Bundle(a.bundle)
    with tempfile.TemporaryDirectory() as tmp:
        path = a.predictions or os.path.join(tmp, "predictions.csv")
        if not a.predictions:
            run_predict(a.crossadapt, a.bundle, a.day, a.set, path)
        keys, values, logits, probs = read_predictions(path, bundle)
    ok = compare(bundle, keys, values, logits, probs, a.tol)
    print("MATCH" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
