//! The directory of the cluster's members as the clients see it: which node ids they may
//! send to, and each id's HTTP base URL.
//!
//! Without the membership nemesis it never changes (ids `1..=n`). With it, a node leaves
//! ([`Directory::withdraw`]: clients stop picking it the moment the nemesis decides to take
//! it out, so they do not pile up 503s from a removed node) and a new one arrives under the
//! id the cluster gave it ([`Directory::admit`]). A withdrawn node's base URL stays known:
//! a request already sent to it finishes and is recorded under its id.
//!
//! The [`super::cluster::Cluster`] writes it; the workload's clients read it.

use std::collections::BTreeMap;
use std::sync::RwLock;

use rand::Rng;

#[derive(Default)]
pub struct Directory {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Every node ever in the cluster: id -> `http://host:port`.
    bases: BTreeMap<u64, String>,
    /// The ids clients pick from, sorted.
    serving: Vec<u64>,
}

impl Directory {
    pub fn new(members: impl IntoIterator<Item = (u64, String)>) -> Directory {
        let d = Directory::default();
        for (id, base) in members {
            d.admit(id, base);
        }
        d
    }

    /// A member clients may send to from now on.
    pub fn admit(&self, id: u64, base: String) {
        let mut inner = self.inner.write().unwrap();
        inner.bases.insert(id, base);
        if let Err(at) = inner.serving.binary_search(&id) {
            inner.serving.insert(at, id);
        }
    }

    /// No client picks `id` any more (its base URL stays known).
    pub fn withdraw(&self, id: u64) {
        self.inner.write().unwrap().serving.retain(|s| *s != id);
    }

    /// The ids clients pick from, sorted.
    pub fn serving(&self) -> Vec<u64> {
        self.inner.read().unwrap().serving.clone()
    }

    /// The base URL of node `id` (a member now or before).
    pub fn base(&self, id: u64) -> String {
        let inner = self.inner.read().unwrap();
        inner.bases.get(&id).cloned().unwrap_or_else(|| panic!("node {id} was never a member"))
    }

    /// A random serving member. One draw of `0..len` and the id at that index: with the
    /// members `1..=n` this is the draw the clients always made, so seeds replay as before.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        let inner = self.inner.read().unwrap();
        assert!(!inner.serving.is_empty(), "no member to send to");
        inner.serving[rng.random_range(0..inner.serving.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn withdrawn_nodes_are_not_picked_but_stay_addressable() {
        let d = Directory::new((1..=3).map(|i| (i, format!("http://n{i}"))));
        d.withdraw(2);
        d.admit(4, "http://n4".into());
        assert_eq!(d.serving(), vec![1, 3, 4]);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            assert_ne!(d.pick(&mut rng), 2);
        }
        assert_eq!(d.base(2), "http://n2");
    }

    #[test]
    fn with_fixed_members_a_pick_is_the_old_draw() {
        let d = Directory::new((1..=5).map(|i| (i, String::new())));
        let (mut a, mut b) = (StdRng::seed_from_u64(9), StdRng::seed_from_u64(9));
        for _ in 0..100 {
            assert_eq!(d.pick(&mut a), b.random_range(0..5usize) as u64 + 1);
        }
    }
}
