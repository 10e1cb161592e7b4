//! Losses on logits: numerically stable BCE and the CrossAdapt distillation loss.
//!
//! `BCE(y, z) = relu(z) - z*y + log(1 + exp(-|z|))`, which never overflows (candle-nn's
//! version overflows near |z| = 20). Distillation, exactly as docs/method.md:
//! `L = a * T^2 * BCE(sigmoid(z_t/T), z_s/T) + (1 - a) * BCE(y, z_s)`, means over the batch.

use anyhow::Result;
use candle_core::Tensor;

/// Mean stable BCE of logits `z` against targets `y` in [0, 1] (same shape).
pub fn bce_with_logits(z: &Tensor, y: &Tensor) -> Result<Tensor> {
    let relu = z.relu()?;
    let zy = (z * y)?;
    let soft = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok(((relu - zy)? + soft)?.mean_all()?)
}

/// The distillation loss of student logits `z_s` given teacher logits `z_t` and labels `y`.
/// `label_offset` is added to the student's logit in the label term only: the exact log-odds
/// correction for rows drawn with a shifted base rate (0 for unbiased rows).
pub fn distill_loss(
    z_s: &Tensor,
    z_t: &[f32],
    y: &Tensor,
    alpha: f32,
    temperature: f32,
    label_offset: f32,
) -> Result<Tensor> {
    let t = temperature as f64;
    let soft: Vec<f32> = z_t.iter().map(|&z| sigmoid(z / temperature)).collect();
    let soft = Tensor::from_vec(soft, z_s.shape(), z_s.device())?;
    let kd = bce_with_logits(&(z_s / t)?, &soft)?;
    let hard = if label_offset == 0.0 {
        bce_with_logits(z_s, y)?
    } else {
        bce_with_logits(&(z_s + label_offset as f64)?, y)?
    };
    Ok(((kd * (alpha as f64 * t * t))? + (hard * (1.0 - alpha as f64))?)?)
}

/// Logistic function.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Stable BCE of one logit, in f64 (reference for tests and reports).
pub fn bce_scalar(z: f64, y: f64) -> f64 {
    z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap()
    }

    #[test]
    fn bce_matches_hand_values_and_survives_huge_logits() {
        // z = 0: ln 2; z = 2, y = 1: ln(1 + e^-2); z = -3, y = 1: 3 + ln(1 + e^-3).
        let z = t(&[0.0, 2.0, -3.0]);
        let y = t(&[1.0, 1.0, 1.0]);
        let want =
            (2f64.ln() + (1.0 + (-2f64).exp()).ln() + 3.0 + (1.0 + (-3f64).exp()).ln()) / 3.0;
        let got = bce_with_logits(&z, &y).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let big = bce_with_logits(&t(&[80.0, -80.0]), &t(&[0.0, 1.0]))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((big - 80.0).abs() < 1e-3, "{big}");
    }

    #[test]
    fn distill_matches_hand_computation() {
        let (a, temp) = (0.7f32, 4.0f32);
        let zs = [1.0f32, -2.0];
        let zt = [3.0f32, 0.5];
        let y = [1.0f32, 0.0];
        let mut want = 0.0;
        for i in 0..2 {
            let p = 1.0 / (1.0 + (-(zt[i] as f64) / 4.0).exp());
            let kd = bce_scalar(zs[i] as f64 / 4.0, p);
            let hard = bce_scalar(zs[i] as f64, y[i] as f64);
            want += (0.7 * 16.0 * kd + 0.3 * hard) / 2.0;
        }
        let got = distill_loss(&t(&zs), &zt, &t(&y), a, temp, 0.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // alpha = 0 is plain BCE.
        let plain = distill_loss(&t(&zs), &zt, &t(&y), 0.0, temp, 0.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let bce = bce_with_logits(&t(&zs), &t(&y))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((plain - bce).abs() < 1e-6);
    }
}
