//! Kontinuum's Kubernetes operator: the kube-rs controllers that bridge the
//! custom resources to the engine. Work in progress: see docs/operator.md.
