//! The outbox: what happened in this event that systems outside want to hear of (webhooks),
//! written in the same apply that made it happen. A notice is therefore in the log exactly
//! when its cause is: a leader change or a crash neither loses one (the next leader finds it
//! still here) nor invents one (every replica numbers it the same). The leader delivers the
//! notices after commit and then proposes [`OutboxAck`](super::InventoryCommand::OutboxAck),
//! which drops them; delivery is at least once, and a notice's id (`ntc_<event>_<seq>`) is
//! what receivers dedupe on.
//!
//! Notices: `booking.confirmed` (a confirm made a booking), `booking.refunded` (a refund
//! completed), `hold.expired` (a hold ran out, with its expiry as the time), `event.sold_out`
//! (the last ticket was sold; again after a refund and a new sell-out), `waitlist.offered` (an
//! entry got an offer: its hold), `event.cancelled`. Each carries the booking or hold as it
//! was then. At most [`OUTBOX_MAX`] wait; past that the oldest is dropped and counted
//! (`outbox_dropped`), so a deliverer that is stuck costs bounded memory.

use serde::{Deserialize, Serialize};

use super::{Booking, Hold, Inventory, InventoryReply, Outcome};
use crate::Millis;

/// Most notices an event's outbox keeps.
pub const OUTBOX_MAX: usize = 20_000;

/// What a notice says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NoticeKind {
    BookingConfirmed,
    BookingRefunded,
    HoldExpired,
    EventSoldOut,
    WaitlistOffered,
    EventCancelled,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 6] = [
        NoticeKind::BookingConfirmed,
        NoticeKind::BookingRefunded,
        NoticeKind::HoldExpired,
        NoticeKind::EventSoldOut,
        NoticeKind::WaitlistOffered,
        NoticeKind::EventCancelled,
    ];

    /// The webhook event type, e.g. `booking.confirmed`.
    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::BookingConfirmed => "booking.confirmed",
            NoticeKind::BookingRefunded => "booking.refunded",
            NoticeKind::HoldExpired => "hold.expired",
            NoticeKind::EventSoldOut => "event.sold_out",
            NoticeKind::WaitlistOffered => "waitlist.offered",
            NoticeKind::EventCancelled => "event.cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The object a notice is about, as it was when it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeData {
    Booking(Box<Booking>),
    Hold(Box<Hold>),
    /// The event itself (sold out, cancelled).
    Event,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Numbered from 1 in the event, without gaps.
    pub seq: u64,
    pub kind: NoticeKind,
    /// When it happened (log time; an expiry's own time).
    pub at: Millis,
    pub data: NoticeData,
}

impl Notice {
    /// The notice's id, unique in the cluster and the same on every replica and delivery:
    /// `ntc_<event id without evt_>_<seq>`.
    pub fn id(&self, event_id: &str) -> String {
        format!("ntc_{}_{}", event_id.strip_prefix("evt_").unwrap_or(event_id), self.seq)
    }
}

impl Inventory {
    /// Record a notice (dropping the oldest when the outbox is full).
    pub(super) fn notify(&mut self, kind: NoticeKind, at: Millis, data: NoticeData) {
        self.core.next_notice_seq += 1;
        let notice = Notice { seq: self.core.next_notice_seq, kind, at, data };
        if self.core.outbox.len() >= OUTBOX_MAX {
            self.core.outbox.pop_front();
            self.core.outbox_dropped += 1;
        }
        self.core.outbox.push_back(notice);
    }

    /// A notice about a hold as it is now.
    pub(super) fn notify_hold(&mut self, kind: NoticeKind, hold: Hold, at: Millis) {
        self.notify(kind, at, NoticeData::Hold(Box::new(hold)));
    }

    /// Drop the notices numbered up to `upto` (delivered). Idempotent.
    pub(super) fn outbox_ack(&mut self, upto: u64) -> InventoryReply {
        while self.core.outbox.front().is_some_and(|n| n.seq <= upto) {
            self.core.outbox.pop_front();
        }
        Ok(Outcome::Acked { pending: self.core.outbox.len() as u64 })
    }

    /// The notices not yet acknowledged, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = &Notice> {
        self.core.outbox.iter()
    }

    pub fn outbox_len(&self) -> usize {
        self.core.outbox.len()
    }

    /// Notices dropped because the outbox was full.
    pub fn outbox_dropped(&self) -> u64 {
        self.core.outbox_dropped
    }

    /// The number the last notice got (0: none yet).
    pub fn last_notice_seq(&self) -> u64 {
        self.core.next_notice_seq
    }
}
