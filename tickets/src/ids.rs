//! Typed ids: an id of one kind cannot be passed where another is expected, and an id that
//! names its event (a hold's, a booking's) says which without parsing at every use.
//!
//! Each is a `String` underneath, serialized as one (`serde(transparent)`: the wire and the
//! stored encodings are those of the plain string), and reads as a `&str` (`Deref`,
//! `Borrow<str>`, so maps keyed by an id are looked up by a `&str`).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }
        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

string_id!(
    /// A hold: `hld_<event key>_<random>` ([`HoldId::event`]).
    HoldId
);

string_id!(
    /// An event: `evt_<key>`, also the name of its Raft group and sled trees.
    EventId
);

string_id!(
    /// A booking: `bkg_<event key>_<random>` ([`BookingId::event`]).
    BookingId
);

string_id!(
    /// A buyer or admin, as their token's `sub` names them (1..=128 bytes, checked at the API).
    UserId
);

/// The event a `<prefix><event key>_<random>` id belongs to (`evt_<event key>`), if the id
/// is well formed: both parts non-empty and alphanumeric.
fn event_of(id: &str, prefix: &str) -> Option<EventId> {
    let (key, tail) = id.strip_prefix(prefix)?.split_once('_')?;
    let well_formed = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (well_formed(key) && well_formed(tail)).then(|| EventId(format!("evt_{key}")))
}

impl HoldId {
    /// The event this hold belongs to (`hld_<key>_<random>` → `evt_<key>`); `None` for an id
    /// this store never made (its answer is then 404: no event holds it).
    pub fn event(&self) -> Option<EventId> {
        event_of(&self.0, "hld_")
    }
}

impl BookingId {
    /// The event this booking belongs to (`bkg_<key>_<random>` → `evt_<key>`), as
    /// [`HoldId::event`].
    pub fn event(&self) -> Option<EventId> {
        event_of(&self.0, "bkg_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_and_booking_ids_name_their_event() {
        assert_eq!(HoldId::from("hld_ab12_cd34").event().as_deref(), Some("evt_ab12"));
        assert_eq!(BookingId::from("bkg_ab12_cd34").event().as_deref(), Some("evt_ab12"));
        // A booking id is not a hold id, nor the other way round.
        assert_eq!(HoldId::from("bkg_ab12_cd34").event(), None);
        assert_eq!(BookingId::from("hld_ab12_cd34").event(), None);
        for bad in ["", "hld_", "hld_abc", "hld__x", "hld_a_", "evt_abc", "hld_a/b_c", "hld_a_b c"] {
            assert_eq!(HoldId::from(bad).event(), None, "{bad:?}");
        }
    }

    #[test]
    fn an_id_encodes_as_its_string() {
        // serde(transparent): stored and wire encodings are unchanged by the newtype.
        let id = UserId::from("ann");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"ann\"");
        let back: UserId = serde_json::from_str("\"ann\"").unwrap();
        assert_eq!(back, "ann");
    }
}
