//! The operator parameters as editable controls: reading one from [`Params`], stepping it, and
//! turning an edited value into a [`ParamPatch`].

use crate::protocol::{ParamPatch, Params};

/// One editable parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    SamplingRatio,
    ReplayRatio,
    TeacherInterval,
    DistillMin,
    DistillMax,
}

impl Control {
    pub const ALL: [Control; 5] = [
        Control::SamplingRatio,
        Control::ReplayRatio,
        Control::TeacherInterval,
        Control::DistillMin,
        Control::DistillMax,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Control::SamplingRatio => "sampling ratio",
            Control::ReplayRatio => "replay ratio",
            Control::TeacherInterval => "teacher every N",
            Control::DistillMin => "distill weight min",
            Control::DistillMax => "distill weight max",
        }
    }

    /// The value in `params`.
    pub fn get(self, p: &Params) -> f64 {
        match self {
            Control::SamplingRatio => p.sampling_ratio,
            Control::ReplayRatio => p.replay_ratio,
            Control::TeacherInterval => f64::from(p.teacher_interval),
            Control::DistillMin => p.distill_min,
            Control::DistillMax => p.distill_max,
        }
    }

    /// The value a patch sets, if it sets this control.
    pub fn in_patch(self, patch: &ParamPatch) -> Option<f64> {
        match self {
            Control::SamplingRatio => patch.sampling_ratio,
            Control::ReplayRatio => patch.replay_ratio,
            Control::TeacherInterval => patch.teacher_interval.map(f64::from),
            Control::DistillMin => patch.distill_min,
            Control::DistillMax => patch.distill_max,
        }
    }

    /// Sets (or clears, with `None`) this control in a patch.
    pub fn set_in(self, patch: &mut ParamPatch, value: Option<f64>) {
        match self {
            Control::SamplingRatio => patch.sampling_ratio = value,
            Control::ReplayRatio => patch.replay_ratio = value,
            Control::TeacherInterval => {
                patch.teacher_interval =
                    value.map(|v| v.round().clamp(1.0, f64::from(u32::MAX)) as u32)
            }
            Control::DistillMin => patch.distill_min = value,
            Control::DistillMax => patch.distill_max = value,
        }
    }

    /// A patch that changes only this control.
    pub fn patch(self, value: f64) -> ParamPatch {
        let mut p = ParamPatch::default();
        self.set_in(&mut p, Some(value));
        p
    }

    /// One arrow press.
    pub fn step(self) -> f64 {
        match self {
            Control::TeacherInterval => 1.0,
            _ => 0.05,
        }
    }

    /// Keeps an arrow-stepped value inside the control's range.
    pub fn clamp(self, v: f64) -> f64 {
        let v = if v.is_finite() { v } else { 0.0 };
        match self {
            Control::SamplingRatio => round2(v).clamp(0.01, 1.0),
            Control::TeacherInterval => v.round().clamp(1.0, 10_000.0),
            _ => round2(v).clamp(0.0, 1.0),
        }
    }

    /// The value as the panel shows it.
    pub fn format(self, v: f64) -> String {
        match self {
            Control::TeacherInterval => format!("{}", v.round() as i64),
            _ => format!("{v:.2}"),
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A control being edited: the text typed (or stepped) so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    pub control: Control,
    pub text: String,
    /// Why the last apply was refused (shown under the control).
    pub error: Option<String>,
}

impl Edit {
    pub fn new(control: Control, current: f64) -> Edit {
        Edit {
            control,
            text: control.format(current),
            error: None,
        }
    }

    /// Steps the value by `dir` arrow presses.
    pub fn step(&mut self, dir: f64) {
        let c = self.control;
        let now = self.text.trim().parse::<f64>().unwrap_or(0.0);
        self.text = c.format(c.clamp(now + dir * c.step()));
        self.error = None;
    }

    /// The patch to send, checked against `params` (with what is already pending).
    pub fn to_patch(&self, params: &Params, pending: &ParamPatch) -> Result<ParamPatch, String> {
        let c = self.control;
        let value: f64 = self
            .text
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not a number", self.text.trim()))?;
        if c == Control::TeacherInterval && value.fract() != 0.0 {
            return Err("the teacher interval is a whole number of batches".into());
        }
        let patch = c.patch(value);
        let mut merged = pending.clone();
        c.set_in(&mut merged, Some(value));
        params.patched(&merged).map_err(|e| e.reason)?;
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            sampling_ratio: 0.1,
            replay_ratio: 0.1,
            teacher_interval: 10,
            distill_min: 0.3,
            distill_max: 0.7,
        }
    }

    #[test]
    fn stepping_stays_in_range_and_builds_a_one_field_patch() {
        let mut e = Edit::new(Control::SamplingRatio, 0.1);
        e.step(1.0);
        assert_eq!(e.text, "0.15");
        let patch = e.to_patch(&params(), &ParamPatch::default()).unwrap();
        assert_eq!(patch.sampling_ratio, Some(0.15));
        assert_eq!(patch.replay_ratio, None);
        let mut e = Edit::new(Control::TeacherInterval, 1.0);
        e.step(-1.0);
        assert_eq!(e.text, "1");
    }

    #[test]
    fn invalid_values_are_refused_with_a_reason() {
        let mut e = Edit::new(Control::DistillMin, 0.3);
        e.text = "0.9".into();
        let err = e.to_patch(&params(), &ParamPatch::default()).unwrap_err();
        assert!(err.contains("distill_min"), "{err}");
        e.text = "abc".into();
        assert!(e
            .to_patch(&params(), &ParamPatch::default())
            .unwrap_err()
            .contains("not a number"));
    }
}
