//! Bundles: a model with everything needed to feed it, in one folder another stack can read
//! and write (docs/bundles.md). One format, two directions: a teacher trained elsewhere comes
//! in (`teacher.bundle=PATH`), a switched student goes out (`crossadapt export --bundle`).
//!
//! ```text
//! DIR/bundle.json        format, role, model spec, data schema and its fingerprint, the
//!                        vocabulary's field sizes and numeric scaling, tensor table, file
//!                        sizes and SHA-256, provenance
//! DIR/model.safetensors  weights under the PyTorch twins' names (names.rs)
//! DIR/vocab.safetensors  one U64 tensor of raw keys per categorical field, in id order
//! ```
//!
//! Tables are streamed field by field in both directions (stio.rs): writing never holds a
//! second copy of a table, and exporting from a checkpoint copies byte ranges file to file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::source::DaySource;
use crate::data::vocab::{FieldVocab, NumScale, Vocabulary};
use crate::data::{Batch, CatField, FeatureSpec, FIRST_ID, OOV_ID, PAD_ID};
use crate::model::{build_model, CtrModel, ModelSpec};
use crate::train::{TrainConfig, Trainer};

pub mod names;
pub mod stio;

use stio::{Dtype, StreamReader, StreamWriter};

/// The `format` of every bundle.json.
pub const FORMAT: &str = "crossadapt-bundle";
/// Version of the layout; bumped on any incompatible change.
pub const VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "bundle.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const VOCAB_FILE: &str = "vocab.safetensors";

/// What the columns of the data are: the part of a source a model depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSchema {
    pub categorical: Vec<String>,
    pub numeric: Vec<String>,
    pub user: Option<String>,
}

impl DataSchema {
    pub fn of_source(source: &dyn DaySource) -> DataSchema {
        DataSchema {
            categorical: source.cat_fields(),
            numeric: source.num_fields(),
            user: source.user_field(),
        }
    }

    /// `sha256:` + hex SHA-256 of the compact JSON `{"categorical":[...],"numeric":[...],
    /// "user":...}` (keys in that order, no spaces, non-ASCII unescaped).
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("sha256:{}", stio::hex(&Sha256::digest(&json)))
    }

    /// One sentence saying how `self` (the data) differs from `other` (the bundle's).
    fn difference(&self, other: &DataSchema) -> String {
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        if self.categorical != other.categorical {
            format!(
                "categorical fields {} against the bundle's {}",
                list(&self.categorical),
                list(&other.categorical)
            )
        } else if self.numeric != other.numeric {
            format!(
                "numeric fields {} against the bundle's {}",
                list(&self.numeric),
                list(&other.numeric)
            )
        } else {
            format!(
                "user field {:?} against the bundle's {:?}",
                self.user, other.user
            )
        }
    }
}

