//! The kit for driving real `boxoffice` processes from tests, the fault campaign
//! (`jepsen-tests`) and the benchmarks (`boxoffice-bench`): one definition of each helper
//! they all need.
//!
//! - [`ports`]: loopback ports that no other test, process or outgoing connection is handed
//!   between picking them and the node binding them.
//! - [`token`]: user and admin tokens signed as the server checks them, without linking the
//!   server's `api` crate into every tool.
//! - [`ready`]: waiting for a started node's `/readyz`, and the tail of its log for the
//!   message when it never comes.

pub mod ports;
pub mod ready;
pub mod token;

pub use ports::free_ports;
pub use ready::{log_tail, wait_ready, NotReady};
pub use token::Tokens;
