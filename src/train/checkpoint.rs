//! Checkpoints: weights, optimiser state and pending gradients in one safetensors file whose
//! metadata carries a JSON header (schema version, model spec, feature schema, counters).
//! Written atomically (temp file in the same folder, fsync, rename).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::optim::{EmbOptimizer, RowGrads};
use super::{TrainConfig, Trainer};
use crate::atomic::write_atomic;
use crate::data::FeatureSpec;
use crate::model::{build_model, ModelSpec};

/// Version of the checkpoint layout; bumped on any incompatible change.
pub const CHECKPOINT_SCHEMA_VERSION: u32 = 1;
const HEADER_KEY: &str = "crossadapt";

/// The JSON header stored in the safetensors metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub schema_version: u32,
    pub spec: String,
    pub features: FeatureSpec,
    pub emb_optimizer: EmbOptimizer,
    pub steps: u64,
    pub dense_t: u64,
    pub emb_t: u64,
    pub accumulated: u32,
    pub dense_pending: bool,
    pub frozen_emb: bool,
    pub frozen_dense: bool,
    pub dense_names: Vec<String>,
    /// Fingerprint of the vocabulary (id -> row map) the table was trained under; absent in
    /// checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<String>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_entry(name: String, v: &[f32]) -> Entry {
    Entry {
        name,
        dtype: Dtype::F32,
        shape: vec![v.len()],
        bytes: f32_bytes(v),
    }
}

