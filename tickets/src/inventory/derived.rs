//! Indexes derived from the inventory's stored core, so that commands touch only what they
//! need instead of scanning every hold or ticket. Every hold change goes through
//! [`Derived::unindex_hold`] / [`Derived::index_hold`] around it, every ticket state change
//! through `Inventory::set_ticket`. [`Derived::rebuild`] computes them from scratch (on
//! restore, and in `check_invariants`, which compares the two: the paired assertion).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::free::FreeSeats;
use super::{BookingRecord, BookingStatus, HoldRecord, HoldStatus, InventoryCore, TicketState, WaitRecord};
use crate::layout::Layout;
use crate::Millis;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Derived {
    /// Where the tickets are (from the setup; empty before it).
    pub layout: Arc<Layout>,
    /// Free tickets, per section and row.
    pub free: FreeSeats,
    /// Live hold id -> number. The id maps are hash maps: they are only looked up, never
    /// iterated (so their order cannot reach a decision), and ids share long prefixes (the
    /// event id), which made every ordered-map comparison a long `memcmp` (4–5 % of a
    /// leader's CPU in a reserve profile).
    pub hold_ids: HashMap<Arc<str>, u64>,
    /// Ended hold id -> its key in `ended`.
    pub ended_ids: HashMap<Arc<str>, (Millis, u64)>,
    /// `Active` holds by expiry: eager expiry, `earliest_expiry`, availability at a later time.
    pub by_expiry: BTreeSet<(Millis, u64)>,
    /// `Confirming` holds.
    pub confirming: BTreeSet<u64>,
    /// Each user's live holds.
    pub user_holds: HashMap<Arc<str>, BTreeSet<u64>>,
    /// Each user's bookings.
    pub user_bookings: HashMap<Arc<str>, BTreeSet<Arc<str>>>,
    /// Bookings in `RefundPending`.
    pub refunding: BTreeSet<Arc<str>>,
    /// Confirmed hold id -> its booking's id.
    pub booking_by_hold: HashMap<Arc<str>, Arc<str>>,
    /// Idempotency records by expiry, for pruning.
    pub idempotency_by_expiry: BTreeSet<(Millis, Arc<(String, String)>)>,
    /// Tickets stored as `Held`.
    pub held: u64,
    /// Tickets stored as `Sold`.
    pub sold: u64,
    /// Waiting-list entry of each user (its join number).
    pub wait_users: HashMap<Arc<str>, u64>,
    /// Each section's waiting (not offered) entries, by join number.
    pub waiting: Vec<BTreeSet<u64>>,
    /// Entries waiting, over every section (0: no offer to look for).
    pub waiting_count: usize,
    /// Offer hold number -> its entry's join number.
    pub offers: HashMap<u64, u64>,
    /// Hold ids promised to entries (made or to be made), so none is used twice.
    pub wait_hold_ids: HashMap<Arc<str>, u64>,
}

impl Derived {
    pub fn index_hold(&mut self, hold: &HoldRecord) {
        match hold.status {
            HoldStatus::Active => {
                self.by_expiry.insert((hold.expires_at, hold.no));
            }
            HoldStatus::Confirming => {
                self.confirming.insert(hold.no);
            }
            status => unreachable!("only live holds are indexed, not {status:?}"),
        }
        self.hold_ids.insert(hold.id.clone(), hold.no);
        self.user_holds.entry(hold.user.clone()).or_default().insert(hold.no);
    }

    pub fn unindex_hold(&mut self, hold: &HoldRecord) {
        let was_indexed = match hold.status {
            HoldStatus::Active => self.by_expiry.remove(&(hold.expires_at, hold.no)),
            HoldStatus::Confirming => self.confirming.remove(&hold.no),
            _ => false,
        };
        debug_assert!(was_indexed, "hold {} was not indexed under its status", hold.id);
        self.hold_ids.remove(&hold.id);
        if let Some(set) = self.user_holds.get_mut(&hold.user) {
            set.remove(&hold.no);
            if set.is_empty() {
                self.user_holds.remove(&hold.user);
            }
        }
    }

    pub fn index_booking(&mut self, booking: &BookingRecord) {
        self.user_bookings.entry(booking.hold.user.clone()).or_default().insert(booking.id.clone());
        self.booking_by_hold.insert(booking.hold.id.clone(), booking.id.clone());
        if booking.status == BookingStatus::RefundPending {
            self.refunding.insert(booking.id.clone());
        }
    }

    pub fn index_wait(&mut self, entry: &WaitRecord) {
        self.wait_users.insert(entry.user.clone(), entry.seq);
        self.wait_hold_ids.insert(entry.offer_hold_id.clone(), entry.seq);
        match entry.offered {
            Some(no) => {
                self.offers.insert(no, entry.seq);
            }
            None => {
                self.waiting[entry.section as usize].insert(entry.seq);
                self.waiting_count += 1;
            }
        }
    }

    pub fn unindex_wait(&mut self, entry: &WaitRecord) {
        self.wait_users.remove(&entry.user);
        self.wait_hold_ids.remove(&entry.offer_hold_id);
        match entry.offered {
            Some(no) => {
                self.offers.remove(&no);
            }
            None => {
                let was = self.waiting[entry.section as usize].remove(&entry.seq);
                debug_assert!(was, "waiting entry {} was not indexed", entry.seq);
                self.waiting_count -= 1;
            }
        }
    }

    /// Compute every index from the stored core.
    pub fn rebuild(core: &InventoryCore) -> Result<Derived, String> {
        let layout = match &core.setup {
            Some(setup) => Layout::new(&setup.sections, &setup.prices)?,
            None => Layout::default(),
        };
        if core.states.len() != layout.count() {
            return Err(format!("{} ticket states for a layout of {}", core.states.len(), layout.count()));
        }
        let free = FreeSeats::new(&layout, |i| core.states[i as usize] == TicketState::Available);
        let waiting = vec![BTreeSet::new(); layout.sections().len()];
        let mut d = Derived { layout: Arc::new(layout), free, waiting, ..Derived::default() };
        for hold in core.holds.values() {
            d.index_hold(hold);
        }
        for (key, hold) in &core.ended {
            d.ended_ids.insert(hold.id.clone(), *key);
        }
        for booking in core.bookings.values() {
            d.index_booking(booking);
        }
        for (key, record) in &core.idempotency {
            d.idempotency_by_expiry.insert((record.expires_at, key.clone()));
        }
        for entry in core.waitlist.values() {
            if entry.section as usize >= d.waiting.len() {
                return Err(format!("waiting-list entry {} names section {}", entry.seq, entry.section));
            }
            d.index_wait(entry);
        }
        for state in &core.states {
            match state {
                TicketState::Available => {}
                TicketState::Held(_) => d.held += 1,
                TicketState::Sold => d.sold += 1,
            }
        }
        Ok(d)
    }
}
