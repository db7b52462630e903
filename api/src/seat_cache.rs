//! The seat map's bytes, built once and shared by every reader: an on-sale's viewers all
//! load the same map at once, so each answer body (`/layout`, `/seats`, `/tickets`) is
//! serialized and gzipped once per event version and then only handed out.
//!
//! - [`Encoded`]: one body, raw and gzipped, with its ETag; [`Encoded::respond`] picks the
//!   encoding from `Accept-Encoding`, answers `304` to a matching `If-None-Match`, and sets
//!   `ETag`, `Cache-Control` and `Vary: Accept-Encoding`.
//! - [`BodyCache`]: an LRU of event id → the newest body built for it, bounded by entries
//!   and by bytes ([`LAYOUT_CACHE`], [`STATUSES_CACHE`], [`TICKETS_CACHE`]). A body is
//!   reused while the event's version is the one it was built at and, for bodies that
//!   depend on the clock (a hold past its expiry reads as available before the leader's
//!   `Expire` entry), until its `valid_until`. Readers that miss together wait for one
//!   build (a `OnceCell` per slot) instead of each building their own.
//!
//! Caveat: a body rebuilt at the same version because a hold lapsed keeps the version's
//! (weak) ETag, so a client holding the earlier body may get `304` for it until the
//! `Expire` entry moves the version, normally milliseconds later (the seat stream carries
//! that change too).

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use flate2::write::GzEncoder;
use flate2::Compression;
use lru::LruCache;
use tokio::sync::OnceCell;

use crate::error::ApiError;

/// How many entries and bytes one cache may keep.
#[derive(Clone, Copy, Debug)]
pub struct CacheBounds {
    /// Events kept; the least recently read goes first.
    pub events_max: usize,
    /// Raw plus gzipped bytes kept over all events; past it the least recently read go
    /// (the newest body is always kept, however large).
    pub bytes_max: usize,
}

/// Layouts never change for an event: many events fit (a 20,000-seat layout is ~120 KB raw).
pub const LAYOUT_CACHE: CacheBounds = CacheBounds { events_max: 512, bytes_max: 64 * 1024 * 1024 };
/// One byte per ticket (plus gzip): 20,000 seats are ~20 KB.
pub const STATUSES_CACHE: CacheBounds = CacheBounds { events_max: 512, bytes_max: 32 * 1024 * 1024 };
/// The full JSON is ~95 bytes per ticket (1.9 MB for 20,000 seats): fewer are kept.
pub const TICKETS_CACHE: CacheBounds = CacheBounds { events_max: 64, bytes_max: 64 * 1024 * 1024 };

/// One answer body, raw and gzipped, with its ETag.
#[derive(Debug)]
pub struct Encoded {
    pub raw: Bytes,
    pub gzip: Bytes,
    pub etag: String,
    /// The event version it reflects (0 for version-less bodies such as the layout).
    pub version: u64,
    /// When it stops being true without a new version (a hold lapses); `None`: never.
    pub valid_until: Option<u64>,
}

impl Encoded {
    /// `raw` and its gzip (default level: ~20 KB of statuses take well under a millisecond).
    pub fn new(raw: Vec<u8>, etag: String, version: u64, valid_until: Option<u64>) -> Encoded {
        let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 8 + 64), Compression::default());
        // Writing to a Vec cannot fail.
        gz.write_all(&raw).expect("gzip into memory");
        let gzip = gz.finish().expect("gzip into memory");
        Encoded { raw: Bytes::from(raw), gzip: Bytes::from(gzip), etag, version, valid_until }
    }

    fn bytes(&self) -> usize {
        self.raw.len() + self.gzip.len()
    }

    /// The answer to a GET with `headers`: `304` when `If-None-Match` names this ETag,
    /// else the body (gzipped when the client accepts gzip) as `application/json`.
    pub fn respond(&self, headers: &HeaderMap, cache_control: &'static str) -> Response {
        if if_none_match(headers, &self.etag) {
            return not_modified(&self.etag, cache_control);
        }
        let gzip = accepts_gzip(headers);
        let mut r = Response::new(Body::from(if gzip { self.gzip.clone() } else { self.raw.clone() }));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        set_cache_headers(&mut r, &self.etag, cache_control);
        r
    }
}

