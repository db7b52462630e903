//! Browse reads this node relays from a replica, kept for [`RELAYED_READ_TTL`] and asked once.
//!
//! The API already tells clients they may keep an event page for a second
//! (`Cache-Control: public, max-age=1`), and a replica serves it from local state that may lag
//! the leader. A node that does not host the event keeps the page it relayed for less than
//! that, so an on-sale's crowd on this node costs the replica one request per
//! [`RELAYED_READ_TTL`], not one per buyer; concurrent misses share one request (the first
//! asks, the others wait for its answer). Errors are not kept. A write this node relays for the
//! event drops the page ([`RelayCache::forget`]), so a buyer who reserved through this node
//! does not then read the availability from before their hold.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How long a relayed read is kept: half the `max-age` the API announces for it.
pub const RELAYED_READ_TTL: Duration = Duration::from_millis(500);

/// Events whose reads are kept at once; past it, the expired ones are dropped, and if that is
/// not enough, all of them.
pub const RELAYED_READS_MAX: usize = 4_096;

/// One read kept per event id.
pub struct RelayCache<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
}

struct Entry<T> {
    /// When the request was first made (the answer may be younger, never older).
    at: Instant,
    value: Arc<OnceCell<T>>,
}

impl<T> Default for RelayCache<T> {
    fn default() -> Self {
        RelayCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> RelayCache<T> {
    /// The kept read of `id` if younger than [`RELAYED_READ_TTL`], else `ask`'s answer (kept
    /// when it is `Ok`); concurrent callers share one `ask`.
    pub async fn get_or_ask<E, F, Fut>(&self, id: &str, ask: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.get(id) {
                Some(entry) if entry.at.elapsed() < RELAYED_READ_TTL => entry.value.clone(),
                _ => {
                    if entries.len() >= RELAYED_READS_MAX {
                        entries.retain(|_, e| e.at.elapsed() < RELAYED_READ_TTL);
                        if entries.len() >= RELAYED_READS_MAX {
                            entries.clear();
                        }
                    }
                    let value = Arc::new(OnceCell::new());
                    entries.insert(id.to_string(), Entry { at: Instant::now(), value: value.clone() });
                    value
                }
            }
        };
        match cell.get_or_try_init(ask).await {
            Ok(value) => Ok(value.clone()),
            Err(e) => {
                // Not kept: the next reader asks again (unless a newer entry replaced it).
                let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
                if entries.get(id).is_some_and(|entry| Arc::ptr_eq(&entry.value, &cell)) {
                    entries.remove(id);
                }
                Err(e)
            }
        }
    }

    /// Drop what is kept for `id` (this node relayed a write to it).
    pub fn forget(&self, id: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering;

    use super::*;

    async fn read(
        cache: &RelayCache<u64>,
        asked: &AtomicUsize,
        answer: Result<u64, &'static str>,
    ) -> Result<u64, &'static str> {
        cache
            .get_or_ask("e1", || async {
                asked.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                answer
            })
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn one_ask_per_ttl_and_concurrent_misses_share_it() {
        let cache = RelayCache::default();
        let asked = AtomicUsize::new(0);
        let (a, b, c) = tokio::join!(
            read(&cache, &asked, Ok(1)),
            read(&cache, &asked, Ok(2)),
            read(&cache, &asked, Ok(3))
        );
        assert_eq!((a, b, c), (Ok(1), Ok(1), Ok(1)));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        tokio::time::advance(RELAYED_READ_TTL / 2).await;
        assert_eq!(read(&cache, &asked, Ok(4)).await, Ok(1));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        tokio::time::advance(RELAYED_READ_TTL).await;
        assert_eq!(read(&cache, &asked, Ok(5)).await, Ok(5), "expired: asked again");
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_not_kept_and_forget_drops() {
        let cache = RelayCache::default();
        let asked = AtomicUsize::new(0);
        assert_eq!(read(&cache, &asked, Err("down")).await, Err("down"));
        assert_eq!(read(&cache, &asked, Ok(7)).await, Ok(7), "the error was not kept");
        assert_eq!(read(&cache, &asked, Ok(8)).await, Ok(7));
        cache.forget("e1");
        assert_eq!(read(&cache, &asked, Ok(9)).await, Ok(9), "forgotten after a write");
        assert_eq!(asked.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn bounded() {
        let cache = RelayCache::default();
        for i in 0..RELAYED_READS_MAX + 10 {
            let id = format!("e{i}");
            cache.get_or_ask(&id, || async { Ok::<_, ()>(i) }).await.unwrap();
        }
        let kept = cache.entries.lock().unwrap().len();
        assert!(kept <= RELAYED_READS_MAX, "{kept} entries kept");
    }
}