impl Trainer {
    /// Saves weights, optimiser state and pending gradients to `path` (safetensors), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self
            .encode()
            .with_context(|| format!("encoding checkpoint {}", path.display()))?;
        write_atomic(path, &bytes)
    }

    /// The bytes [`save`](Self::save) writes: a snapshot of the trainer that a background
    /// writer can put on disk while training goes on.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let model = self.model.as_ref();
        let dense = model.dense();
        let header = CheckpointHeader {
            schema_version: CHECKPOINT_SCHEMA_VERSION,
            spec: model.spec().to_string(),
            features: model.features().clone(),
            emb_optimizer: self.emb_state.kind,
            steps: self.steps,
            dense_t: self.dense_t,
            emb_t: self.emb_t,
            accumulated: self.accumulated,
            dense_pending: self.dense_pending,
            frozen_emb: self.frozen_emb,
            frozen_dense: self.frozen_dense,
            dense_names: dense.names().to_vec(),
            vocabulary: self.vocabulary.clone(),
        };
        let mut entries = vec![
            f32_entry("emb.table".into(), &model.embeddings().data),
            f32_entry("emb.opt.m".into(), &self.emb_state.m),
        ];
        if !self.emb_state.v.is_empty() {
            entries.push(f32_entry("emb.opt.v".into(), &self.emb_state.v));
        }
        if !self.emb_acc.is_empty() {
            entries.push(Entry {
                name: "emb.acc.rows".into(),
                dtype: Dtype::U32,
                shape: vec![self.emb_acc.rows.len()],
                bytes: u32_bytes(&self.emb_acc.rows),
            });
            entries.push(f32_entry("emb.acc.grad".into(), &self.emb_acc.grad));
        }
        for (i, (name, var)) in dense.names().iter().zip(dense.vars()).enumerate() {
            let w = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            entries.push(f32_entry(format!("dense.w.{name}"), &w));
            entries.push(f32_entry(format!("dense.m.{name}"), &self.dense_m[i]));
            entries.push(f32_entry(format!("dense.v.{name}"), &self.dense_v[i]));
            if self.dense_pending {
                entries.push(f32_entry(format!("dense.acc.{name}"), &self.dense_acc[i]));
            }
        }
        let views = entries
            .iter()
            .map(|e| {
                Ok((
                    e.name.clone(),
                    TensorView::new(e.dtype, e.shape.clone(), &e.bytes)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = HashMap::from([(HEADER_KEY.to_string(), serde_json::to_string(&header)?)]);
        Ok(safetensors::serialize(views, Some(meta))?)
    }

    /// Reads the header of a checkpoint without loading it.
    pub fn read_header(path: &Path) -> Result<CheckpointHeader> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading checkpoint {}", path.display()))?;
        header_of(&bytes, path)
    }

    /// Restores a trainer saved by [`save`](Self::save); learning rates and threads come from
    /// `cfg`. A file of another schema, a different optimiser kind or missing/misshapen tensors
    /// is an error naming the file.
    pub fn load(path: &Path, cfg: &TrainConfig) -> Result<Trainer> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading checkpoint {}", path.display()))?;
        let header = header_of(&bytes, path)?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| {
            anyhow!(
                "checkpoint {} is not a valid safetensors file: {e}",
                path.display()
            )
        })?;
        if header.emb_optimizer != cfg.emb_optimizer {
            bail!(
                "checkpoint {} holds {:?} embedding-optimiser state but the config asks for {:?}",
                path.display(),
                header.emb_optimizer,
                cfg.emb_optimizer
            );
        }
        let spec: ModelSpec = header.spec.parse().with_context(|| {
            format!(
                "checkpoint {}: bad model spec in the header",
                path.display()
            )
        })?;
        let model = build_model(&spec, &header.features, 0)
            .with_context(|| format!("checkpoint {}: rebuilding the model", path.display()))?;
        if model.dense().names() != header.dense_names.as_slice() {
            bail!(
                "checkpoint {} was written by a different version of {}: its dense parameters do not match",
                path.display(),
                spec.arch
            );
        }
        let mut tr = Trainer::new(model, cfg)?;
        let read = |name: &str, len: usize| read_f32(&file, name, len, path);
        let table_len = tr.model.embeddings().data.len();
        tr.model.embeddings_mut().data = read("emb.table", table_len)?;
        tr.emb_state.m = read("emb.opt.m", table_len)?;
        if cfg.emb_optimizer == EmbOptimizer::Adam {
            tr.emb_state.v = read("emb.opt.v", table_len)?;
        }
        if file.names().contains(&"emb.acc.rows") {
            let rows_view = file.tensor("emb.acc.rows")?;
            if rows_view.dtype() != Dtype::U32 {
                bail!("checkpoint {}: emb.acc.rows must be u32", path.display());
            }
            let rows: Vec<u32> = rows_view
                .data()
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let (dim, table_rows) = (tr.model.embeddings().dim, tr.model.embeddings().rows());
            let grad = read("emb.acc.grad", rows.len() * dim)?;
            tr.emb_acc = RowGrads::from_parts(dim, table_rows, rows, grad)
                .with_context(|| format!("checkpoint {}: emb.acc", path.display()))?;
        }
        let names = tr.model.dense().names().to_vec();
        for (i, name) in names.iter().enumerate() {
            let var = &tr.model.dense().vars()[i];
            let n = var.elem_count();
            let w = read(&format!("dense.w.{name}"), n)?;
            var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu)?)?;
            tr.dense_m[i] = read(&format!("dense.m.{name}"), n)?;
            tr.dense_v[i] = read(&format!("dense.v.{name}"), n)?;
            if header.dense_pending {
                tr.dense_acc[i] = read(&format!("dense.acc.{name}"), n)?;
            }
        }
        tr.steps = header.steps;
        tr.dense_t = header.dense_t;
        tr.emb_t = header.emb_t;
        tr.accumulated = header.accumulated;
        tr.dense_pending = header.dense_pending;
        tr.frozen_emb = header.frozen_emb;
        tr.frozen_dense = header.frozen_dense;
        tr.vocabulary = header.vocabulary;
        Ok(tr)
    }
}

fn header_of(bytes: &[u8], path: &Path) -> Result<CheckpointHeader> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
        anyhow!(
            "checkpoint {} is not a valid safetensors file: {e}",
            path.display()
        )
    })?;
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(HEADER_KEY))
        .ok_or_else(|| {
            anyhow!(
                "checkpoint {} has no crossadapt header (not written by crossadapt)",
                path.display()
            )
        })?;
    let header: CheckpointHeader = serde_json::from_str(text)
        .with_context(|| format!("checkpoint {}: unreadable header", path.display()))?;
    if header.schema_version != CHECKPOINT_SCHEMA_VERSION {
        bail!(
            "checkpoint {} has schema version {}, this build reads version {}",
            path.display(),
            header.schema_version,
            CHECKPOINT_SCHEMA_VERSION
        );
    }
    Ok(header)
}

fn read_f32(file: &SafeTensors, name: &str, len: usize, path: &Path) -> Result<Vec<f32>> {
    let view = file
        .tensor(name)
        .map_err(|_| anyhow!("checkpoint {} lacks tensor `{name}`", path.display()))?;
    if view.dtype() != Dtype::F32 || view.data().len() != len * 4 {
        bail!(
            "checkpoint {}: tensor `{name}` has {} bytes of {:?}, expected {len} f32 values",
            path.display(),
            view.data().len(),
            view.dtype()
        );
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
