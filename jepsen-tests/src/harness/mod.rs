//! The harness: real `boxoffice serve` processes — each in its own network namespace with
//! iptables partitions when root ([`netns`]), else on loopback behind per-link proxies
//! ([`proxy`], [`shim`]) — the nemeses (partitions, kill, pause, clock skew through
//! libfaketime, nodes replaced: [`membership`]; power cuts and full disks on lazy disks,
//! [`crate::lazyfs`]; corrupted files), the workloads, and a run that writes its
//! directory (history, logs, results, summary, timeline). Not used by the checkers (they
//! stay pure); the checkers are what a run calls at its end.

pub mod cluster;
pub mod members;
pub mod membership;
pub mod nemesis;
pub mod netns;
pub mod progress;
pub mod proxy;
pub mod run;
pub mod shim;
pub mod timeline;
pub mod tools;
pub mod workload;
