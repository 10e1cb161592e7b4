//! Model specs: which architecture, which embedding size, which hidden sizes.
//!
//! The text form is `arch[:key=value,...]`, e.g. `deepfm`, `deepfm:emb=16,hidden=400x400x400`,
//! `fibinet:emb=16`. Every key has a default from the literature (scaled to CPU where noted);
//! `Display` writes every key, so a spec round-trips through `FromStr`.

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The architectures of the zoo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Lr,
    Mlp,
    WideDeep,
    DeepFm,
    Dcn,
    DcnV2,
    XDeepFm,
    AutoInt,
    FiBiNet,
    FinalMlp,
}

impl Arch {
    /// Every architecture, in the order the README lists them.
    pub const ALL: [Arch; 10] = [
        Arch::Lr,
        Arch::Mlp,
        Arch::WideDeep,
        Arch::DeepFm,
        Arch::Dcn,
        Arch::DcnV2,
        Arch::XDeepFm,
        Arch::AutoInt,
        Arch::FiBiNet,
        Arch::FinalMlp,
    ];

    /// The name used in spec strings.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Lr => "lr",
            Arch::Mlp => "mlp",
            Arch::WideDeep => "widedeep",
            Arch::DeepFm => "deepfm",
            Arch::Dcn => "dcn",
            Arch::DcnV2 => "dcnv2",
            Arch::XDeepFm => "xdeepfm",
            Arch::AutoInt => "autoint",
            Arch::FiBiNet => "fibinet",
            Arch::FinalMlp => "finalmlp",
        }
    }

    /// The spec keys this architecture understands.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Arch::Lr => &["emb"],
            Arch::Mlp | Arch::WideDeep | Arch::DeepFm => &["emb", "hidden"],
            Arch::Dcn | Arch::DcnV2 => &["emb", "hidden", "cross"],
            Arch::XDeepFm => &["emb", "hidden", "cin"],
            Arch::AutoInt => &["emb", "hidden", "layers", "heads", "att"],
            Arch::FiBiNet => &["emb", "hidden", "ratio"],
            Arch::FinalMlp => &["emb", "hidden", "hidden2", "heads"],
        }
    }

    fn parse(name: &str) -> Result<Arch> {
        let lower = name.trim().to_ascii_lowercase();
        let alias = match lower.as_str() {
            "wide_deep" | "wide&deep" | "wdl" => "widedeep",
            "dcn_v2" | "dcn-v2" => "dcnv2",
            "fibinet++" | "fibi" => "fibinet",
            "final_mlp" => "finalmlp",
            other => other,
        };
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == alias)
            .ok_or_else(|| {
                let valid: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
                anyhow!(
                    "unknown model architecture `{name}`; valid ones: {}",
                    valid.join(", ")
                )
            })
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model: architecture plus its sizes. Knobs that an architecture does not use keep their
/// defaults and are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub arch: Arch,
    /// Embedding size of every field.
    pub emb_dim: usize,
    /// Hidden sizes of the deep (MLP) part; empty means no deep part where that is optional.
    pub hidden: Vec<usize>,
    /// DCN / DCNv2: number of cross layers.
    pub cross_layers: usize,
    /// xDeepFM: feature maps of each CIN layer.
    pub cin: Vec<usize>,
    /// AutoInt: self-attention layers.
    pub att_layers: usize,
    /// AutoInt: heads per attention layer; FinalMLP: heads of the bilinear fusion.
    pub heads: usize,
    /// AutoInt: attention size (split over the heads).
    pub att_dim: usize,
    /// FiBiNET: SENET reduction ratio.
    pub reduction: usize,
    /// FinalMLP: hidden sizes of the second stream.
    pub hidden2: Vec<usize>,
}

impl ModelSpec {
    /// The literature defaults of one architecture (BARS / FuxiCTR; CIN and attention sizes
    /// scaled down for CPU).
    pub fn default_for(arch: Arch) -> ModelSpec {
        let deep = vec![400, 400, 400];
        let mut s = ModelSpec {
            arch,
            emb_dim: 16,
            hidden: deep.clone(),
            cross_layers: 3,
            cin: vec![64, 64, 64],
            att_layers: 3,
            heads: 2,
            att_dim: 32,
            reduction: 3,
            hidden2: vec![400],
        };
        match arch {
            Arch::Lr => {
                s.emb_dim = 1;
                s.hidden = vec![];
            }
            Arch::AutoInt => s.hidden = vec![],
            Arch::FinalMlp => s.heads = 1,
            _ => {}
        }
        s
    }

