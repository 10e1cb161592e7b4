//! Products of small matrices and softmax rows, for AutoInt's attention, where every sample and
//! head is a handful of products of a few tens of rows and columns.
//!
//! Why not the `gemm` crate: for matrices this small a call costs more than the product (it
//! dispatches, may allocate packing space, and tiles for large matrices). Why not plain loops:
//! the crate is compiled for baseline x86-64 (SSE2, no FMA), and loops over slices of a length
//! known only at run time keep their sums in memory. So when the CPU has AVX2 and FMA (checked
//! at run time) the products run in registers, tiles of 4 rows x 16 columns, the columns past a
//! multiple of 8 read and written through lane masks, and the softmax's exponentials are taken
//! 8 at a time; elsewhere plain loops compute the same values up to rounding.
//!
//! Which path runs depends on the CPU only, never on the number of threads, and each product
//! adds its terms in one fixed order.

/// A read-only matrix in a slice: element `(i, j)` at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `rows` rows of `cols` contiguous values, `rs` apart. Panics if one lies outside `data`.
    pub(super) fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * rs + cols <= data.len(),
                "small::View: {rows} x {cols} rows {rs} apart do not fit in {} values",
                data.len()
            );
        }
        View {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose, read in place.
    pub(super) fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// Whether the AVX2 + FMA path runs on this CPU.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `c = a b`, overwriting `c`'s `a.rows` rows of `b.cols` values, `crs` apart (the values in
/// between are left alone). `b`'s rows must be contiguous (a [`View::rows`]); `a` may be any view.
pub(super) fn product(a: View, b: View, c: &mut [f32], crs: usize) {
    product_on(simd(), a, b, c, crs);
}

fn product_on(simd: bool, a: View, b: View, c: &mut [f32], crs: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && b.cs == 1,
        "small::product: shapes do not chain"
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m == 1 || crs >= n) && (m - 1) * crs + n <= c.len(),
        "small::product: the result does not fit"
    );
    if k == 0 {
        for i in 0..m {
            c[i * crs..i * crs + n].fill(0.0);
        }
        return;
    }
    // `a` and `b` were bounds-checked whole when their views were made (a transpose reads the
    // same values), `c` just above.
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: AVX2 and FMA are present (`simd` is only true when they are); the kernel
        // reads `a (i, p)` at `i * rs + p * cs`, `b`'s row `p` at `p * rs ..+ n` and writes `c`'s
        // row `i` at `i * crs ..+ n`, all inside the slices by the checks above.
        unsafe { avx::product(a, b, c.as_mut_ptr(), crs) };
        return;
    }
    let _ = simd;
    for i in 0..m {
        let ci = &mut c[i * crs..i * crs + n];
        ci.fill(0.0);
        for p in 0..k {
            let x = a.at(i, p);
            for (o, &y) in ci.iter_mut().zip(&b.data[p * b.rs..p * b.rs + n]) {
                *o += x * y;
            }
        }
    }
}

/// Each row of `s` (rows of `cols` values) becomes `softmax(scale * row)`.
pub(super) fn softmax_rows(s: &mut [f32], cols: usize, scale: f32) {
    softmax_rows_on(simd(), s, cols, scale);
}

fn softmax_rows_on(simd: bool, s: &mut [f32], cols: usize, scale: f32) {
    if cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if simd {
        for row in s.chunks_exact_mut(cols) {
            // SAFETY: AVX2 and FMA are present; the kernel touches `row` only.
            unsafe { avx::softmax_row(row, scale) };
        }
        return;
    }
    let _ = simd;
    for row in s.chunks_exact_mut(cols) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v * scale - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

/// `t = a^T` for `a`'s contiguous rows (a [`View::rows`]): `t` gets `a.cols` rows of `a.rows`
/// values, `trs` apart.
pub(super) fn transpose(a: View, t: &mut [f32], trs: usize) {
    transpose_on(simd(), a, t, trs);
}

fn transpose_on(simd: bool, a: View, t: &mut [f32], trs: usize) {
    let (m, n) = (a.rows, a.cols);
    assert!(a.cs == 1, "small::transpose: the rows must be contiguous");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (n == 1 || trs >= m) && (n - 1) * trs + m <= t.len(),
        "small::transpose: the result does not fit"
    );
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: AVX2 is present; the kernel reads `a (j, k)` at `j * rs + k` and writes
        // `t[k * trs + j]`, inside both slices by `View::rows`' check and the one above.
        unsafe { avx::transpose(a, t.as_mut_ptr(), trs) };
        return;
    }
    let _ = simd;
    for (j, row) in a.data.chunks(a.rs).take(m).enumerate() {
        for (k, &v) in row[..n].iter().enumerate() {
            t[k * trs + j] = v;
        }
    }
}

