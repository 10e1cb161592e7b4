"""The gate statistics cross-checked outside crossadapt (docs/verdict.md, statistics for the
gate): DeLong's paired AUC difference, then Obuchowski's clustered version with explicit
per-user sums, on the same 300 tied rows as the tests in src/train/stats.rs.

    python3 docs/examples/gate_crosscheck.py
"""
import numpy as np


def delong():
    i = np.arange(300); y = ((i * 7) % 10 < 3).astype(float)
    a = ((i * 37) % 101) + 20 * y; b = ((i * 53) % 97) % 50 + 10 * y
    def comps(s):
        X, Y = s[y == 1], s[y == 0]
        K = (X[:, None] > Y[None, :]) + 0.5 * (X[:, None] == Y[None, :])
        return K.mean(), K.mean(axis=1), K.mean(axis=0)
    (A, v10a, v01a), (B, v10b, v01b) = comps(a), comps(b)
    S = np.cov(np.vstack([v10a, v10b])) / len(v10a) + np.cov(np.vstack([v01a, v01b])) / len(v01a)
    print(A, B, np.sqrt(S[0, 0] + S[1, 1] - 2 * S[0, 1]))  # 0.66730... 0.69315... 0.046003...


def clustered():
    i = np.arange(300); y = ((i * 7) % 10 < 3).astype(float)
    a = ((i * 37) % 101) + 20 * y; b = ((i * 53) % 97) % 50 + 10 * y
    u = (i * i) % 23                               # 12 users of 14 to 26 rows
    def comps(s):
        X, Y = s[y == 1], s[y == 0]
        K = (X[:, None] > Y[None, :]) + 0.5 * (X[:, None] == Y[None, :])
        return K.mean(), K.mean(axis=1), K.mean(axis=0)
    def resid(s):                                  # per user: (V10_k - m_k AUC, V01_k - n_k AUC)
        A, v10, v01 = comps(s)
        up, un = u[y == 1], u[y == 0]
        return A, np.array([[v10[up == k].sum() - (up == k).sum() * A,
                             v01[un == k].sum() - (un == k).sum() * A] for k in np.unique(u)])
    (A, ra), (B, rb) = resid(a), resid(b)
    M, N, I = (y == 1).sum(), (y == 0).sum(), len(np.unique(u))
    I10, I01 = len(np.unique(u[y == 1])), len(np.unique(u[y == 0]))
    def var(r):                                    # Obuchowski (1997): S10/M + S01/N + 2 S11/(M N)
        S10 = I10 / ((I10 - 1) * M) * (r[:, 0] ** 2).sum()
        S01 = I01 / ((I01 - 1) * N) * (r[:, 1] ** 2).sum()
        S11 = I / (I - 1) * (r[:, 0] * r[:, 1]).sum()
        return S10 / M + S01 / N + 2 * S11 / (M * N)
    print(A, B, np.sqrt(var(ra)), np.sqrt(var(rb)), np.sqrt(var(ra - rb)))
    # 0.66730... 0.69315... 0.018341... 0.054714... 0.051828...


if __name__ == "__main__":
    delong()
    clustered()
