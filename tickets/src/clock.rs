//! The machine clock: the leader stamps each command with its wall-clock time, and a machine
//! advances its clock to `max(previous, stamped)` so time never runs backwards, whatever the
//! leaders' clocks do.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A clock that only moves forward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    now: Millis,
}

impl Clock {
    /// Advance to the stamped time if it is later; returns the machine's `now`.
    pub fn advance(&mut self, stamped: Millis) -> Millis {
        self.now = self.now.max(stamped);
        self.now
    }

    pub fn now(&self) -> Millis {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_runs_backwards() {
        let mut c = Clock::default();
        assert_eq!(c.advance(1_000), 1_000);
        assert_eq!(c.advance(500), 1_000);
        assert_eq!(c.advance(2_000), 2_000);
        assert_eq!(c.now(), 2_000);
    }
}
