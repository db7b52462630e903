//! The harness: real `boxoffice serve` processes on loopback behind per-link proxies,
//! nemeses, the `contention` workload, and a run that writes its directory. Not used by
//! the checkers (they stay pure); the checkers are what a run calls at its end.
//!
//! Not done yet (issue 6): network namespaces + iptables when root, clock skew via
//! libfaketime, the flash-sale / idempotent-retry / expiry-edge workloads.

pub mod cluster;
pub mod nemesis;
pub mod progress;
pub mod proxy;
pub mod run;
pub mod shim;
pub mod timeline;
pub mod workload;
