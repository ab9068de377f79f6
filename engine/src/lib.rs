//! The durable engine: everything Kontinuum promises about calls and future
//! trees, on sled, with no knowledge of Kubernetes.

mod facade;

pub use facade::*;