/// Which direction the bundle was written for (informational: both load the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Teacher,
    Student,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldInfo {
    pub name: String,
    /// Vocabulary entries (ids `FIRST_ID ..`).
    pub entries: usize,
    /// Rows of the field in the table: entries + padding + OOV.
    pub rows: usize,
    /// First row of the field in `table.weight`.
    pub offset: usize,
    /// Share of the model's own training rows whose key for this field fell to the OOV row.
    /// A run importing the bundle compares it with its first retained day
    /// ([`Bundle::check_oov`]): a field that jumps from rare to mostly OOV means the data's
    /// keys are hashed or formatted otherwise than the bundle's. Absent in older bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_oov_share: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericInfo {
    pub name: String,
    /// Model input = (value - mean) / std; non-finite results become 0. Kept as written (f64)
    /// so a bundle passed through a session and exported again keeps its figures; crossadapt
    /// computes the scaling in f32.
    pub mean: f64,
    pub std: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabInfo {
    pub file: String,
    pub pad_id: u32,
    pub oov_id: u32,
    pub first_id: u32,
    /// What happens to a raw key the vocabulary does not hold.
    pub unseen: String,
    pub min_count: u32,
    pub categorical: Vec<FieldInfo>,
    pub numeric: Vec<NumericInfo>,
    /// crossadapt's fingerprint of the whole id -> row map (recomputed on load; informational).
    #[serde(default)]
    pub fingerprint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorEntry {
    /// Name in model.safetensors (the PyTorch twin's).
    pub name: String,
    pub shape: Vec<usize>,
    /// crossadapt's parameter name.
    pub crossadapt: String,
    /// Whether the bundle holds the transpose of crossadapt's `(in, out)` matrix.
    #[serde(default)]
    pub transposed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    #[serde(default)]
    pub written_by: String,
    #[serde(default)]
    pub created: Option<String>,
    /// `crossadapt train`, `session`, or another stack's name.
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// SHA-256 of the session's config.toml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    /// Days the model was trained on, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<String>,
    /// The data config the model was trained on (crossadapt's `data` table), so `predict`
    /// can read the same source by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// `bundle.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub role: Role,
    /// crossadapt model spec, every key written (`dcn:emb=16,hidden=128x64,cross=3`).
    pub model: String,
    pub schema: DataSchema,
    pub schema_fingerprint: String,
    pub vocabulary: VocabInfo,
    pub weights_file: String,
    /// The tensors of the weights file (informational: loading checks names and shapes
    /// against the model spec).
    #[serde(default)]
    pub tensors: Vec<TensorEntry>,
    /// Size and SHA-256 of each file; checked when present.
    #[serde(default)]
    pub files: BTreeMap<String, FileDigest>,
    #[serde(default)]
    pub provenance: Provenance,
}

/// Where the weights of a bundle being written come from.
pub enum Weights<'a> {
    /// A live model.
    Model(&'a dyn CtrModel),
    /// A trainer checkpoint file (crossadapt's own layout), streamed from disk.
    Checkpoint(&'a Path),
}

/// The dense parameters of `spec` on `features`, names and shapes, without building the
/// embedding table (dense shapes depend on the field counts only).
fn dense_shapes(spec: &ModelSpec, features: &FeatureSpec) -> Result<Vec<(String, Vec<usize>)>> {
    let small = FeatureSpec {
        cat: features
            .cat
            .iter()
            .map(|f| CatField {
                name: f.name.clone(),
                vocab: FIRST_ID as usize,
            })
            .collect(),
        num: features.num.clone(),
        user_field: features.user_field.clone(),
    };
    let model = build_model(spec, &small, 0)?;
    let dense = model.dense();
    Ok(dense
        .names()
        .iter()
        .zip(dense.vars())
        .map(|(n, v)| (n.clone(), v.dims().to_vec()))
        .collect())
}

/// `(in, out)` row-major to `(out, in)` row-major.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// The tensor table of a bundle for `spec` on `features`.
pub fn tensor_table(spec: &ModelSpec, features: &FeatureSpec) -> Result<Vec<TensorEntry>> {
    let mut out = vec![
        TensorEntry {
            name: names::TABLE.into(),
            shape: vec![features.total_rows(), spec.emb_dim],
            crossadapt: "emb.table".into(),
            transposed: false,
        },
        TensorEntry {
            name: names::OFFSETS.into(),
            shape: vec![features.num_cat()],
            crossadapt: "emb.offsets".into(),
            transposed: false,
        },
    ];
    for (name, shape) in dense_shapes(spec, features)? {
        let t = names::torch_name(spec.arch, &name)?;
        let shape = match (t.transposed, shape.as_slice()) {
            (true, [a, b]) => vec![*b, *a],
            (true, _) => bail!("{}: `{name}` is not a matrix", spec.arch),
            (false, _) => shape,
        };
        out.push(TensorEntry {
            name: t.name,
            shape,
            crossadapt: name,
            transposed: t.transposed,
        });
    }
    Ok(out)
}

/// Everything a bundle holds but the weights.
pub struct BundleContent<'a> {
    pub role: Role,
    pub spec: &'a ModelSpec,
    pub vocab: &'a Vocabulary,
    pub schema: &'a DataSchema,
    pub provenance: Provenance,
    /// Per categorical field, the share of the model's training rows that fell to OOV
    /// ([`OovCount`]); `None` leaves the record out.
    pub train_oov_share: Option<Vec<f64>>,
    /// The bundle the vocabulary came from (a session run with `teacher.bundle`): its numeric
    /// scaling is copied at the precision it was written with.
    pub origin: Option<&'a Manifest>,
}

/// Writes a bundle into `dir`, which must not exist yet (or be an empty folder). The files are
/// written into a hidden sibling folder that is renamed into place once complete.
pub fn write(dir: &Path, content: BundleContent<'_>, weights: Weights<'_>) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            bail!(
                "{} already exists; pick another folder or remove it",
                dir.display()
            );
        }
        std::fs::remove_dir(dir).with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    let parent = crate::atomic::parent_dir(dir);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".bundle-staging-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a staging folder in {}", parent.display()))?;
    let manifest = write_files(staging.path(), content, weights)?;
    let json = serde_json::to_vec_pretty(&manifest)?;
    let path = staging.path().join(MANIFEST_FILE);
    std::fs::File::create(&path)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, &json)?;
            f.sync_all()
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The staging folder is private (0700); the bundle is for others to read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot write {}", dir.display()))?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).with_context(|| format!("cannot move the bundle into {}", dir.display()));
    }
    crate::atomic::sync_dir(parent)
}

