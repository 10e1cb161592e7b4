//! Real files through polars: Criteo, Avazu and generic CSV / Parquet tables.

pub mod cache;
mod columns;
mod schema;
mod source;

pub use schema::{PositiveRule, TableFormat, TableSchema, TimeUnit};
pub use source::TableSource;