/// The softmax's backward pass, row by row: with `s` the softmax rows (rows of `cols` values)
/// and `g` the gradient with respect to them, `g` becomes the gradient with respect to the
/// scores before the softmax's `scale`: `g_j = scale s_j (g_j - sum_k s_k g_k)`.
pub(super) fn softmax_backward_rows(s: &[f32], g: &mut [f32], cols: usize, scale: f32) {
    softmax_backward_rows_on(simd(), s, g, cols, scale);
}

fn softmax_backward_rows_on(simd: bool, s: &[f32], g: &mut [f32], cols: usize, scale: f32) {
    assert_eq!(
        s.len(),
        g.len(),
        "small::softmax_backward_rows: lengths differ"
    );
    if cols == 0 {
        return;
    }
    for (si, gi) in s.chunks_exact(cols).zip(g.chunks_exact_mut(cols)) {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: AVX2 and FMA are present; the kernel touches `si` and `gi`, of equal length.
            unsafe { avx::softmax_backward_row(si, gi, scale) };
            continue;
        }
        let _ = simd;
        let mean: f32 = si.iter().zip(gi.iter()).map(|(a, b)| a * b).sum();
        for (gv, &sv) in gi.iter_mut().zip(si) {
            *gv = sv * (*gv - mean) * scale;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    use super::View;

    /// 8 lanes at any address. Reads and writes through it compile to one unaligned move:
    /// `_mm256_loadu_ps` and `_mm256_storeu_ps` go through `copy_nonoverlapping`, whose
    /// precondition checks the crate's profile keeps on (debug assertions), and the value then
    /// went through the stack, in the innermost loop.
    #[repr(C, packed)]
    #[derive(Clone, Copy)]
    struct Unaligned(__m256);

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load(p: *const f32) -> __m256 {
        (*p.cast::<Unaligned>()).0
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn store(p: *mut f32, v: __m256) {
        *p.cast::<Unaligned>() = Unaligned(v);
    }

    /// `MASKS[8 - n..]` starts with `n` set lanes followed by clear ones.
    static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

    /// The first `n` (0..=8) of 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mask(n: usize) -> __m256i {
        _mm256_castps_si256(load(MASKS.as_ptr().wrapping_add(8 - n).cast()))
    }

    /// `c = a b` (see `product_on`, which checks the bounds). Index arithmetic wraps rather than
    /// being checked: the crate's profile keeps overflow and pointer checks on, which would
    /// otherwise sit in the innermost loop.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product(a: View, b: View, c: *mut f32, crs: usize) {
        let n = b.cols;
        let full = n / 16 * 16;
        let all = mask(8);
        let mut j = 0;
        while j < full {
            rows::<2, false>(a, b, j, c.wrapping_add(j), crs, all);
            j += 16;
        }
        let (cj, rest) = (c.wrapping_add(full), n - full);
        match rest {
            0 => {}
            1..=7 => rows::<1, true>(a, b, full, cj, crs, mask(rest)),
            8 => rows::<1, false>(a, b, full, cj, crs, all),
            _ => rows::<2, true>(a, b, full, cj, crs, mask(rest - 8)),
        }
    }

    /// Columns `j0..j0 + 8 NV` of every row of `c` (the last vector cut by `last` if `MASKED`).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<const NV: usize, const MASKED: bool>(
        a: View,
        b: View,
        j0: usize,
        c: *mut f32,
        crs: usize,
        last: __m256i,
    ) {
        let (ap, bp) = (a.data.as_ptr(), b.data.as_ptr().wrapping_add(j0));
        let m = a.rows;
        let mut i = 0;
        while i + 4 <= m {
            tile::<4, NV, MASKED>(a, i, bp, b.rs, c.wrapping_add(i * crs), crs, last, ap);
            i += 4;
        }
        let ci = c.wrapping_add(i * crs);
        match m - i {
            3 => tile::<3, NV, MASKED>(a, i, bp, b.rs, ci, crs, last, ap),
            2 => tile::<2, NV, MASKED>(a, i, bp, b.rs, ci, crs, last, ap),
            1 => tile::<1, NV, MASKED>(a, i, bp, b.rs, ci, crs, last, ap),
            _ => {}
        }
    }

    /// Rows `i0..i0 + MR` of `c`, `8 NV` columns from `b` on, summed over `p` in order.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const MR: usize, const NV: usize, const MASKED: bool>(
        a: View,
        i0: usize,
        b: *const f32,
        brs: usize,
        c: *mut f32,
        crs: usize,
        last: __m256i,
        ap: *const f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        let mut arow = ap.wrapping_add(i0 * a.rs);
        let mut brow = b;
        for _ in 0..a.cols {
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                let ptr = brow.wrapping_add(8 * v);
                *x = if MASKED && v + 1 == NV {
                    _mm256_maskload_ps(ptr, last)
                } else {
                    load(ptr)
                };
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*arow.wrapping_add(r.wrapping_mul(a.rs)));
                for (s, &y) in acc_r.iter_mut().zip(&bv) {
                    *s = _mm256_fmadd_ps(x, y, *s);
                }
            }
            arow = arow.wrapping_add(a.cs);
            brow = brow.wrapping_add(brs);
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let crow = c.wrapping_add(r * crs);
            for (v, &s) in acc_r.iter().enumerate() {
                let ptr = crow.wrapping_add(8 * v);
                if MASKED && v + 1 == NV {
                    _mm256_maskstore_ps(ptr, last, s);
                } else {
                    store(ptr, s);
                }
            }
        }
    }

    /// `t = a^T`: blocks of 8 x 8 through registers, the rest one value at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn transpose(a: View, t: *mut f32, trs: usize) {
        let (m, n, rs) = (a.rows, a.cols, a.rs);
        let src = a.data.as_ptr();
        let (m8, n8) = (m / 8 * 8, n / 8 * 8);
        for j in (0..m8).step_by(8) {
            for k in (0..n8).step_by(8) {
                let mut r = [_mm256_setzero_ps(); 8];
                for (i, x) in r.iter_mut().enumerate() {
                    *x = load(src.wrapping_add((j + i) * rs + k));
                }
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (i, &v) in out.iter().enumerate() {
                    store(t.wrapping_add((k + i) * trs + j), v);
                }
            }
        }
        let one = |j: usize, k: usize| {
            *t.wrapping_add(k.wrapping_mul(trs).wrapping_add(j)) =
                *src.wrapping_add(j.wrapping_mul(rs).wrapping_add(k));
        };
        for j in 0..m8 {
            for k in n8..n {
                one(j, k);
            }
        }
        for j in m8..m {
            for k in 0..n {
                one(j, k);
            }
        }
    }

    /// One row of `softmax_backward_rows`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_backward_row(s: &[f32], g: &mut [f32], scale: f32) {
        let n = s.len();
        let (sp, gp) = (s.as_ptr(), g.as_mut_ptr());
        let chunks = n.div_ceil(8);
        let (all, tail) = (mask(8), mask(n + 8 - 8 * chunks));
        let mut dot = _mm256_setzero_ps();
        for c in 0..chunks {
            let m = if c + 1 == chunks { tail } else { all };
            let sv = _mm256_maskload_ps(sp.wrapping_add(8 * c), m);
            let gv = _mm256_maskload_ps(gp.wrapping_add(8 * c), m);
            dot = _mm256_fmadd_ps(sv, gv, dot);
        }
        let mean = _mm256_set1_ps(hsum(dot));
        let scale = _mm256_set1_ps(scale);
        for c in 0..chunks {
            let m = if c + 1 == chunks { tail } else { all };
            let sv = _mm256_maskload_ps(sp.wrapping_add(8 * c), m);
            let ptr = gp.wrapping_add(8 * c);
            let gv = _mm256_sub_ps(_mm256_maskload_ps(ptr, m), mean);
            _mm256_maskstore_ps(ptr, m, _mm256_mul_ps(_mm256_mul_ps(sv, gv), scale));
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }

    #[target_feature(enable = "avx2,fma")]
    fn hmax(v: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps::<1>(s, s)))
    }

    /// `exp` of 8 values (Cephes' `expf`: `x = n ln 2 + r`, a degree-5 polynomial in `r`, times
    /// `2^n`), within a few units in the last place of `f32::exp`. Below `ln(f32::MIN_POSITIVE)`
    /// the result is about `f32::MIN_POSITIVE` instead of less (a denormal or zero); from about
    /// 88.38 on it is infinite (a little early: `f32::MAX` is `exp(88.72)`); a NaN stays a NaN.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn exp8(x: __m256) -> __m256 {
        // `max` / `min` return their second operand when either is a NaN.
        let x = _mm256_max_ps(_mm256_set1_ps(-87.336_54), x);
        let x = _mm256_min_ps(_mm256_set1_ps(88.722_84), x);
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut y = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let y = _mm256_fmadd_ps(
            y,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let pow2 = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(pow2))
    }

    /// `row = softmax(scale * row)`: the maximum, the shifted exponentials and their sum, then
    /// the division, 8 values at a time (the lanes past the row's end masked out).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_row(row: &mut [f32], scale: f32) {
        let n = row.len();
        let p = row.as_mut_ptr();
        let chunks = n.div_ceil(8);
        let (all, tail) = (mask(8), mask(n + 8 - 8 * chunks));
        let scale_v = _mm256_set1_ps(scale);
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        for c in 0..chunks {
            let m = if c + 1 == chunks { tail } else { all };
            let v = _mm256_mul_ps(_mm256_maskload_ps(p.wrapping_add(8 * c), m), scale_v);
            let v = _mm256_blendv_ps(max, v, _mm256_castsi256_ps(m));
            max = _mm256_max_ps(max, v);
        }
        let max = _mm256_set1_ps(hmax(max));
        let mut sum = _mm256_setzero_ps();
        for c in 0..chunks {
            let (m, ptr) = (
                if c + 1 == chunks { tail } else { all },
                p.wrapping_add(8 * c),
            );
            let v = _mm256_fmsub_ps(_mm256_maskload_ps(ptr, m), scale_v, max);
            let e = _mm256_and_ps(exp8(v), _mm256_castsi256_ps(m));
            sum = _mm256_add_ps(sum, e);
            _mm256_maskstore_ps(ptr, m, e);
        }
        let sum = _mm256_set1_ps(hsum(sum));
        for c in 0..chunks {
            let (m, ptr) = (
                if c + 1 == chunks { tail } else { all },
                p.wrapping_add(8 * c),
            );
            _mm256_maskstore_ps(ptr, m, _mm256_div_ps(_mm256_maskload_ps(ptr, m), sum));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 + salt) % 23) as f32 / 7.0 - 1.6)
            .collect()
    }

    /// Both paths where the CPU has AVX2 and FMA, the portable one elsewhere.
    fn paths() -> Vec<bool> {
        if simd() {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    #[test]
    fn products_match_the_definition_at_every_tile_edge() {
        let mut checked = 0;
        for simd in paths() {
            for m in [1, 2, 3, 4, 5, 7, 8, 26] {
                for n in [1, 5, 7, 8, 9, 15, 16, 17, 24, 26, 33] {
                    for k in [0, 1, 3, 16, 26] {
                        // `a` read both ways: rows of `k` values, and the transpose of rows of
                        // `m` values; `b` and `c` with rows further apart than their length.
                        let (brs, crs) = (n + 3, n + 2);
                        let raw = values(m * k + 1, m + k);
                        let b_raw = values(k * brs, n);
                        let b = View::rows(&b_raw, k, n, brs);
                        for a in [View::rows(&raw, m, k, k), View::rows(&raw, k, m, m).t()] {
                            let mut c = vec![f32::NAN; m * crs];
                            product_on(simd, a, b, &mut c, crs);
                            for i in 0..m {
                                for j in 0..crs {
                                    let got = c[i * crs + j];
                                    if j >= n {
                                        assert!(got.is_nan(), "wrote past a row");
                                        continue;
                                    }
                                    let want: f64 =
                                        (0..k).map(|p| (a.at(i, p) * b.at(p, j)) as f64).sum();
                                    assert!(
                                        (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                        "simd {simd} {m}x{k}x{n} ({i}, {j}): {got} vs {want}"
                                    );
                                }
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked >= 880);
    }

    #[test]
    fn softmax_rows_match_the_scalar_definition() {
        for simd in paths() {
            for cols in [1, 3, 8, 9, 26, 40] {
                let mut s: Vec<f32> = values(3 * cols, cols).iter().map(|v| v * 9.0).collect();
                // Far below the row's maximum: a weight of (almost) zero, not a NaN.
                s[0] = -1e4;
                let want: Vec<f64> = s
                    .chunks(cols)
                    .flat_map(|row| {
                        let max = row.iter().fold(f64::MIN, |m, &v| m.max(v as f64 * 0.5));
                        let e: Vec<f64> =
                            row.iter().map(|&v| (v as f64 * 0.5 - max).exp()).collect();
                        let sum: f64 = e.iter().sum();
                        e.into_iter().map(move |v| v / sum)
                    })
                    .collect();
                softmax_rows_on(simd, &mut s, cols, 0.5);
                for (i, (&got, &want)) in s.iter().zip(&want).enumerate() {
                    assert!(
                        (got as f64 - want).abs() <= 1e-6 * (1.0 + want),
                        "simd {simd} cols {cols} [{i}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn transposes_match_the_definition_at_every_block_edge() {
        for simd in paths() {
            for m in [1, 3, 8, 9, 16, 26] {
                for n in [1, 7, 8, 12, 16, 17] {
                    let rs = n + 5;
                    let raw = values(m * rs, m * n);
                    let a = View::rows(&raw, m, n, rs);
                    let trs = m + 1;
                    let mut t = vec![f32::NAN; n * trs];
                    transpose_on(simd, a, &mut t, trs);
                    for k in 0..n {
                        for j in 0..trs {
                            let got = t[k * trs + j];
                            if j < m {
                                assert_eq!(got, a.at(j, k), "simd {simd} {m}x{n} ({j}, {k})");
                            } else {
                                assert!(got.is_nan(), "wrote past a row");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn softmax_backward_rows_match_the_definition() {
        for simd in paths() {
            for cols in [1, 5, 8, 13, 26] {
                let s = values(2 * cols, cols);
                let g0 = values(2 * cols, cols + 7);
                let mut g = g0.clone();
                softmax_backward_rows_on(simd, &s, &mut g, cols, 0.25);
                for r in 0..2 {
                    let row = r * cols..(r + 1) * cols;
                    let mean: f64 = s[row.clone()]
                        .iter()
                        .zip(&g0[row.clone()])
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum();
                    for j in row {
                        let want = 0.25 * s[j] as f64 * (g0[j] as f64 - mean);
                        assert!(
                            (g[j] as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "simd {simd} cols {cols} [{j}]: {} vs {want}",
                            g[j]
                        );
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_vector_exp_is_within_a_few_ulps() {
        use std::arch::x86_64::*;
        if !simd() {
            return;
        }
        let mut xs: Vec<f32> = (-8700..=8800).map(|i| i as f32 / 100.0 + 0.003).collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 88.0, -87.3]);
        for chunk in xs.chunks(8) {
            let mut x = [0.0f32; 8];
            x[..chunk.len()].copy_from_slice(chunk);
            let mut y = [0.0f32; 8];
            // SAFETY: AVX2 and FMA are present (checked above); both arrays hold 8 values.
            unsafe {
                _mm256_storeu_ps(y.as_mut_ptr(), avx::exp8(_mm256_loadu_ps(x.as_ptr())));
            }
            for (&x, &y) in x.iter().zip(&y) {
                let want = (x as f64).exp();
                assert!(
                    ((y as f64 - want) / want).abs() < 4e-7,
                    "exp({x}) = {y}, want {want}"
                );
            }
        }
        // SAFETY: as above.
        let edge = |v: f32| unsafe {
            let mut y = [0.0f32; 8];
            _mm256_storeu_ps(y.as_mut_ptr(), avx::exp8(_mm256_set1_ps(v)));
            y[0]
        };
        assert!(edge(-1e4) <= f32::MIN_POSITIVE * 1.5);
        assert!(edge(f32::NEG_INFINITY) <= f32::MIN_POSITIVE * 1.5);
        assert_eq!(edge(100.0), f32::INFINITY);
        assert!(edge(f32::NAN).is_nan());
    }
}
