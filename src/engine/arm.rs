//! One arm's live models and its state.

use super::state::ArmState;
use crate::protocol::ArmKind;
use crate::train::Trainer;

/// One arm's live models.
pub(crate) struct Arm {
    pub student: Trainer,
    /// The arm's own co-distilled teacher (crossadapt variants with an asymmetric teacher).
    pub teacher: Option<Trainer>,
    pub state: ArmState,
}

impl Arm {
    pub fn kind(&self) -> ArmKind {
        self.state.kind
    }

    pub fn name(&self) -> String {
        self.state.name()
    }
}
