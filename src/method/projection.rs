//! 1A: embedding transfer without training steps.
//!
//! Each field's teacher table `E_t` (V x d_t) is mapped to the student's size d_s:
//! copy when the sizes match, a random orthogonal up-projection when d_s > d_t (inner products
//! between ids preserved exactly; `E_t = E_s W^T`), a PCA down-projection when d_s < d_t
//! (reconstruction error = the discarded share of the centred energy).

use nalgebra::{DMatrix, SymmetricEigen};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// How one field was transferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionMethod {
    Copy,
    OrthogonalUp,
    PcaDown,
}

impl ProjectionMethod {
    pub fn name(self) -> &'static str {
        match self {
            ProjectionMethod::Copy => "copy",
            ProjectionMethod::OrthogonalUp => "orthogonal_up",
            ProjectionMethod::PcaDown => "pca_down",
        }
    }
}

/// The student table of one field and how faithfully it keeps the teacher's.
#[derive(Clone, Debug)]
pub struct Projected {
    /// `rows x to_dim`, row-major.
    pub table: Vec<f32>,
    pub method: ProjectionMethod,
    /// `|E_t - rec(E_s)|_F / |E_t|_F` (0 for an all-zero teacher table).
    pub rel_error: f64,
}

/// Projects one field's table (`rows x from_dim`, row-major) to `to_dim` columns.
pub fn project_table(
    teacher: &[f32],
    rows: usize,
    from_dim: usize,
    to_dim: usize,
    rng: &mut impl Rng,
) -> anyhow::Result<Projected> {
    anyhow::ensure!(
        teacher.len() == rows * from_dim,
        "teacher table has {} values, expected {rows} x {from_dim}",
        teacher.len()
    );
    anyhow::ensure!(
        from_dim > 0 && to_dim > 0,
        "embedding sizes must be positive"
    );
    if to_dim == from_dim {
        return Ok(Projected {
            table: teacher.to_vec(),
            method: ProjectionMethod::Copy,
            rel_error: 0.0,
        });
    }
    // Both projections are `E_s = (E_t - mean) B` with a `from x to` basis `B` of orthonormal
    // rows (up) or columns (down), reconstructed as `E_s B^T + mean`. They run a row at a
    // time, so a field's table is held once, in f32, whatever its number of ids.
    let (basis, mean, method) = if to_dim > from_dim {
        (
            orthonormal_rows(from_dim, to_dim, rng),
            vec![0.0; from_dim],
            ProjectionMethod::OrthogonalUp,
        )
    } else {
        let (basis, mean) = pca_basis(teacher, rows, from_dim, to_dim);
        (basis, mean, ProjectionMethod::PcaDown)
    };
    let mut table = vec![0f32; rows * to_dim];
    let (mut energy, mut lost) = (0.0f64, 0.0f64);
    let mut x = vec![0.0f64; from_dim];
    let mut e_s = vec![0.0f64; to_dim];
    for (row, out) in teacher
        .chunks_exact(from_dim)
        .zip(table.chunks_exact_mut(to_dim))
    {
        for (i, &v) in row.iter().enumerate() {
            x[i] = f64::from(v) - mean[i];
            energy += f64::from(v) * f64::from(v);
        }
        for (j, e) in e_s.iter_mut().enumerate() {
            *e = x
                .iter()
                .enumerate()
                .map(|(i, &xi)| xi * basis[(i, j)])
                .sum();
        }
        for (i, &v) in row.iter().enumerate() {
            let rec: f64 = e_s
                .iter()
                .enumerate()
                .map(|(j, &e)| e * basis[(i, j)])
                .sum::<f64>()
                + mean[i];
            lost += (f64::from(v) - rec).powi(2);
        }
        for (o, &e) in out.iter_mut().zip(&e_s) {
            *o = e as f32;
        }
    }
    let rel_error = if energy > 0.0 {
        (lost / energy).sqrt()
    } else {
        0.0
    };
    Ok(Projected {
        table,
        method,
        rel_error,
    })
}

/// `W` (`from x to`, from < to) with orthonormal rows: the first `from` rows of `Q` from the QR
/// decomposition of a `to x to` Gaussian matrix.
fn orthonormal_rows(from: usize, to: usize, rng: &mut impl Rng) -> DMatrix<f64> {
    let g = DMatrix::from_fn(to, to, |_, _| rng.sample::<f64, _>(StandardNormal));
    let q = g.qr().q();
    q.rows(0, from).into_owned()
}