fn write_files(dir: &Path, c: BundleContent<'_>, weights: Weights<'_>) -> Result<Manifest> {
    let features = c.vocab.feature_spec();
    let schema_of_vocab = DataSchema {
        categorical: features.cat.iter().map(|f| f.name.clone()).collect(),
        numeric: features.num.clone(),
        user: features.user_field.clone(),
    };
    if &schema_of_vocab != c.schema {
        bail!(
            "the vocabulary does not match the data schema: {}",
            schema_of_vocab.difference(c.schema)
        );
    }
    let mut files = BTreeMap::new();
    // Vocabulary: one key tensor per field.
    let decl: Vec<(String, Dtype, Vec<usize>)> = c
        .vocab
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("keys.{i}"), Dtype::U64, vec![f.entries()]))
        .collect();
    let meta = BTreeMap::from([("format".to_string(), FORMAT.to_string())]);
    let mut w = StreamWriter::create(&dir.join(VOCAB_FILE), &decl, &meta)?;
    for (i, f) in c.vocab.fields.iter().enumerate() {
        w.begin(&format!("keys.{i}"))?;
        w.u64s(f.keys())?;
    }
    let (bytes, sha256) = w.finish()?;
    files.insert(VOCAB_FILE.to_string(), FileDigest { bytes, sha256 });

    // Weights.
    let tensors = tensor_table(c.spec, &features)?;
    let mut decl: Vec<(String, Dtype, Vec<usize>)> = tensors
        .iter()
        .map(|t| (t.name.clone(), Dtype::F32, t.shape.clone()))
        .collect();
    decl[1].1 = Dtype::I64;
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let mut w = StreamWriter::create(&dir.join(WEIGHTS_FILE), &decl, &meta)?;
    match weights {
        Weights::Model(model) => {
            check_model(model, c.spec, &features)?;
            w.begin(names::TABLE)?;
            let table = model.embeddings();
            for f in 0..table.num_fields() {
                w.f32s(table.field(f))?;
            }
            write_offsets(&mut w, &features)?;
            let dense = model.dense();
            for (t, var) in tensors[2..].iter().zip(dense.vars()) {
                let v = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
                write_dense(&mut w, t, &v)?;
            }
        }
        Weights::Checkpoint(path) => {
            let header = Trainer::read_header(path)?;
            if header.spec != c.spec.to_string() {
                bail!(
                    "checkpoint {} holds `{}`, not `{}`",
                    path.display(),
                    header.spec,
                    c.spec
                );
            }
            if header.features != features {
                bail!(
                    "checkpoint {} was trained on other table sizes than this vocabulary's",
                    path.display()
                );
            }
            if let Some(fp) = &header.vocabulary {
                if *fp != c.vocab.fingerprint() {
                    bail!(
                        "checkpoint {} was trained under another vocabulary (id -> row map) than the one rebuilt for it",
                        path.display()
                    );
                }
            }
            let mut r = StreamReader::open(path)?;
            let info = r.expect(
                "emb.table",
                Dtype::F32,
                &[features.total_rows() * c.spec.emb_dim],
            )?;
            w.begin(names::TABLE)?;
            // Field by field, in chunks: the table never sits in memory.
            let offsets = features.offsets();
            for (f, field) in features.cat.iter().enumerate() {
                let from = (offsets[f] * c.spec.emb_dim * 4) as u64;
                let len = (field.vocab * c.spec.emb_dim * 4) as u64;
                r.copy_range(&info, from, len, &mut |b| w.bytes(b))?;
            }
            write_offsets(&mut w, &features)?;
            for t in &tensors[2..] {
                let n: usize = t.shape.iter().product();
                let v = r.f32_vec(&format!("dense.w.{}", t.crossadapt), &[n])?;
                write_dense(&mut w, t, &v)?;
            }
        }
    }
    let (bytes, sha256) = w.finish()?;
    files.insert(WEIGHTS_FILE.to_string(), FileDigest { bytes, sha256 });
    let offsets = features.offsets();
    Ok(Manifest {
        format: FORMAT.into(),
        version: VERSION,
        role: c.role,
        model: c.spec.to_string(),
        schema: c.schema.clone(),
        schema_fingerprint: c.schema.fingerprint(),
        vocabulary: VocabInfo {
            file: VOCAB_FILE.into(),
            pad_id: PAD_ID,
            oov_id: OOV_ID,
            first_id: FIRST_ID,
            unseen: "oov".into(),
            min_count: c.vocab.min_count,
            categorical: c
                .vocab
                .fields
                .iter()
                .zip(&features.cat)
                .zip(&offsets)
                .enumerate()
                .map(|(i, ((f, cf), &offset))| FieldInfo {
                    name: f.name.clone(),
                    entries: f.entries(),
                    rows: cf.vocab,
                    offset,
                    train_oov_share: c.train_oov_share.as_ref().and_then(|s| s.get(i).copied()),
                })
                .collect(),
            numeric: c
                .vocab
                .num_fields
                .iter()
                .enumerate()
                .map(|(j, name)| {
                    let s = c
                        .vocab
                        .num_scale
                        .get(j)
                        .copied()
                        .unwrap_or(NumScale::IDENTITY);
                    let carried = c.origin.and_then(|m| {
                        m.vocabulary.numeric.iter().find(|n| {
                            &n.name == name && n.mean as f32 == s.mean && n.std as f32 == s.std
                        })
                    });
                    match carried {
                        Some(n) => n.clone(),
                        None => NumericInfo {
                            name: name.clone(),
                            mean: shortest_f64(s.mean),
                            std: shortest_f64(s.std),
                        },
                    }
                })
                .collect(),
            fingerprint: Some(c.vocab.fingerprint()),
        },
        weights_file: WEIGHTS_FILE.into(),
        tensors,
        files,
        provenance: Provenance {
            written_by: format!("crossadapt {}", env!("CARGO_PKG_VERSION")),
            created: Some(chrono::Utc::now().to_rfc3339()),
            ..c.provenance
        },
    })
}

