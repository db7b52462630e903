//! The node's index of bookings by user, so `GET /v1/me/bookings` reads a user's few bookings
//! instead of every event group on the node (most of which are not even in memory).
//!
//! Every inventory replica on this node reports the bookings it makes, and all of its bookings
//! when a snapshot is installed ([`crate::machine::NodeHooks::booked`]); they go into two sled
//! trees: `user \0 booking id -> booking` and `event \0 booking id -> user` (to forget an
//! event whose replica leaves this node). A booking changes only by its refund (status
//! `refund_pending`, `refunded` or back to `confirmed`): the entry that changes it reports it
//! again and its record is overwritten; writing the same record again is harmless.
//!
//! It is derived data, and its writes are not fsynced on their own: a crash may lose the last
//! few. Those come back, because the groups that ran at the crash are reopened at start-up
//! (`RaftHost::recover`) and replay their log, reporting their bookings again.

use tickets::inventory::Booking;

/// See the module doc.
pub struct BookingIndex {
    by_user: sled::Tree,
    by_event: sled::Tree,
}

fn key(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + b.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn prefix(a: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k
}

impl BookingIndex {
    pub fn open(db: &sled::Db) -> sled::Result<BookingIndex> {
        Ok(BookingIndex {
            by_user: db.open_tree("index:user_bookings")?,
            by_event: db.open_tree("index:event_bookings")?,
        })
    }

    /// Record `bookings` of `event_id`.
    pub fn add(&self, event_id: &str, bookings: &[Booking]) {
        for b in bookings {
            let Ok(value) = bincode::serde::encode_to_vec(b, bincode::config::standard()) else { continue };
            let written = self
                .by_user
                .insert(key(&b.user, &b.id), value)
                .and_then(|_| self.by_event.insert(key(event_id, &b.id), b.user.as_bytes()));
            if let Err(e) = written {
                tracing::warn!(event = event_id, booking = %b.id, error = %e, "could not index a booking");
            }
        }
    }

    /// Forget every booking of `event_id` (its replica left this node).
    pub fn remove_event(&self, event_id: &str) {
        for item in self.by_event.scan_prefix(prefix(event_id)) {
            let Ok((k, user)) = item else { continue };
            let booking = &k[event_id.len() + 1..];
            let mut user_key = user.to_vec();
            user_key.push(0);
            user_key.extend_from_slice(booking);
            let _ = self.by_user.remove(user_key);
            let _ = self.by_event.remove(k);
        }
    }

    /// `user`'s bookings on the events this node hosts, newest first.
    pub fn of_user(&self, user: &str) -> Vec<Booking> {
        let mut out: Vec<Booking> = self
            .by_user
            .scan_prefix(prefix(user))
            .filter_map(|item| item.ok())
            .filter_map(|(_, v)| {
                bincode::serde::decode_from_slice(&v, bincode::config::standard()).ok().map(|(b, _)| b)
            })
            .collect();
        out.sort_by(|a: &Booking, b: &Booking| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(id: &str, user: &str, event: &str, at: u64) -> Booking {
        Booking {
            id: id.into(),
            hold_id: format!("h{id}").into(),
            event_id: event.into(),
            user: user.into(),
            tickets: vec!["A-1-1".into()],
            amount: 1,
            currency: "EUR".into(),
            payment_ref: "ch".into(),
            created_at: at,
            status: tickets::inventory::BookingStatus::Confirmed,
            refund: None,
            refund_ref: None,
            refunded_at: None,
        }
    }

    #[test]
    fn by_user_newest_first_and_forgotten_with_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let index = BookingIndex::open(&db).unwrap();
        index.add("evt_a", &[booking("b1", "ann", "evt_a", 10), booking("b2", "bob", "evt_a", 11)]);
        index.add("evt_b", &[booking("b3", "ann", "evt_b", 12)]);
        // "an" is a prefix of "ann": the separator keeps them apart.
        index.add("evt_b", &[booking("b4", "an", "evt_b", 13)]);
        let ids = |v: Vec<Booking>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(ids(index.of_user("ann")), ["b3", "b1"]);
        assert_eq!(ids(index.of_user("an")), ["b4"]);
        index.remove_event("evt_a");
        assert_eq!(ids(index.of_user("ann")), ["b3"]);
        assert!(index.of_user("bob").is_empty());
        // A refund changes a booking: reported again, its record is replaced.
        let mut refunded = booking("b3", "ann", "evt_b", 12);
        refunded.status = tickets::inventory::BookingStatus::Refunded;
        index.add("evt_b", &[refunded.clone()]);
        assert_eq!(index.of_user("ann"), vec![refunded]);
    }
}
