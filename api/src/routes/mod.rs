//! One file per endpoint group, each with its handlers.

pub mod booking;
pub mod browse;
pub mod catalog;
pub mod dev;
pub mod live;
pub mod ops;
pub mod search;
pub mod seats;
pub mod waitlist;
pub mod webhooks;