/// The top `k` principal directions of the table's centred rows (`d x k`, a zero column where
/// the rank is below `k`) and the row mean. Mean and covariance are summed a row at a time.
fn pca_basis(table: &[f32], rows: usize, d: usize, k: usize) -> (DMatrix<f64>, Vec<f64>) {
    let mut mean = vec![0.0f64; d];
    for row in table.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    if rows > 0 {
        mean.iter_mut().for_each(|m| *m /= rows as f64);
    }
    let mut cov = DMatrix::<f64>::zeros(d, d);
    let mut x = vec![0.0f64; d];
    for row in table.chunks_exact(d) {
        for (i, &v) in row.iter().enumerate() {
            x[i] = f64::from(v) - mean[i];
        }
        for a in 0..d {
            for b in 0..d {
                cov[(a, b)] += x[a] * x[b];
            }
        }
    }
    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    // Directions with no variance are dropped: the projection is zero-padded there.
    let scale = eig.eigenvalues.iter().fold(0.0f64, |m, &v| m.max(v.abs()));
    let mut v_k = DMatrix::<f64>::zeros(d, k);
    for (j, &i) in order.iter().take(k).enumerate() {
        if eig.eigenvalues[i] > scale * 1e-12 {
            v_k.set_column(j, &eig.eigenvectors.column(i));
        }
    }
    (v_k, mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn random_table(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * dim)
            .map(|_| rng.sample::<f32, _>(StandardNormal))
            .collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    #[test]
    fn equal_sizes_copy_the_table_exactly() {
        let t = random_table(20, 8, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = project_table(&t, 20, 8, 8, &mut rng).unwrap();
        assert_eq!(p.method, ProjectionMethod::Copy);
        assert_eq!(p.table, t);
        assert_eq!(p.rel_error, 0.0);
    }

    #[test]
    fn orthogonal_up_projection_preserves_inner_products_and_reconstructs() {
        let (rows, from, to) = (30, 8, 16);
        let t = random_table(rows, from, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let p = project_table(&t, rows, from, to, &mut rng).unwrap();
        assert_eq!(p.method, ProjectionMethod::OrthogonalUp);
        assert_eq!(p.table.len(), rows * to);
        for i in 0..rows {
            for j in 0..rows {
                let before = dot(&t[i * from..(i + 1) * from], &t[j * from..(j + 1) * from]);
                let after = dot(
                    &p.table[i * to..(i + 1) * to],
                    &p.table[j * to..(j + 1) * to],
                );
                assert!(
                    (before - after).abs() < 1e-5 * before.abs().max(1.0),
                    "ids {i},{j}: {before} vs {after}"
                );
            }
        }
        assert!(p.rel_error < 1e-6, "reconstruction error {}", p.rel_error);
    }

    #[test]
    fn pca_error_is_the_discarded_share_of_energy() {
        // Centred columns with known, orthogonal variances: keeping the top k leaves exactly the
        // rest, and the mean is zero so the relative error is sqrt(discarded / total).
        let variances = [9.0f64, 4.0, 1.0, 0.25];
        let rows = 8;
        let mut t = vec![0f32; rows * 4];
        // Orthogonal +-1 patterns (Walsh rows) with zero mean give orthogonal centred columns.
        let walsh = [
            [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0],
            [1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0],
            [1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0],
            [1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0],
        ];
        for r in 0..rows {
            for c in 0..4 {
                t[r * 4 + c] = (walsh[c][r] * variances[c].sqrt()) as f32;
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = project_table(&t, rows, 4, 2, &mut rng).unwrap();
        assert_eq!(p.method, ProjectionMethod::PcaDown);
        let total: f64 = variances.iter().sum();
        let expected = ((variances[2] + variances[3]) / total).sqrt();
        assert!(
            (p.rel_error - expected).abs() < 1e-6,
            "{} vs {expected}",
            p.rel_error
        );
    }

    #[test]
    fn pca_pads_with_zeros_when_rank_is_below_target() {
        // Rank 1 table (all rows multiples of one vector) down from 6 to 3 columns.
        let rows = 5;
        let mut t = vec![0f32; rows * 6];
        for r in 0..rows {
            for c in 0..6 {
                t[r * 6 + c] = (r as f32 - 2.0) * (c as f32 + 1.0);
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = project_table(&t, rows, 6, 3, &mut rng).unwrap();
        assert!(p.rel_error < 1e-6);
        for r in 0..rows {
            assert_eq!(p.table[r * 3 + 1], 0.0);
            assert_eq!(p.table[r * 3 + 2], 0.0);
        }
    }

    #[test]
    fn mismatched_shapes_are_a_clear_error() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let err = project_table(&[0.0; 5], 2, 3, 4, &mut rng).unwrap_err();
        assert!(err.to_string().contains("expected 2 x 3"));
    }
}
