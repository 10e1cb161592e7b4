//! The tensor names of a bundle: crossadapt's parameter names mapped to those of the PyTorch
//! twins in `benches/pytorch_zoo.py` (`Twin`), so `model.load_state_dict(load_file(...))` works.
//!
//! crossadapt stores a linear layer as `NAME.w` of shape `(in, out)` (the forward is `x W + b`)
//! and `NAME.b`; PyTorch's `nn.Linear` holds `weight` as `(out, in)`. Linear weights are
//! therefore transposed on the way out and back on the way in; every other tensor keeps its
//! shape. docs/bundles.md has the same table for readers.

use anyhow::{bail, Result};

use crate::model::Arch;

/// One dense parameter's bundle name and whether its matrix is transposed in the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorchName {
    pub name: String,
    pub transposed: bool,
}

/// Bundle name of the embedding table: all categorical fields' rows, field after field.
pub const TABLE: &str = "table.weight";
/// Bundle name of the first row of each field inside [`TABLE`] (int64, as the twins' buffer).
pub const OFFSETS: &str = "offsets";

fn plain(name: impl Into<String>) -> Result<TorchName> {
    Ok(TorchName {
        name: name.into(),
        transposed: false,
    })
}

/// `prefix.{i}` with `i` an index: `Some(i)`.
fn index_after<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then_some(rest)
}

/// The bundle name of crossadapt's dense parameter `name` in architecture `arch`.
pub fn torch_name(arch: Arch, name: &str) -> Result<TorchName> {
    // Parameters that are not linear layers keep their shape.
    if name == "num_emb" {
        return plain("num_emb");
    }
    match arch {
        Arch::Dcn => {
            if let Some(rest) = name.strip_prefix("cross.") {
                if let Some(i) = rest.strip_suffix(".w") {
                    return plain(format!("cross_w.{i}"));
                }
                if let Some(i) = rest.strip_suffix(".b") {
                    return plain(format!("cross_b.{i}"));
                }
            }
        }
        Arch::XDeepFm if index_after(name, "cin").is_some() => return plain(name),
        Arch::FiBiNet => match name {
            "bilinear.emb" => return plain("bilinear.0"),
            "bilinear.senet" => return plain("bilinear.1"),
            _ => {}
        },
        Arch::FinalMlp if name == "fusion.w12" => return plain("fusion"),
        _ => {}
    }
    let (base, suffix) = match name.rsplit_once('.') {
        Some((b, "w")) => (b, "weight"),
        Some((b, "b")) => (b, "bias"),
        _ => bail!(
            "{arch}: parameter `{name}` has no bundle name (this build's mapping table lacks it)"
        ),
    };
    let base = linear_base(base);
    Ok(TorchName {
        name: format!("{base}.{suffix}"),
        transposed: suffix == "weight",
    })
}

/// The twin's module path of crossadapt's linear layer `base`.
fn linear_base(base: &str) -> String {
    for tower in ["deep", "stream1", "stream2"] {
        if let Some(i) = index_after(base, tower).and_then(|i| i.parse::<usize>().ok()) {
            // The twins' MLPs are `nn.Sequential(Linear, ReLU, Linear, ReLU, ...)` in `net`.
            let module = if tower == "deep" { "mlp" } else { tower };
            return format!("{module}.net.{}", 2 * i);
        }
    }
    if let Some(rest) = base.strip_prefix("att.") {
        if let Some((layer, part)) = rest.split_once('.') {
            let k = match part {
                "q" => Some(0),
                "k" => Some(1),
                "v" => Some(2),
                "res" => Some(3),
                _ => None,
            };
            if let Some(k) = k {
                return format!("att.{layer}.{k}");
            }
        }
    }
    match base {
        "first_order" | "wide" => "first".into(),
        "senet.squeeze" => "squeeze".into(),
        "senet.excite" => "excite".into(),
        "fusion.w1" => "lin1".into(),
        "fusion.w2" => "lin2".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{CatField, FeatureSpec};
    use crate::model::{build_model, ModelSpec};

    #[test]
    fn deepfm_and_dcn_names_are_the_twins() {
        let n = |a, s| torch_name(a, s).unwrap();
        assert_eq!(n(Arch::DeepFm, "first_order.w").name, "first.weight");
        assert!(n(Arch::DeepFm, "first_order.w").transposed);
        assert_eq!(n(Arch::DeepFm, "deep.2.b").name, "mlp.net.4.bias");
        assert!(!n(Arch::DeepFm, "deep.2.b").transposed);
        assert_eq!(n(Arch::DeepFm, "deep_out.w").name, "deep_out.weight");
        assert_eq!(n(Arch::Dcn, "cross.1.w").name, "cross_w.1");
        assert!(!n(Arch::Dcn, "cross.1.w").transposed);
        assert_eq!(n(Arch::DcnV2, "cross.1.w").name, "cross.1.weight");
        assert_eq!(n(Arch::AutoInt, "att.2.res.w").name, "att.2.3.weight");
        assert_eq!(n(Arch::FinalMlp, "fusion.w1.w").name, "lin1.weight");
        assert_eq!(n(Arch::FinalMlp, "fusion.w12").name, "fusion");
        assert!(torch_name(Arch::Mlp, "mystery").is_err());
    }

    #[test]
    fn every_architecture_maps_every_parameter_to_a_distinct_name() {
        let features = FeatureSpec {
            cat: (0..3)
                .map(|i| CatField {
                    name: format!("f{i}"),
                    vocab: 5,
                })
                .collect(),
            num: vec!["x".into()],
            user_field: None,
        };
        for arch in Arch::ALL {
            let spec = ModelSpec::default_for(arch);
            let model = build_model(&spec, &features, 1).unwrap();
            let mut seen = std::collections::HashSet::new();
            for name in model.dense().names() {
                let t = torch_name(arch, name).unwrap();
                assert!(seen.insert(t.name.clone()), "{arch}: {} twice", t.name);
                assert!(t.name != TABLE && t.name != OFFSETS);
            }
        }
    }
}