/// The f64 whose shortest decimal is the f32's (0.1f32 is written `0.1`, not
/// `0.10000000149011612`); it reads back as the same f32.
fn shortest_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Whether a manifest's digest (`HEX` or `sha256:HEX`, any case) is `hex`.
fn digest_matches(manifest: &str, hex: &str) -> bool {
    let m = manifest.strip_prefix("sha256:").unwrap_or(manifest);
    m.eq_ignore_ascii_case(hex)
}

/// Counts, per categorical field, the rows whose id is the OOV id.
#[derive(Clone, Debug)]
pub struct OovCount {
    oov: Vec<u64>,
    rows: u64,
}

impl OovCount {
    pub fn new(num_cat: usize) -> OovCount {
        OovCount {
            oov: vec![0; num_cat],
            rows: 0,
        }
    }

    pub fn add(&mut self, batch: &Batch) {
        for (f, n) in self.oov.iter_mut().enumerate() {
            *n += batch.field_column(f).filter(|&id| id == OOV_ID).count() as u64;
        }
        self.rows += batch.rows() as u64;
    }

    /// Counts the rows of `days` of `source`, encoded with `vocab`, a chunk at a time.
    pub fn of_days(vocab: &Vocabulary, source: &dyn DaySource, days: &[u32]) -> Result<OovCount> {
        let mut count = OovCount::new(vocab.fields.len());
        for &d in days {
            source
                .day_chunks(d as usize, &mut |raw| {
                    count.add(&vocab.encode(&raw));
                    Ok(std::ops::ControlFlow::Continue(()))
                })
                .with_context(|| format!("counting out-of-vocabulary keys on day {d}"))?;
        }
        Ok(count)
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The share of rows per field; `None` when no row was counted.
    pub fn shares(&self) -> Option<Vec<f64>> {
        (self.rows > 0).then(|| {
            self.oov
                .iter()
                .map(|&n| n as f64 / self.rows as f64)
                .collect()
        })
    }
}

/// A field's OOV share on the first day a bundle meets that is above this, where the bundle's
/// training rows had less than [`OOV_JUMP_TRAINED`], stops the run: a vocabulary that fits
/// its own data does not lose most of a field overnight, a key hashed or formatted otherwise
/// does (every key then misses).
pub const OOV_JUMP_DAY: f64 = 0.5;
/// See [`OOV_JUMP_DAY`].
pub const OOV_JUMP_TRAINED: f64 = 0.1;

fn check_model(model: &dyn CtrModel, spec: &ModelSpec, features: &FeatureSpec) -> Result<()> {
    if model.spec() != spec || model.features() != features {
        bail!(
            "the model is `{}` on other features than the bundle describes",
            model.spec()
        );
    }
    Ok(())
}

fn write_offsets(w: &mut StreamWriter, features: &FeatureSpec) -> Result<()> {
    w.begin(names::OFFSETS)?;
    let bytes: Vec<u8> = features
        .offsets()
        .iter()
        .flat_map(|&o| (o as i64).to_le_bytes())
        .collect();
    w.bytes(&bytes)
}

fn write_dense(w: &mut StreamWriter, t: &TensorEntry, v: &[f32]) -> Result<()> {
    if t.transposed {
        // The bundle shape is (out, in); crossadapt's is (in, out).
        let (out, inp) = (t.shape[0], t.shape[1]);
        w.f32_tensor(&t.name, &transpose(v, inp, out))
    } else {
        w.f32_tensor(&t.name, v)
    }
}

/// A bundle opened for reading: its manifest checked, its files' sizes and digests verified.
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub spec: ModelSpec,
}

