//! `crossadapt predict --bundle DIR --day N` and `crossadapt export ID --bundle`: model
//! bundles (docs/bundles.md) out of sessions and predictions out of bundles.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};

use super::ConfigArgs;
use crate::bundle::{self, Bundle, BundleContent, DataSchema, Provenance, Role, Weights};
use crate::data::DataConfig;
use crate::engine::SessionConfig;
use crate::session::Store;
use crate::train::metrics::evaluate_rows;
use crate::train::TrainConfig;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The bundle folder.
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Day of the data to predict.
    #[arg(long, value_parser = super::ranges::day(0, super::ranges::MAX_DAY))]
    pub day: u32,
    /// The data, as a session config's `data` table (`--config FILE`, `--set data.KEY=VALUE`);
    /// by default the data the bundle records it was trained on.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Write the CSV here (default and `-`: standard output; a device or FIFO is written to,
    /// never replaced).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write each row's raw inputs: categorical keys (`cat.NAME`) and numeric values
    /// before scaling (`num.NAME`), so another stack can encode them itself.
    #[arg(long)]
    pub inputs: bool,
    #[arg(long, default_value_t = 2, value_parser = super::ranges::count(1, super::ranges::MAX_THREADS))]
    pub threads: usize,
}

/// The data a bundle's model is applied to: `--config FILE` when given; else the data recorded
/// in the bundle (`provenance.data`) with the `--set data.*` overrides applied to it (so
/// `--set data.path=X` points the recorded table source at another file); else the built-in
/// stream with those overrides.
fn data_config(args: &ConfigArgs, b: &Bundle) -> Result<DataConfig> {
    if args.config.is_some() {
        return Ok(SessionConfig::load(args.config.as_deref(), &args.set)?.data);
    }
    let recorded: DataConfig = match &b.manifest.provenance.data {
        Some(v) => serde_json::from_value(v.clone()).with_context(|| {
            format!(
                "{}: provenance.data is not a data config this build reads; give the data with --config or --set data.*",
                b.dir.join(bundle::MANIFEST_FILE).display()
            )
        })?,
        None => DataConfig::default(),
    };
    if args.set.is_empty() {
        return Ok(recorded);
    }
    let base = SessionConfig {
        data: recorded,
        ..SessionConfig::default()
    };
    Ok(base.with_sets(&args.set)?.data)
}

