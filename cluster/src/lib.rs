//! # cluster — the running boxoffice store
//!
//! Owns everything between the HTTP API and consensus: it hosts the catalog group and one
//! group per event on a [`raft::RaftHost`], creates an event's group when the event is
//! created, and runs the side effects the pure rules cannot: the node's deadline scheduler
//! that proposes `Expire` and `QueueAdmit` when they are due, and the payment step
//! (BeginPayment → charge → Confirm / PaymentFailed), including finishing payments a crash
//! left in `Confirming`, and its mirror for refunds.
//!
//! Main type: [`Store`]. Modules:
//! - [`routed`]: the store's front, what the API calls: each operation served here, or asked
//!   of the peer that serves it.
//! - [`route`]: the pure decision of where a request is served (here, which peers, nowhere).
//! - [`peer`]: the peer plane's typed requests, the handler that answers peers with local
//!   operations, and the asking side.
//! - [`node`]: start-up, health, shutdown, and the background tasks with what each needs.
//! - [`store`]: groups, proposing, catalog writes.
//! - [`booking`]: reserve, confirm and payments, release, extend, holder reads (local).
//! - [`refund`]: cancel and refund (BeginRefund → refund → Refunded / RefundFailed), and
//!   finishing refunds a crash left pending.
//! - [`browse`]: stale-tolerant local reads with versions.
//! - [`schedule`]: the node's deadline scheduler (one task for every event placed here).
//! - [`bookings`]: the node's index of bookings by user.
//! - [`reconcile`]: formation, joins, placement and replica moves, driven by the catalog.
//! - [`admin`]: adding and removing nodes, the cluster view.
//! - [`feed`]: keeps this node's search index a projection of the catalog.
//! - [`machine`]: the `raft::StateMachine` adapter around the `tickets` machines.
//! - [`payment`]: payment providers (built-in test provider, Stripe-compatible HTTP).
//! - [`ids`]: id generation; hold and booking ids name their event.
//!
//! Depends on `tickets` and `raft`; knows nothing of HTTP (but for `--join` and the
//! Stripe-compatible payment provider, which are HTTP clients).

pub mod admin;
pub mod booking;
pub mod bookings;
pub mod browse;
pub mod error;
pub mod feed;
pub mod ids;
pub mod join;
pub mod machine;
pub mod node;
pub mod payment;
pub mod peer;
pub mod queue_joins;
pub mod reconcile;
pub mod refund;
pub mod relay_cache;
pub mod route;
pub mod routed;
pub mod schedule;
pub mod store;
pub mod webhooks;

pub use error::{Error, Result};
pub use node::StoreOptions;
pub use store::Store;
