//! `jepsen`: the harness of boxoffice's Jepsen-style testing (issue 6): it runs real
//! `boxoffice` processes, injects faults (partitions, kills, pauses, clock skew, membership
//! changes, power cuts on lazy disks) and records histories that the pure checkers of the
//! `jepsen-checker` crate judge. Those are re-exported here ([`history`], [`checker`],
//! [`results`]) so a run and its check read as one library.
//!
//! ```text
//! cargo build -p boxoffice
//! cargo run -p jepsen-tests --bin jepsen -- --nodes 5 --nemesis partition,kill,pause,clock \
//!     --workload contention --time 300 --seed 42 [--out DIR] [--binary PATH] [--net auto]
//! ```
//! writes `history.jsonl`, `reads.jsonl` (browse reads, unchecked), `queue.jsonl`, `waitlist.jsonl`,
//! `nemesis.jsonl`, `schedule.json`, `final.json`, `results.json`, `summary.txt`,
//! `timeline.png` and the node logs and data into the run directory; exits 0 only if
//! valid. `tests/campaign.rs` runs a short campaign (partition, kill, pause, clock; 60 s
//! each, one workload each, then the queue under all of them, and refunds and the waiting
//! list under partition, kill and pause).
//!
//! ## Layout
//!
//! - [`harness`]: the cluster of real processes, the network modes, the nemeses, the
//!   workloads and one run from start to check.
//! - [`lazyfs`]: LazyFS, a FUSE pass-through mounted over a node's data directory that
//!   loses what was not fsynced on command (a power cut), for the harness's faults.
//! - The checkers and the history format: `jepsen-checker` (its crate doc says what they
//!   check and the model's caveats).

pub mod harness;
pub mod lazyfs;

pub use jepsen_checker::{
    check_linearizable, Budget, FinalRead, FinalState, LinearConfig, LinearReport, ModelConfig, Op, OpFn,
    OpKind, OpValue, Results, TicketStatus, Validity, Verdict,
};
pub use jepsen_checker::{checker, history, results};
