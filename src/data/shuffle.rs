//! Shuffled batches for the trainer (day batches in time order come from `Batch::chunks`).

use rand::seq::SliceRandom;
use rand::Rng;

use super::batch::Batch;

/// All rows of `b` in a random order, cut into batches of at most `size` rows (the last may
/// be smaller). Deterministic for a given `rng` state.
pub fn shuffled_batches(b: &Batch, size: usize, rng: &mut impl Rng) -> Vec<Batch> {
    let mut order: Vec<usize> = (0..b.rows()).collect();
    order.shuffle(rng);
    order
        .chunks(size.max(1))
        .map(|rows| b.gather(rows))
        .collect()
}
