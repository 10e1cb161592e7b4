//! Days of CTR data: sources, encoding, day splits, samplers.

pub mod batch;

pub use batch::{Batch, CatField, FeatureSpec, FIRST_ID, OOV_ID, PAD_ID};
