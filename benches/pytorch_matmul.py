"""PyTorch twin of `crossadapt bench matmul`: the three products of one linear layer's training
step (forward x w, input gradient g w^T, weight gradient x^T g), each timed apart, median of
--reps runs after two untimed ones, printed as GFLOP/s with the CPU's name.

    python3 benches/pytorch_matmul.py --batch 4096 --inp 416 --out 400 --threads 2
"""
import argparse
import statistics
import time

import torch


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--inp", type=int, default=416)
    p.add_argument("--out", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--flush-denormal", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.batch, a.inp, generator=g) - 0.5
    w = torch.rand(a.inp, a.out, generator=g) - 0.5
    grad = torch.rand(a.batch, a.out, generator=g) - 0.5
    flops = 2.0 * a.batch * a.inp * a.out

    def rate(left, right):
        secs = []
        for i in range(a.reps + 2):
            t = time.perf_counter()
            torch.mm(left, right)
            e = time.perf_counter() - t
            if i >= 2:
                secs.append(e)
        return flops / statistics.median_low(secs) / 1e9

    fwd, dx, dw = rate(x, w), rate(grad, w.t()), rate(x.t(), grad)
    print(
        f"pytorch matmul batch={a.batch} inp={a.inp} out={a.out} threads={a.threads} reps={a.reps} "
        f"forward_gflops={fwd:.1f} input_grad_gflops={dx:.1f} weight_grad_gflops={dw:.1f} "
        f"torch={torch.__version__} cpu=\"{cpu_model()}\""
    )


if __name__ == "__main__":
    main()