/// `304 Not Modified` for `etag`, with the headers its `200` would carry.
pub fn not_modified(etag: &str, cache_control: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    set_cache_headers(&mut r, etag, cache_control);
    r
}

/// `ETag`, `Cache-Control` and `Vary: Accept-Encoding` (every cached body here may be gzipped).
pub fn set_cache_headers(r: &mut Response, etag: &str, cache_control: &'static str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
}

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks for it) or `*`.
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let wanted = bare(etag);
    value.split(',').any(|t| t.trim() == "*" || bare(t) == wanted)
}

/// Whether `Accept-Encoding` allows gzip: `gzip`, `x-gzip` or `*`, with a non-zero `q`.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()) {
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => star = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// A slot: the version seen when it was made and the body built for it (once).
struct Slot {
    version: u64,
    body: OnceCell<Arc<Encoded>>,
    /// Bytes counted for this slot in [`Inner::bytes`] (0 until its body is built).
    counted: std::sync::atomic::AtomicUsize,
}

struct Inner {
    slots: LruCache<String, Arc<Slot>>,
    bytes: usize,
}

/// Event id → the newest body built for it; see the module doc.
pub struct BodyCache {
    inner: Mutex<Inner>,
    bounds: CacheBounds,
}

impl BodyCache {
    pub fn new(bounds: CacheBounds) -> BodyCache {
        let events = NonZeroUsize::new(bounds.events_max.max(1)).expect("at least one");
        BodyCache { inner: Mutex::new(Inner { slots: LruCache::new(events), bytes: 0 }), bounds }
    }

    /// The body for `event` at `version`, built by `build` if no reader has built it yet
    /// (or the one kept is for another version, or has lapsed by `now_ms`).
    pub async fn get_or_build<F, Fut>(
        &self,
        event: &str,
        version: u64,
        now_ms: u64,
        build: F,
    ) -> Result<Arc<Encoded>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Encoded, ApiError>>,
    {
        let slot = {
            let mut inner = self.lock();
            let fresh = inner.slots.get(event).filter(|slot| {
                slot.version == version
                    && slot.body.get().is_none_or(|b| b.valid_until.is_none_or(|t| now_ms < t))
            });
            match fresh {
                Some(slot) => slot.clone(),
                None => {
                    let slot = Arc::new(Slot { version, body: OnceCell::new(), counted: Default::default() });
                    let evicted = inner.slots.push(event.to_string(), slot.clone());
                    if let Some((_, old)) = evicted {
                        inner.bytes -= old.counted.load(std::sync::atomic::Ordering::Relaxed);
                    }
                    slot
                }
            }
        };
        let mut built_here = false;
        let body = slot
            .body
            .get_or_try_init(|| async {
                built_here = true;
                build().await.map(Arc::new)
            })
            .await?
            .clone();
        if built_here {
            self.account(event, &slot, body.bytes());
        }
        Ok(body)
    }

