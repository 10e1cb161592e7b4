//! Every architecture builds, predicts the right shape, and beats LR's AUC on learnable data.

use crossadapt::model::{build_model, Arch, ModelSpec};
use crossadapt::train::metrics::auc;
use crossadapt::train::toy::ToyWorld;
use crossadapt::train::{Target, TrainConfig, Trainer};

/// Small shapes of every architecture, so training in a test stays quick.
fn small(arch: Arch) -> ModelSpec {
    let text = match arch {
        Arch::Lr => "lr",
        Arch::Mlp => "mlp:emb=8,hidden=32x16",
        Arch::WideDeep => "widedeep:emb=8,hidden=32x16",
        Arch::DeepFm => "deepfm:emb=8,hidden=32x16",
        Arch::Dcn => "dcn:emb=8,hidden=32x16,cross=2",
        Arch::DcnV2 => "dcnv2:emb=8,hidden=32x16,cross=2",
        Arch::XDeepFm => "xdeepfm:emb=8,hidden=32x16,cin=8x8",
        Arch::AutoInt => "autoint:emb=8,hidden=none,layers=2,heads=2,att=8",
        Arch::FiBiNet => "fibinet:emb=8,hidden=32x16,ratio=2",
        Arch::FinalMlp => "finalmlp:emb=8,hidden=32x16,hidden2=32x16,heads=2",
    };
    text.parse().unwrap()
}

/// Test AUC after a few passes over toy data with hidden pairwise interactions.
fn trained_auc(arch: Arch) -> f64 {
    let world = ToyWorld::new(4, 30, 11);
    let model = build_model(&small(arch), &world.features, 3).unwrap();
    let cfg = TrainConfig {
        threads: 1,
        emb_lr: 0.02,
        dense_lr: 3e-3,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(model, &cfg).unwrap();
    let train = world.batch(8000, 1);
    for _ in 0..3 {
        for b in train.chunks(256) {
            tr.train_batch(&b, Target::Labels).unwrap();
        }
    }
    let test = world.batch(4000, 2);
    auc(&tr.predict_logits(&test).unwrap(), &test.label).unwrap()
}

macro_rules! beats_lr {
    ($($name:ident => $arch:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            let lr = trained_auc(Arch::Lr);
            let got = trained_auc($arch);
            eprintln!("{:?}: auc {got:.4} vs lr {lr:.4}", $arch);
            assert!(got > lr + 0.01, "{:?} auc {got:.4} does not beat lr {lr:.4}", $arch);
        }
    )*};
}

beats_lr! {
    mlp_beats_lr => Arch::Mlp,
    widedeep_beats_lr => Arch::WideDeep,
    deepfm_beats_lr => Arch::DeepFm,
    dcn_beats_lr => Arch::Dcn,
    dcnv2_beats_lr => Arch::DcnV2,
    xdeepfm_beats_lr => Arch::XDeepFm,
    autoint_beats_lr => Arch::AutoInt,
    fibinet_beats_lr => Arch::FiBiNet,
    finalmlp_beats_lr => Arch::FinalMlp,
}

#[test]
fn every_architecture_predicts_one_finite_logit_per_row_and_counts_its_parameters() {
    let world = ToyWorld::new(4, 10, 1);
    let b = world.batch(7, 5);
    for arch in Arch::ALL {
        let spec = small(arch);
        let model = build_model(&spec, &world.features, 1).unwrap();
        let table = model.embeddings().data.len();
        assert_eq!(table, 4 * 12 * spec.emb_dim);
        assert!(model.param_count() > table, "{arch}");
        assert_eq!(model.name(), spec.to_string());
        let tr = Trainer::new(
            model,
            &TrainConfig {
                threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let z = tr.predict_logits(&b).unwrap();
        assert_eq!(z.len(), 7, "{arch}");
        assert!(z.iter().all(|v| v.is_finite()), "{arch}");
    }
}

#[test]
fn lr_parameter_count_is_table_plus_one_weight_per_field_and_bias() {
    let world = ToyWorld::new(3, 10, 1);
    let m = build_model(&"lr".parse().unwrap(), &world.features, 0).unwrap();
    // 3 fields x 12 rows x emb 1, numeric vector (1 x 1), wide weights (4) and bias (1).
    assert_eq!(m.param_count(), 36 + 1 + 4 + 1);
}