impl Bundle {
    /// Opens `dir` and checks every file against the manifest. Every failure is one sentence
    /// naming the file.
    pub fn open(dir: &Path) -> Result<Bundle> {
        let path = dir.join(MANIFEST_FILE);
        if !dir.is_dir() {
            bail!("bundle {} is not a folder", dir.display());
        }
        let text = crate::atomic::read_limited(&path, crate::atomic::JSON_LIMIT)
            .with_context(|| format!("cannot read bundle manifest {}", path.display()))?;
        let manifest: Manifest = serde_json::from_slice(&text).with_context(|| {
            format!(
                "bundle manifest {} is damaged or not a bundle",
                path.display()
            )
        })?;
        if manifest.format != FORMAT {
            bail!(
                "{} has format `{}`, expected `{FORMAT}`",
                path.display(),
                manifest.format
            );
        }
        if manifest.version != VERSION {
            bail!(
                "{} has bundle version {}, this build reads version {VERSION}",
                path.display(),
                manifest.version
            );
        }
        let spec: ModelSpec = manifest
            .model
            .parse()
            .with_context(|| format!("{}: bad model spec", path.display()))?;
        // A key left out would silently take crossadapt's default and fail later as a tensor
        // of the wrong shape: the spec must say every key.
        let given: Vec<&str> = manifest
            .model
            .split_once(':')
            .map_or("", |(_, rest)| rest)
            .split(',')
            .filter_map(|p| p.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        let missing: Vec<&str> = spec
            .arch
            .keys()
            .iter()
            .copied()
            .filter(|k| !given.contains(k))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{}: model `{}` does not list every key of its architecture: missing {} (a bundle's spec is written in full, e.g. `{spec}`)",
                path.display(),
                manifest.model,
                missing.join(", ")
            );
        }
        if manifest.schema_fingerprint != manifest.schema.fingerprint() {
            bail!(
                "{}: schema_fingerprint does not match the schema it lists (edited by hand?)",
                path.display()
            );
        }
        for (file, digest) in &manifest.files {
            let p = dir.join(file);
            let (bytes, sha) = stio::file_digest(&p)?;
            if bytes != digest.bytes || !digest_matches(&digest.sha256, &sha) {
                bail!(
                    "bundle file {} is damaged: {bytes} bytes with SHA-256 {sha}, the manifest says {} bytes with {}",
                    p.display(),
                    digest.bytes,
                    digest.sha256
                );
            }
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
            spec,
        })
    }

    /// Refuses data whose schema is not the bundle's.
    pub fn check_schema(&self, source: &dyn DaySource) -> Result<()> {
        let data = DataSchema::of_source(source);
        if data.fingerprint() != self.manifest.schema_fingerprint {
            bail!(
                "bundle {} was made for another data schema: the data has {}",
                self.dir.display(),
                data.difference(&self.manifest.schema)
            );
        }
        Ok(())
    }

    /// Compares the OOV share of each field on `day` (the run's first retained day) with the
    /// share the bundle records for its training rows. A field above [`OOV_JUMP_DAY`] where
    /// training saw under [`OOV_JUMP_TRAINED`] is an error naming the field and both shares,
    /// unless `allow`. Returns the notes to show: the check skipped (a bundle without the
    /// record), or a jump let through.
    pub fn check_oov(
        &self,
        vocab: &Vocabulary,
        source: &dyn DaySource,
        day: u32,
        allow: bool,
    ) -> Result<Vec<String>> {
        let fields = &self.manifest.vocabulary.categorical;
        if fields.iter().any(|f| f.train_oov_share.is_none()) {
            return Ok(vec![format!(
                "bundle {} does not record its training rows' out-of-vocabulary shares (written by an older crossadapt or another stack), so the check for keys hashed otherwise is skipped",
                self.dir.display()
            )]);
        }
        let Some(shares) = OovCount::of_days(vocab, source, &[day])?.shares() else {
            return Ok(Vec::new());
        };
        let mut notes = Vec::new();
        for (f, share) in fields.iter().zip(shares) {
            let trained = f.train_oov_share.unwrap_or(0.0);
            if !(share > OOV_JUMP_DAY && trained < OOV_JUMP_TRAINED) {
                continue;
            }
            let what = format!(
                "field `{}` has {:.1}% of day {day}'s rows out of the vocabulary of bundle {}, against {:.1}% of the bundle's training rows",
                f.name,
                share * 100.0,
                self.dir.display(),
                trained * 100.0
            );
            if !allow {
                bail!(
                    "{what}: its keys are probably hashed or formatted otherwise than the bundle's (docs/bundles.md, raw keys); fix the keys, or run anyway with --set teacher.allow_oov_jump=true"
                );
            }
            notes.push(format!("{what} (allowed by teacher.allow_oov_jump)"));
        }
        Ok(notes)
    }

    /// The bundle's vocabulary (keys streamed field by field).
    pub fn vocabulary(&self) -> Result<Vocabulary> {
        let m = &self.manifest;
        let v = &m.vocabulary;
        let path = self.dir.join(&v.file);
        if (v.pad_id, v.oov_id, v.first_id) != (PAD_ID, OOV_ID, FIRST_ID) {
            bail!(
                "{}: ids pad {} / oov {} / first {} differ from crossadapt's {PAD_ID} / {OOV_ID} / {FIRST_ID}",
                self.dir.join(MANIFEST_FILE).display(),
                v.pad_id,
                v.oov_id,
                v.first_id
            );
        }
        let names: Vec<&String> = v.categorical.iter().map(|f| &f.name).collect();
        let num_names: Vec<&String> = v.numeric.iter().map(|f| &f.name).collect();
        if names.iter().copied().ne(m.schema.categorical.iter())
            || num_names.iter().copied().ne(m.schema.numeric.iter())
        {
            bail!(
                "{}: the vocabulary's fields are not the schema's",
                self.dir.join(MANIFEST_FILE).display()
            );
        }
        let mut r = StreamReader::open(&path)?;
        let mut fields = Vec::with_capacity(v.categorical.len());
        let mut offset = 0;
        for (i, f) in v.categorical.iter().enumerate() {
            if f.rows != f.entries + FIRST_ID as usize || f.offset != offset {
                bail!(
                    "{}: field `{}` has {} entries but {} rows at row {} (expected {} rows at {offset})",
                    self.dir.join(MANIFEST_FILE).display(),
                    f.name,
                    f.entries,
                    f.rows,
                    f.offset,
                    f.entries + FIRST_ID as usize
                );
            }
            offset += f.rows;
            let keys = r.u64_vec(&format!("keys.{i}"), f.entries)?;
            let fv = FieldVocab::new(f.name.clone(), keys);
            let distinct = fv.keys().iter().all(|&k| fv.id(k) != OOV_ID)
                && fv
                    .keys()
                    .iter()
                    .enumerate()
                    .all(|(j, &k)| fv.id(k) == j as u32 + FIRST_ID);
            if !distinct {
                bail!("{}: field `{}` lists a key twice", path.display(), f.name);
            }
            fields.push(fv);
        }
        let num_scale = v
            .numeric
            .iter()
            .map(|n| {
                let (mean, std) = (n.mean as f32, n.std as f32);
                if std.is_finite() && std > 0.0 && mean.is_finite() {
                    Ok(NumScale { mean, std })
                } else {
                    Err(anyhow!(
                        "{}: numeric field `{}` has mean {} and std {} (std must be positive)",
                        self.dir.join(MANIFEST_FILE).display(),
                        n.name,
                        n.mean,
                        n.std
                    ))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Vocabulary {
            fields,
            num_fields: m.schema.numeric.clone(),
            num_scale,
            user_field: m.schema.user.clone(),
            min_count: v.min_count,
        })
    }

    /// A trainer holding the bundle's weights, with fresh optimiser state, for `vocab` (the
    /// bundle's own, from [`Bundle::vocabulary`]).
    pub fn trainer(&self, vocab: &Vocabulary, cfg: &TrainConfig) -> Result<Trainer> {
        let features = vocab.feature_spec();
        let path = self.dir.join(&self.manifest.weights_file);
        let expected = tensor_table(&self.spec, &features)?;
        let mut r = StreamReader::open(&path)?;
        let mut model = build_model(&self.spec, &features, 0)
            .with_context(|| format!("bundle {}: building `{}`", self.dir.display(), self.spec))?;
        let d = self.spec.emb_dim;
        r.expect(names::TABLE, Dtype::F32, &[features.total_rows(), d])?;
        let offsets = r.expect(names::OFFSETS, Dtype::I64, &[features.num_cat()])?;
        let mut raw = vec![0u8; offsets.elements() * 8];
        r.read_range(&offsets, 0, &mut raw)?;
        let stored: Vec<i64> = raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        if stored
            .iter()
            .zip(features.offsets())
            .any(|(&s, o)| s != o as i64)
        {
            bail!(
                "{}: `offsets` {stored:?} do not match the vocabulary's field sizes",
                path.display()
            );
        }
        // Straight into the model's own table: no second copy.
        r.f32_into(
            names::TABLE,
            &[features.total_rows(), d],
            &mut model.embeddings_mut().data,
        )?;
        let dense = model.dense();
        for (t, var) in expected[2..].iter().zip(dense.vars()) {
            let v = r.f32_vec(&t.name, &t.shape)?;
            let v = if t.transposed {
                transpose(&v, t.shape[0], t.shape[1])
            } else {
                v
            };
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu)?)?;
        }
        let mut extra: Vec<&String> = r
            .names()
            .filter(|n| !expected.iter().any(|t| &t.name == *n))
            .collect();
        if !extra.is_empty() {
            extra.sort();
            bail!(
                "{} holds tensors `{}` has no use for: {}",
                path.display(),
                self.spec,
                extra
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let mut tr = Trainer::new(model, cfg)?;
        tr.set_vocabulary(Some(vocab.fingerprint()));
        Ok(tr)
    }
}

/// The vocabulary of a session: the teacher bundle's when `teacher.bundle` is set (after
/// checking the data's schema against it; the bundle is returned too), else fitted on the
/// history and retained days.
pub fn session_vocabulary(
    teacher_bundle: Option<&Path>,
    min_count: u32,
    source: &dyn DaySource,
    plan: &crate::data::split::DayPlan,
) -> Result<(Vocabulary, Option<Bundle>)> {
    if let Some(path) = teacher_bundle {
        let bundle = Bundle::open(path).context("teacher.bundle")?;
        bundle.check_schema(source).context("teacher.bundle")?;
        let vocab = bundle.vocabulary().context("teacher.bundle")?;
        return Ok((vocab, Some(bundle)));
    }
    let fit_days: Vec<usize> = plan
        .history
        .iter()
        .chain(&plan.retained)
        .map(|&d| d as usize)
        .collect();
    let vocab =
        Vocabulary::fit(source, &fit_days, min_count).context("cannot build the vocabulary")?;
    Ok((vocab, None))
}

#[cfg(test)]
mod tests;