/// `predict --bundle DIR --day N`: one line per row, `row,label,logit,prob` (and the raw
/// inputs with `--inputs`); a summary line on stderr.
pub fn predict(args: &PredictArgs) -> Result<()> {
    let b = Bundle::open(&args.bundle)?;
    let data = data_config(&args.config, &b)?;
    let source = data.open().context("cannot open the data source")?;
    let given = args.config.config.is_some() || !args.config.set.is_empty();
    if b.manifest.provenance.data.is_none() && !given {
        // Without a record the built-in stream is only a guess: say so rather than blame the
        // schema of data the user never named.
        b.check_schema(source.as_ref()).map_err(|_| {
            anyhow::anyhow!(
                "bundle {} does not record the data it was trained on (provenance.data): give the data with --config FILE or --set data.*",
                b.dir.display()
            )
        })?;
    }
    b.check_schema(source.as_ref())?;
    if args.day as usize >= source.num_days() {
        bail!(
            "--day {}: the data has days 0..{}",
            args.day,
            source.num_days()
        );
    }
    let vocab = b.vocabulary()?;
    let cfg = TrainConfig {
        threads: args.threads.max(1),
        ..TrainConfig::default()
    };
    let trainer = b.trainer(&vocab, &cfg)?;
    let user_field = trainer.model().features().user_index();
    // The day is read, encoded, scored and written a chunk at a time; only each row's logit,
    // label and user stay for the day's metrics.
    let (mut logits, mut labels, mut users) = (Vec::new(), Vec::new(), Vec::new());
    let day = args.day as usize;
    let mut produce = |out: &mut dyn Write| -> Result<()> {
        let mut head = String::from("row,label,logit,prob");
        if args.inputs {
            for f in &vocab.fields {
                head.push_str(&format!(",cat.{}", f.name));
            }
            for n in &vocab.num_fields {
                head.push_str(&format!(",num.{n}"));
            }
        }
        writeln!(out, "{head}")?;
        source
            .day_chunks(day, &mut |raw| {
                let batch = vocab.encode(&raw);
                let z = trainer.predict_logits(&batch)?;
                let (nc, nn) = (raw.num_cat, raw.num_num);
                let mut text = String::with_capacity(z.len() * 48);
                for (i, &z) in z.iter().enumerate() {
                    let p = 1.0 / (1.0 + (-(z as f64)).exp());
                    let r = logits.len() + i;
                    text.push_str(&format!("{r},{},{z},{p}", raw.label[i]));
                    if args.inputs {
                        for k in &raw.cat[i * nc..(i + 1) * nc] {
                            text.push_str(&format!(",{k}"));
                        }
                        for v in &raw.num[i * nn..(i + 1) * nn] {
                            text.push_str(&format!(",{v}"));
                        }
                    }
                    text.push('\n');
                }
                out.write_all(text.as_bytes())?;
                if let Some(f) = user_field {
                    if batch.users.len() == batch.rows() {
                        users.extend_from_slice(&batch.users);
                    } else if f < batch.num_cat {
                        users.extend(batch.field_column(f).map(u64::from));
                    }
                }
                logits.extend_from_slice(&z);
                labels.extend_from_slice(&batch.label);
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .with_context(|| format!("predicting day {day} of {}", source.describe()))
    };
    let out = args
        .out
        .as_deref()
        .unwrap_or(Path::new(crate::atomic::STDOUT));
    crate::atomic::write_output_streamed(out, &mut produce)?;
    let users = (user_field.is_some() && users.len() == labels.len()).then_some(&users[..]);
    let m = evaluate_rows(&logits, &labels, users);
    eprintln!(
        "predicted day {} of {} with `{}`: rows={} auc={} logloss={:.4}",
        args.day,
        source.describe(),
        b.spec,
        labels.len(),
        m.auc.map_or("n/a".into(), |a| format!("{a:.4}")),
        m.logloss
    );
    Ok(())
}

/// What `export ID --bundle` writes.
pub struct ExportBundle<'a> {
    pub id: &'a str,
    pub arm: Option<&'a str>,
    pub day: Option<u32>,
    pub out: Option<&'a Path>,
}

/// `export ID --bundle [--arm NAME] [--day N] --out DIR`: the arm's student (or the session's
/// teacher with `--arm teacher`) at a kept checkpoint, as a bundle. The vocabulary is rebuilt
/// as the session built it and must match the checkpoint's recorded one.
pub fn export_bundle(req: &ExportBundle<'_>, dir: Option<PathBuf>) -> Result<()> {
    let Some(out) = req.out else {
        bail!("export --bundle needs --out DIR (the bundle folder to create)");
    };
    let store = Store::open(dir)?;
    let view = store.open_read_only(req.id)?;
    let ckpt = match req.day {
        Some(d) => view.checkpoint_for_day(d)?,
        None => view
            .latest_checkpoint()?
            .with_context(|| format!("session {} has no checkpoint yet", view.id()))?,
    };
    for w in &ckpt.warnings {
        eprintln!("warning: {w}");
    }
    let config_path = view.dir().join("config.toml");
    let config_text = view.config_toml()?;
    let cfg = SessionConfig::from_toml(&config_text, &config_path)?;
    let state_path = ckpt.dir.join("state.json");
    let state: serde_json::Value = serde_json::from_slice(
        &crate::atomic::read_limited(&state_path, crate::atomic::STATE_LIMIT)
            .with_context(|| format!("cannot read {}", state_path.display()))?,
    )
    .with_context(|| format!("checkpoint state {} is damaged", state_path.display()))?;
    let arms: Vec<String> = state["arms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let arm = match req.arm {
        Some(a) => a.to_string(),
        None if arms.iter().any(|a| a == "crossadapt") => "crossadapt".into(),
        None => bail!(
            "name the arm to export with --arm (this checkpoint has: teacher{})",
            arms.iter().map(|a| format!(", {a}")).collect::<String>()
        ),
    };
    let (file, role) = if arm == "teacher" {
        ("teacher.safetensors".to_string(), Role::Teacher)
    } else {
        match arms.iter().position(|a| *a == arm) {
            Some(i) => (format!("arm-{i}-student.safetensors"), Role::Student),
            None => bail!(
                "checkpoint {} has no arm `{arm}` (it has: teacher{})",
                ckpt.label,
                arms.iter().map(|a| format!(", {a}")).collect::<String>()
            ),
        }
    };
    let weights = ckpt.dir.join(file);
    let header = crate::train::Trainer::read_header(&weights)?;
    let spec: crate::model::ModelSpec = header
        .spec
        .parse()
        .with_context(|| format!("checkpoint {}: bad model spec", weights.display()))?;
    let source = cfg.data.open().context("cannot open the session's data")?;
    let plan = cfg.split.resolve(source.num_days())?;
    let (vocab, origin) = bundle::session_vocabulary(
        cfg.teacher.bundle.as_deref(),
        cfg.min_count,
        source.as_ref(),
        &plan,
    )?;
    let origin = origin.map(|b| b.manifest);
    // The session's teacher of a bundle is that bundle's model, frozen: it keeps the
    // bundle's own record of what it was trained on. Any other model's OOV shares are
    // counted on the days it trained on before the switch.
    let imported_teacher = role == Role::Teacher && origin.is_some();
    let train_oov_share = match &origin {
        Some(m) if imported_teacher => m
            .vocabulary
            .categorical
            .iter()
            .map(|f| f.train_oov_share)
            .collect::<Option<Vec<f64>>>(),
        _ => {
            let days = if role == Role::Teacher {
                &plan.history
            } else {
                &plan.retained
            };
            bundle::OovCount::of_days(&vocab, source.as_ref(), days)?.shares()
        }
    };
    let day = ckpt
        .label
        .strip_prefix("day-")
        .and_then(|d| d.get(..4))
        .and_then(|d| d.parse().ok());
    let provenance = Provenance {
        source: "session".into(),
        session: Some(view.id().to_string()),
        checkpoint: Some(ckpt.label.clone()),
        day,
        arm: Some(arm.clone()),
        config_sha256: Some(
            Sha256::digest(config_text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ),
        trained_on: match &origin {
            Some(m) if imported_teacher => m.provenance.trained_on.clone(),
            _ => Some(format!(
                "session {} up to checkpoint {} on {}",
                view.id(),
                ckpt.label,
                source.describe()
            )),
        },
        data: match &origin {
            Some(m) if imported_teacher && m.provenance.data.is_some() => m.provenance.data.clone(),
            _ => Some(serde_json::to_value(&cfg.data)?),
        },
        ..Provenance::default()
    };
    let schema = DataSchema::of_source(source.as_ref());
    bundle::write(
        out,
        BundleContent {
            role,
            spec: &spec,
            vocab: &vocab,
            schema: &schema,
            provenance,
            train_oov_share,
            origin: origin.as_ref(),
        },
        Weights::Checkpoint(&weights),
    )
    .with_context(|| format!("cannot export `{arm}` of session {}", view.id()))?;
    // A day checkpoint holds the models as they were before the day trained: the ones the
    // report scored that day with.
    let state = match day {
        Some(d) => {
            format!("the model at the start of day {d}, the one the report scored day {d} with")
        }
        None => format!("the model at checkpoint {}", ckpt.label),
    };
    println!("wrote {} (`{spec}`, arm {arm}: {state})", out.display());
    Ok(())
}
