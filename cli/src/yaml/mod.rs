//! YAML in (with the line of every field) and out (exact numbers).

pub mod read;
pub mod write;
