//! One file per architecture family; [`build`] picks by [`Arch`].

use anyhow::Result;
use rand_chacha::ChaCha8Rng;

use super::{Arch, CtrModel, ModelCore};

pub mod autoint;
pub mod dcn;
pub mod deepfm;
pub mod fibinet;
pub mod finalmlp;
pub mod simple;
pub mod xdeepfm;

/// Adds the architecture's blocks to `core` and boxes the model.
pub fn build(core: ModelCore, rng: &mut ChaCha8Rng) -> Result<Box<dyn CtrModel>> {
    Ok(match core.spec.arch {
        Arch::Lr | Arch::Mlp | Arch::WideDeep => Box::new(simple::Simple::new(core, rng)?),
        Arch::DeepFm => Box::new(deepfm::DeepFm::new(core, rng)?),
        Arch::Dcn | Arch::DcnV2 => Box::new(dcn::Dcn::new(core, rng)?),
        Arch::XDeepFm => Box::new(xdeepfm::XDeepFm::new(core, rng)?),
        Arch::AutoInt => Box::new(autoint::AutoInt::new(core, rng)?),
        Arch::FiBiNet => Box::new(fibinet::FiBiNet::new(core, rng)?),
        Arch::FinalMlp => Box::new(finalmlp::FinalMlp::new(core, rng)?),
    })
}

/// Implements the two accessor methods of [`CtrModel`] for a struct with a `core` field.
macro_rules! core_access {
    () => {
        fn core(&self) -> &$crate::model::ModelCore {
            &self.core
        }
        fn core_mut(&mut self) -> &mut $crate::model::ModelCore {
            &mut self.core
        }
    };
}
pub(crate) use core_access;