    /// Checks sizes that would make a model impossible to build.
    pub fn validate(&self) -> Result<()> {
        if self.emb_dim == 0 {
            bail!("model spec `{self}`: emb must be at least 1");
        }
        if self.hidden.contains(&0) || self.hidden2.contains(&0) || self.cin.contains(&0) {
            bail!("model spec `{self}`: layer sizes must be at least 1");
        }
        match self.arch {
            Arch::Mlp | Arch::WideDeep | Arch::DeepFm | Arch::FiBiNet if self.hidden.is_empty() => {
                bail!(
                    "model spec `{self}`: {} needs at least one hidden layer",
                    self.arch
                )
            }
            Arch::XDeepFm if self.cin.is_empty() => {
                bail!("model spec `{self}`: xdeepfm needs at least one CIN layer")
            }
            Arch::AutoInt
                if self.att_layers == 0
                    || self.heads == 0
                    || !self.att_dim.is_multiple_of(self.heads) =>
            {
                bail!("model spec `{self}`: autoint needs layers >= 1 and att divisible by heads")
            }
            Arch::FinalMlp => {
                let (a, b) = (
                    self.hidden.last().copied().unwrap_or(0),
                    self.hidden2.last().copied().unwrap_or(0),
                );
                if a == 0 || b == 0 || self.heads == 0 || a % self.heads != 0 || b % self.heads != 0
                {
                    bail!("model spec `{self}`: finalmlp needs two non-empty streams whose last sizes are divisible by heads");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Layer sizes written as `400x400x400` (or `none`).
pub fn parse_sizes(key: &str, value: &str) -> Result<Vec<usize>> {
    if value.is_empty() || value == "none" {
        return Ok(vec![]);
    }
    value
        .split(['x', '-'])
        .map(|p| {
            p.trim().parse::<usize>().with_context(|| {
                format!("`{key}={value}`: `{p}` is not a layer size (e.g. 400x400x400)")
            })
        })
        .collect()
}

fn parse_one(key: &str, value: &str) -> Result<usize> {
    value
        .trim()
        .parse::<usize>()
        .with_context(|| format!("`{key}={value}` is not a whole number"))
}

fn sizes(v: &[usize]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

impl FromStr for ModelSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, rest) = s.split_once(':').unwrap_or((s, ""));
        let arch = Arch::parse(name)?;
        let mut spec = ModelSpec::default_for(arch);
        for pair in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("model spec `{s}`: `{pair}` is not key=value"))?;
            let key = key.trim();
            if !arch.keys().contains(&key) {
                bail!(
                    "model spec `{s}`: unknown key `{key}` for {arch}; valid keys: {}",
                    arch.keys().join(", ")
                );
            }
            let value = value.trim();
            match key {
                "emb" => spec.emb_dim = parse_one(key, value)?,
                "hidden" => spec.hidden = parse_sizes(key, value)?,
                "hidden2" => spec.hidden2 = parse_sizes(key, value)?,
                "cross" => spec.cross_layers = parse_one(key, value)?,
                "cin" => spec.cin = parse_sizes(key, value)?,
                "layers" => spec.att_layers = parse_one(key, value)?,
                "heads" => spec.heads = parse_one(key, value)?,
                "att" => spec.att_dim = parse_one(key, value)?,
                "ratio" => spec.reduction = parse_one(key, value)?,
                _ => bail!("model spec `{s}`: key `{key}` is not handled"),
            }
        }
        spec.validate()?;
        Ok(spec)
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.arch)?;
        let parts: Vec<String> = self
            .arch
            .keys()
            .iter()
            .map(|k| {
                let v = match *k {
                    "emb" => self.emb_dim.to_string(),
                    "hidden" => sizes(&self.hidden),
                    "hidden2" => sizes(&self.hidden2),
                    "cross" => self.cross_layers.to_string(),
                    "cin" => sizes(&self.cin),
                    "layers" => self.att_layers.to_string(),
                    "heads" => self.heads.to_string(),
                    "att" => self.att_dim.to_string(),
                    _ => self.reduction.to_string(),
                };
                format!("{k}={v}")
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_round_trips_through_text() {
        for arch in Arch::ALL {
            let spec = ModelSpec::default_for(arch);
            let text = spec.to_string();
            let back: ModelSpec = text.parse().unwrap();
            assert_eq!(back, spec, "{text}");
        }
    }

    #[test]
    fn keys_override_defaults() {
        let s: ModelSpec = "deepfm:emb=8,hidden=64x32".parse().unwrap();
        assert_eq!(s.arch, Arch::DeepFm);
        assert_eq!(s.emb_dim, 8);
        assert_eq!(s.hidden, vec![64, 32]);
        let s: ModelSpec = "DCN_V2:cross=2".parse().unwrap();
        assert_eq!(s.cross_layers, 2);
    }

    #[test]
    fn unknown_arch_or_key_lists_the_valid_ones() {
        let e = "resnet".parse::<ModelSpec>().unwrap_err().to_string();
        assert!(
            e.contains("resnet") && e.contains("deepfm") && e.contains("finalmlp"),
            "{e}"
        );
        let e = "deepfm:cin=3".parse::<ModelSpec>().unwrap_err().to_string();
        assert!(e.contains("cin") && e.contains("emb, hidden"), "{e}");
        let e = format!("{:#}", "mlp:hidden=4xq".parse::<ModelSpec>().unwrap_err());
        assert!(e.contains("q"), "{e}");
        assert!("mlp:emb=0".parse::<ModelSpec>().is_err());
        assert!("mlp:emb".parse::<ModelSpec>().is_err());
    }
}
