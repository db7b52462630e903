//! # tickets — the rules of boxoffice
//!
//! This crate owns every decision the store makes about venues, events, tickets, holds,
//! bookings and the waiting queue. It is pure and deterministic: no IO, no async runtime,
//! no clock, no randomness, no id generation. Whatever is not deterministic (the leader's
//! wall-clock time, new ids, a shuffle seed) is decided *before* a command is proposed and
//! travels inside it. Every replica that applies the same command log therefore reaches the
//! same state and gives the same replies.
//!
//! Two state machines live here:
//!
//! - [`catalog::Catalog`] — venues, performers, events' descriptive data. One per cluster.
//! - [`inventory::Inventory`] — one event's tickets, holds, bookings, idempotency records
//!   and waiting queue. One per event.
//!
//! Both are driven by `apply(command, now_ms) -> reply`. Time never runs backwards inside a
//! machine: its clock is `max(previous now, stamped now)` (see [`clock::Clock`]).
//!
//! A rule violation (seat taken, hold expired) is a normal [`Rejection`] reply, decided
//! identically on every replica. There is no IO inside apply, so nothing here can fail in
//! any other way.
//!
//! Module layout:
//! - [`clock`]: the monotonic clock each machine keeps.
//! - [`limits`]: every bound, as a named constant.
//! - [`rejection`]: the rule-violation replies, one per API error code.
//! - [`catalog`]: venues, performers, events; validation of their specs.
//! - [`layout`]: turning a venue's sections into an event's ticket list.
//! - [`placement`]: which nodes host an event's group (least loaded, ties by id).
//! - [`inventory`]: the event-inventory machine (reserve, pay, confirm, release, expire, extend).
//! - [`queue`]: the waiting queue inside an event's inventory.
//! - `pairs` (private): serde helper storing tuple-keyed maps as pairs, so JSON can hold them.
//!
//! Encoding caveat: every type here is stored with bincode through serde, which is not
//! self-describing. Do not use `#[serde(tag)]`, `untagged`, `flatten` or
//! `skip_serializing_if` on stored types.

pub mod catalog;
pub mod clock;
pub mod ids;
pub mod inventory;
pub mod layout;
pub mod limits;
mod pairs;
pub mod placement;
pub mod queue;
pub mod rejection;
pub mod webhooks;

pub use rejection::Rejection;

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = u64;
pub use ids::UserId;
pub type VenueId = String;
pub type PerformerId = String;
pub use ids::EventId;
pub type TicketId = String;
pub use ids::BookingId;
pub use ids::HoldId;
/// A cluster node's id (from 1).
pub type NodeId = u64;