    /// Count a newly built body's bytes, then drop the least recently read bodies while
    /// over the byte bound (never the one just built).
    fn account(&self, event: &str, slot: &Arc<Slot>, bytes: usize) {
        let mut inner = self.lock();
        let current = inner.slots.peek(event).is_some_and(|s| Arc::ptr_eq(s, slot));
        if !current {
            return; // Replaced while it was built: it was never counted and is not kept.
        }
        slot.counted.store(bytes, std::sync::atomic::Ordering::Relaxed);
        inner.bytes += bytes;
        while inner.bytes > self.bounds.bytes_max && inner.slots.len() > 1 {
            let Some((key, old)) = inner.slots.pop_lru() else { break };
            if Arc::ptr_eq(&old, slot) {
                // The newest is always kept: put it back as most recent and stop.
                inner.slots.put(key, old);
                break;
            }
            inner.bytes -= old.counted.load(std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Bodies kept and their bytes (for tests and metrics).
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.slots.len(), inner.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The three caches one node keeps.
pub struct SeatCaches {
    pub layout: BodyCache,
    pub statuses: BodyCache,
    pub tickets: BodyCache,
}

impl Default for SeatCaches {
    fn default() -> Self {
        SeatCaches {
            layout: BodyCache::new(LAYOUT_CACHE),
            statuses: BodyCache::new(STATUSES_CACHE),
            tickets: BodyCache::new(TICKETS_CACHE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gzip_is_negotiated() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip, deflate, br")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "br;q=1.0, GZIP;q=0.5")])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0, *")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(if_none_match(&headers(&[("if-none-match", "W/\"s5\"")]), "W/\"s5\""));
        assert!(if_none_match(&headers(&[("if-none-match", "\"x\", \"s5\"")]), "W/\"s5\""));
        assert!(if_none_match(&headers(&[("if-none-match", "*")]), "\"l1\""));
        assert!(!if_none_match(&headers(&[("if-none-match", "W/\"s4\"")]), "W/\"s5\""));
        assert!(!if_none_match(&headers(&[]), "W/\"s5\""));
    }

    fn body(version: u64, size: usize, valid_until: Option<u64>) -> Encoded {
        Encoded::new(vec![b'a'; size], format!("W/\"s{version}\""), version, valid_until)
    }

    #[tokio::test]
    async fn builds_once_per_version_and_again_after_a_lapse() {
        let cache = BodyCache::new(STATUSES_CACHE);
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let count = || {
            builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        for _ in 0..3 {
            let b = cache
                .get_or_build("e", 1, 0, || async {
                    count();
                    Ok(body(1, 10, Some(100)))
                })
                .await
                .unwrap();
            assert_eq!(b.version, 1);
        }
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Same version, but a hold lapsed at 100: built again.
        cache.get_or_build("e", 1, 100, || async { Ok(body(1, 10, None)) }).await.unwrap();
        // A new version replaces the slot; the old bytes are no longer counted.
        cache.get_or_build("e", 2, 100, || async { Ok(body(2, 10, None)) }).await.unwrap();
        let (events, bytes) = cache.usage();
        assert_eq!(events, 1);
        assert_eq!(bytes, body(2, 10, None).bytes());
    }

    #[tokio::test]
    async fn the_byte_bound_drops_the_least_recent() {
        let cache = BodyCache::new(CacheBounds { events_max: 10, bytes_max: 3_000 });
        for e in ["a", "b", "c"] {
            // Incompressible enough: distinct bytes.
            let raw: Vec<u8> = (0..1_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
            cache
                .get_or_build(e, 1, 0, || async { Ok(Encoded::new(raw, "\"x\"".into(), 1, None)) })
                .await
                .unwrap();
        }
        let (events, bytes) = cache.usage();
        assert!(bytes <= 3_000, "{bytes}");
        assert!(events < 3, "{events}");
        // The newest is kept even when it alone is over the bound.
        let big = vec![7u8; 10_000];
        cache
            .get_or_build("d", 1, 0, || async { Ok(Encoded::new(big, "\"y\"".into(), 1, None)) })
            .await
            .unwrap();
        assert_eq!(cache.usage().0, 1);
    }

    #[test]
    fn respond_picks_the_encoding_and_answers_304() {
        let b = body(3, 100, None);
        let r = b.respond(&headers(&[("accept-encoding", "gzip")]), "public, max-age=1");
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        assert_eq!(r.headers()[header::ETAG], "W/\"s3\"");
        let r = b.respond(&headers(&[]), "public, max-age=1");
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        let r = b.respond(&headers(&[("if-none-match", "W/\"s3\"")]), "public, max-age=1");
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], "W/\"s3\"");
    }
}
