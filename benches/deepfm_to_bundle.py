#!/usr/bin/env python3
"""Convert a PyTorch `state_dict` of the benchmark DeepFM twin (benches/pytorch_deepfm.py, i.e.
`Twin` of benches/pytorch_zoo.py with `--model deepfm`) into a crossadapt teacher bundle
(docs/bundles.md), usable as `--set teacher.bundle=DIR`.

    python3 benches/deepfm_to_bundle.py --state-dict deepfm.pt --vocab-from BUNDLE --out DIR
    python3 benches/deepfm_to_bundle.py --state-dict deepfm.pt --vocab vocab.json --out DIR
    python3 benches/deepfm_to_bundle.py --demo --vocab-from BUNDLE --out DIR --check-day 5

The state_dict holds `table.weight` with one block of rows per categorical field starting at
`offsets[i]` (row `offsets[i] + id`: id 0 padding, 1 OOV, 2.. the vocabulary's keys in order),
`first`, `mlp.net.{2i}` and `deep_out`. A block may be longer than its field's vocabulary (the
twin gives every field `--ids` rows): rows past it are ids no encoded row can have, and are
dropped. The older twin's layout (`tables.{i}.weight`, `mlp.{2i}`, `out`) is read too. The
vocabulary comes from an existing bundle over the same data (`--vocab-from`, e.g. one written by
`crossadapt train --bundle`) or a JSON file `{"categorical": [{"name", "keys": [...]}],
"numeric": [{"name", "mean", "std"}], "user": NAME|null, "min_count": N, "data": {crossadapt
data config, optional}}`. The twin has no numeric inputs, so the bundle gets zero numeric
vectors (`num_emb`) and zero weight columns for the numeric fields: crossadapt then computes
exactly the twin's function.

`--demo` converts a freshly initialised twin (torch.save'd and loaded back, as a user's file
would be); `--check-day N` then runs `crossadapt predict` on day N and checks the ORIGINAL twin
(not a re-implementation) gives the same predictions to 1e-5.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_zoo import Twin, parse_spec  # noqa: E402
from bundle_check import read_predictions, schema_fingerprint, Bundle  # noqa: E402


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def write_keys(path, fields):
    """vocab.safetensors: one little-endian U64 tensor `keys.{i}` per field."""
    header, data, at = {"__metadata__": {"format": "crossadapt-bundle"}}, b"", 0
    for i, f in enumerate(fields):
        b = np.asarray(f["keys"], dtype="<u8").tobytes()
        header[f"keys.{i}"] = {"dtype": "U64", "shape": [len(f["keys"])],
                               "data_offsets": [at, at + len(b)]}
        data += b
        at += len(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + data)


def load_vocab(a, out):
    """The vocabulary section of bundle.json, writing vocab.safetensors into `out`."""
    if a.vocab_from:
        with open(os.path.join(a.vocab_from, "bundle.json")) as fh:
            m = json.load(fh)
        shutil.copyfile(os.path.join(a.vocab_from, m["vocabulary"]["file"]),
                        os.path.join(out, "vocab.safetensors"))
        v = dict(m["vocabulary"], file="vocab.safetensors")
        return v, m["schema"], m.get("provenance", {}).get("data")
    with open(a.vocab) as fh:
        j = json.load(fh)
    cats, offset = [], 0
    for f in j["categorical"]:
        if len(set(f["keys"])) != len(f["keys"]):
            raise SystemExit(f"{a.vocab}: field {f['name']} lists a key twice")
        rows = len(f["keys"]) + 2
        cats.append({"name": f["name"], "entries": len(f["keys"]), "rows": rows, "offset": offset})
        offset += rows
    write_keys(os.path.join(out, "vocab.safetensors"), j["categorical"])
    v = {"file": "vocab.safetensors", "pad_id": 0, "oov_id": 1, "first_id": 2, "unseen": "oov",
         "min_count": j.get("min_count", 1), "categorical": cats,
         "numeric": [{"name": n["name"], "mean": n["mean"], "std": n["std"]}
                     for n in j.get("numeric", [])]}
    schema = {"categorical": [f["name"] for f in j["categorical"]],
              "numeric": [n["name"] for n in j.get("numeric", [])], "user": j.get("user")}
    return v, schema, j.get("data")


def demo_twin(vocab, emb, hidden, seed):
    """The benchmark twin with as many rows per field as the largest vocabulary, initialised as
    it initialises itself, plus non-zero biases so a dropped bias would show."""
    torch.manual_seed(seed)
    rows = max(f["rows"] for f in vocab["categorical"])
    spec = parse_spec(f"deepfm:emb={emb},hidden={'x'.join(map(str, hidden))}")
    model = Twin(spec, len(vocab["categorical"]), rows)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.1, 0.1)
    return model


def zoo_layout(state, f):
    """The older twin's names (one table per field) as the zoo twin's."""
    if "tables.0.weight" not in state:
        return state
    tables = [state[f"tables.{i}.weight"] for i in range(f)]
    out = {"table.weight": torch.cat(tables, 0),
           "offsets": torch.tensor(np.cumsum([0] + [t.shape[0] for t in tables[:-1]])),
           "first.weight": state["first.weight"], "first.bias": state["first.bias"],
           "deep_out.weight": state["out.weight"], "deep_out.bias": state["out.bias"]}
    for k, v in state.items():
        if k.startswith("mlp."):
            out["mlp.net." + k[len("mlp."):]] = v
    return out


def convert(state, vocab, schema, out, source, data=None):
    cats, nums = vocab["categorical"], schema["numeric"]
    f, n = len(cats), len(nums)
    state = zoo_layout(state, f)
    table, starts = state["table.weight"], [int(o) for o in state["offsets"]]
    emb = table.shape[1]
    if len(starts) != f:
        raise SystemExit(f"the state_dict has {len(starts)} fields, the vocabulary {f}")
    ends = starts[1:] + [table.shape[0]]
    blocks = []
    for i, c in enumerate(cats):
        if ends[i] - starts[i] < c["rows"]:
            raise SystemExit(f"field {i} ({c['name']}) has {ends[i] - starts[i]} rows in "
                             f"table.weight, its vocabulary needs {c['rows']} (entries + 2)")
        blocks.append(table[starts[i]:starts[i] + c["rows"]])
    layers = sorted(int(k.split(".")[2]) for k in state
                    if k.startswith("mlp.net.") and k.endswith(".weight"))
    hidden = [state[f"mlp.net.{i}.weight"].shape[0] for i in layers]

    def widen(w):  # zero columns for the numeric fields, which come after the categorical ones
        return torch.cat([w, torch.zeros(w.shape[0], n * emb)], 1).contiguous()

    t = {"table.weight": torch.cat(blocks, 0).contiguous(),
         "offsets": torch.tensor([c["offset"] for c in cats], dtype=torch.int64),
         "first.weight": widen(state["first.weight"]), "first.bias": state["first.bias"]}
    entries = [("table.weight", "emb.table", False), ("offsets", "emb.offsets", False)]
    if n:
        t["num_emb"] = torch.zeros(n, emb)
        entries.append(("num_emb", "num_emb", False))
    entries += [("first.weight", "first_order.w", True), ("first.bias", "first_order.b", False)]
    for j, i in enumerate(layers):
        w = state[f"mlp.net.{i}.weight"]
        t[f"mlp.net.{2 * j}.weight"] = widen(w) if j == 0 else w
        t[f"mlp.net.{2 * j}.bias"] = state[f"mlp.net.{i}.bias"]
        entries += [(f"mlp.net.{2 * j}.weight", f"deep.{j}.w", True),
                    (f"mlp.net.{2 * j}.bias", f"deep.{j}.b", False)]
    t["deep_out.weight"], t["deep_out.bias"] = state["deep_out.weight"], state["deep_out.bias"]
    entries += [("deep_out.weight", "deep_out.w", True), ("deep_out.bias", "deep_out.b", False)]
    t = {k: v.detach().contiguous() for k, v in t.items()}
    save_file(t, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    spec = f"deepfm:emb={emb},hidden={'x'.join(map(str, hidden))}"
    manifest = {
        "format": "crossadapt-bundle", "version": 1, "role": "teacher", "model": spec,
        "schema": schema, "schema_fingerprint": schema_fingerprint(schema),
        "vocabulary": vocab, "weights_file": "model.safetensors",
        "tensors": [{"name": k, "shape": list(t[k].shape), "crossadapt": c, "transposed": tr}
                    for k, c, tr in entries],
        "files": {name: {"bytes": os.path.getsize(os.path.join(out, name)),
                         "sha256": sha256(os.path.join(out, name))}
                  for name in ("model.safetensors", "vocab.safetensors")},
        "provenance": {"written_by": "benches/deepfm_to_bundle.py", "source": source,
                       **({"data": data} if data else {})},
    }
    with open(os.path.join(out, "bundle.json"), "w") as fh:
        json.dump(manifest, fh, indent=2, ensure_ascii=False)
    return spec


def check(model, out, day, crossadapt, sets, tol=1e-5):
    bundle = Bundle(out)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.csv")
        cmd = [crossadapt, "predict", "--bundle", out, "--day", str(day), "--inputs", "--out", path]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
        keys, values, logits, probs = read_predictions(path, bundle)
    ids, _ = bundle.encode(keys, values)  # per-field ids; the twin adds its own offsets
    with torch.no_grad():
        z = model.eval()(ids).double().numpy()
    dz, dp = float(np.abs(z - logits).max()), float(np.abs(1 / (1 + np.exp(-z)) - probs).max())
    print(f"torch {torch.__version__} DeepFM twin vs crossadapt on day {day}: rows={len(keys)} "
          f"max_abs_logit_diff={dz:.3g} max_abs_prob_diff={dp:.3g}")
    return dz <= tol and dp <= tol


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--state-dict", help="torch.save'd state_dict (.pt) or .safetensors")
    src.add_argument("--demo", action="store_true", help="convert a fresh twin of the right sizes")
    voc = ap.add_mutually_exclusive_group(required=True)
    voc.add_argument("--vocab-from", help="an existing bundle over the same data")
    voc.add_argument("--vocab", help="a vocabulary JSON file")
    ap.add_argument("--out", required=True, help="the bundle folder to create")
    ap.add_argument("--emb", type=int, default=8, help="--demo: embedding size")
    ap.add_argument("--hidden", default="32x16", help="--demo: hidden sizes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-day", type=int, help="check against `crossadapt predict` on this day")
    ap.add_argument("--crossadapt", default="target/debug/crossadapt")
    ap.add_argument("--set", action="append", default=[], help="passed to crossadapt predict")
    a = ap.parse_args()
    if os.path.exists(a.out) and os.listdir(a.out):
        raise SystemExit(f"{a.out} already exists; pick another folder or remove it")
    # Written into a hidden sibling folder, renamed into place only when complete.
    final, a.out = a.out, tempfile.mkdtemp(prefix=".bundle-staging-",
                                            dir=os.path.dirname(os.path.abspath(a.out)))
    try:
        convert_to(a)
    except BaseException:
        shutil.rmtree(a.out, ignore_errors=True)
        raise
    if os.path.isdir(final):
        os.rmdir(final)
    os.chmod(a.out, 0o755)
    os.rename(a.out, final)
    a.out = final
    print(f"wrote {final} ({a.spec})")
    if a.check_day is not None:
        if a.model is None:
            raise SystemExit("--check-day needs --demo (a state_dict alone does not say which "
                             "twin class to rebuild); check a converted file with "
                             "benches/bundle_check.py instead")
        ok = check(a.model, final, a.check_day, a.crossadapt, a.set)
        print("MATCH" if ok else "MISMATCH")
        sys.exit(0 if ok else 1)


def convert_to(a):
    vocab, schema, data = load_vocab(a, a.out)
    if a.demo:
        model = demo_twin(vocab, a.emb, [int(h) for h in a.hidden.split("x") if h], a.seed)
        with tempfile.TemporaryDirectory() as tmp:  # through a file, as a user's state_dict
            torch.save(model.state_dict(), os.path.join(tmp, "deepfm.pt"))
            state = torch.load(os.path.join(tmp, "deepfm.pt"))
        source = "benches/deepfm_to_bundle.py --demo"
    else:
        if a.state_dict.endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(a.state_dict)
        else:
            state = torch.load(a.state_dict, map_location="cpu")
        source = f"state_dict {os.path.basename(a.state_dict)}"
        model = None
    a.spec = convert(state, vocab, schema, a.out, source, data)
    a.model = model

if __name__ == "__main__":
    main()
