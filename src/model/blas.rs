//! Matrix products of the linear layers through the system OpenBLAS (`--features openblas`).
//!
//! candle's CPU matmul (the `gemm` crate) runs the benchmark's 4096x400 by 400x400 product at
//! about 111 GFLOP/s on two cores of this machine; OpenBLAS's `cblas_sgemm` at about 200, which
//! is what PyTorch's BLAS reaches (README, "Speed against PyTorch"). This op computes `a b` for
//! 2-D f32 tensors, and its backward the two products `g b^T` and `a^T g`, all with
//! `cblas_sgemm`; transposed views are passed as BLAS transposes, not copied.
//! OpenBLAS picks its thread count from `OPENBLAS_NUM_THREADS` (default: every core).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

// `cblas_sys` declares the CBLAS functions; the system OpenBLAS (libopenblas-dev) defines them.
// (openblas-src's `system` mode would do this too, but it builds a downloader that needs TLS
// features even when it does not download.)
#[link(name = "openblas")]
extern "C" {}

/// `a (m, k) x b (k, n) -> (m, n)` with `cblas_sgemm`, differentiable.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    blas_view(a)?.apply_op2(&blas_view(b)?, BlasMatmul)
}

/// `t` itself when BLAS can read it in place (row-major or a transposed row-major view),
/// else a contiguous copy.
fn blas_view(t: &Tensor) -> candle_core::Result<Tensor> {
    let l = t.layout();
    if l.dims().len() == 2 && matrix_view(l.dims(), l.stride()).is_some() {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// For a 2-D layout BLAS can read in place: whether it is read transposed, and its leading
/// dimension.
fn matrix_view(dims: &[usize], stride: &[usize]) -> Option<(bool, usize)> {
    let (rows, cols) = (dims[0], dims[1]);
    let row_major = stride[1] == 1 || cols == 1;
    if row_major && (stride[0] >= cols || rows == 1) {
        return Some((false, stride[0].max(cols).max(1)));
    }
    let col_major = stride[0] == 1 || rows == 1;
    if col_major && (stride[1] >= rows || cols == 1) {
        return Some((true, stride[1].max(rows).max(1)));
    }
    None
}

/// A 2-D f32 operand as BLAS sees it: the data from its start offset, whether it is read
/// transposed, and its leading dimension.
struct Operand<'a> {
    data: &'a [f32],
    trans: bool,
    ld: usize,
    rows: usize,
    cols: usize,
}

fn operand<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<Operand<'a>> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("blas-matmul: only f32 tensors are supported");
    };
    let (dims, stride) = (l.dims(), l.stride());
    if dims.len() != 2 {
        candle_core::bail!("blas-matmul: 2-D operands only, got {dims:?}");
    }
    let (rows, cols) = (dims[0], dims[1]);
    let Some((trans, ld)) = matrix_view(dims, stride) else {
        candle_core::bail!("blas-matmul: operand with strides {stride:?} is not a matrix view")
    };
    Ok(Operand {
        data: &v[l.start_offset()..],
        trans,
        ld,
        rows,
        cols,
    })
}

struct BlasMatmul;

impl CustomOp2 for BlasMatmul {
    fn name(&self) -> &'static str {
        "blas-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = operand(s1, l1)?;
        let b = operand(s2, l2)?;
        if a.cols != b.rows {
            candle_core::bail!(
                "blas-matmul: ({}, {}) x ({}, {}) do not chain",
                a.rows,
                a.cols,
                b.rows,
                b.cols
            );
        }
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let mut c = vec![0f32; m * n];
        if m > 0 && n > 0 && k > 0 {
            let trans = |t: bool| {
                if t {
                    cblas_sys::CBLAS_TRANSPOSE::CblasTrans
                } else {
                    cblas_sys::CBLAS_TRANSPOSE::CblasNoTrans
                }
            };
            let as_int = |x: usize| i32::try_from(x).map_err(candle_core::Error::wrap);
            // SAFETY: `a` is `m x k` and `b` is `k x n` as read with their transpose flags and
            // leading dimensions (checked by `operand` against the tensors' layouts), `c` holds
            // `m * n` values with leading dimension `n`; OpenBLAS reads and writes only those.
            unsafe {
                cblas_sys::cblas_sgemm(
                    cblas_sys::CBLAS_LAYOUT::CblasRowMajor,
                    trans(a.trans),
                    trans(b.trans),
                    as_int(m)?,
                    as_int(n)?,
                    as_int(k)?,
                    1.0,
                    a.data.as_ptr(),
                    as_int(a.ld)?,
                    b.data.as_ptr(),
                    as_int(b.ld)?,
                    0.0,
                    c.as_mut_ptr(),
                    as_int(n)?,
                );
            }
        }
        Ok((CpuStorage::F32(c), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        let ga = g.apply_op2_no_bwd(&b.t()?, &BlasMatmul)?;
        let gb = a.t()?.apply_op2_no_bwd(&g, &BlasMatmul)?;
        Ok((Some(ga), Some(gb)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::matmul;

    fn close(x: &Tensor, y: &Tensor) {
        let d = (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-4, "max difference {d}");
    }

    #[test]
    fn matches_candle_matmul_forward_and_backward() {
        let dev = Device::Cpu;
        let av: Vec<f32> = (0..35)
            .map(|i| ((i * 13 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let bv: Vec<f32> = (0..20).map(|i| ((i * 7 % 9) as f32 - 4.0) / 2.0).collect();
        let a = Var::from_vec(av, (7, 5), &dev).unwrap();
        let b = Var::from_vec(bv, (5, 4), &dev).unwrap();
        let w = Tensor::arange(0f32, 28.0, &dev)
            .unwrap()
            .reshape((7, 4))
            .unwrap();
        let ours = matmul(a.as_tensor(), b.as_tensor()).unwrap();
        let theirs = a.as_tensor().matmul(b.as_tensor()).unwrap();
        close(&ours, &theirs);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(g1.get(&a).unwrap(), g2.get(&a).unwrap());
        close(g1.get(&b).unwrap(), g2.get(&b).unwrap());
        // A transposed view is read as a BLAS transpose.
        let bt = b.as_tensor().t().unwrap().contiguous().unwrap();
        close(
            &matmul(a.as_tensor(), &bt.t().unwrap()).unwrap(),
            &a.as_tensor().matmul(b.as_tensor()).unwrap(),
        );
        // A view BLAS cannot read in place (a broadcast row) is copied first.
        let row = Tensor::arange(0f32, 5.0, &dev)
            .unwrap()
            .reshape((1, 5))
            .unwrap();
        let rows = row.broadcast_as((3, 5)).unwrap();
        close(
            &matmul(&rows, b.as_tensor()).unwrap(),
            &rows.contiguous().unwrap().matmul(b.as_tensor()).unwrap(),
        );
        assert!(matmul(a.as_tensor(), a.as_tensor()).is_err());
    }
}
