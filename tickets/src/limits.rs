//! Every bound the rules enforce, named with its unit last. What happens at the limit is
//! said on each constant: a request past it is rejected with `invalid_request` or
//! `limit_exceeded`, never truncated silently.

/// Hold length when the event does not set one (API default 600 s).
pub const HOLD_SECONDS_DEFAULT: u64 = 600;
/// Shortest hold an event may set; shorter is `invalid_request`.
pub const HOLD_SECONDS_MIN: u64 = 1;
/// Longest hold an event may set; longer is `invalid_request`.
pub const HOLD_SECONDS_MAX: u64 = 3_600;
/// Extensions one hold may get; one more is `limit_exceeded`.
pub const HOLD_EXTENSIONS_MAX: u32 = 2;
/// A hold never lives past its creation time plus this, extensions included.
pub const HOLD_TOTAL_MS_MAX: u64 = 30 * 60 * 1_000;
/// How long a hold stays pinned in `confirming` while the payment runs. Past it the hold is
/// still pinned (a paid hold must end sold), but the leader must finish it on start-up.
pub const PAYMENT_WINDOW_MS: u64 = 5 * 60 * 1_000;
/// How long an idempotency record `(user, key) -> reply` is kept.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 60 * 60 * 1_000;
/// Longest `Idempotency-Key`, in bytes; longer is `invalid_request`.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;
/// Most tickets in one reserve; more is `limit_exceeded`.
pub const TICKETS_PER_HOLD_MAX: u32 = 50;
/// Largest per-user limit an event may set.
pub const PER_USER_LIMIT_MAX: u32 = 50;
/// Most tickets one event may have (seats plus general admission); more is `invalid_request`.
pub const TICKETS_PER_EVENT_MAX: u32 = 200_000;
/// Most sections per venue.
pub const SECTIONS_PER_VENUE_MAX: usize = 100;
/// Most rows per seated section.
pub const ROWS_PER_SECTION_MAX: usize = 500;
/// Most seats per row.
pub const SEATS_PER_ROW_MAX: u32 = 1_000;
/// Longest name (venue, section, row, performer, event, city, genre, type), in bytes.
pub const NAME_BYTES_MAX: usize = 200;
/// Longest event description, in bytes.
pub const DESCRIPTION_BYTES_MAX: usize = 10_000;
/// Most performers on one event.
pub const PERFORMERS_PER_EVENT_MAX: usize = 20;
/// Largest price, in minor units.
pub const PRICE_MAX: u64 = 100_000_000;
/// Most shoppers a queue may admit at once.
pub const QUEUE_MAX_ADMITTED_MAX: u32 = 100_000;
/// Longest admission window, in seconds.
pub const QUEUE_ADMISSION_SECONDS_MAX: u64 = 3_600;
/// Most entries a waiting queue holds; one more join is `limit_exceeded`.
pub const QUEUE_ENTRIES_MAX: usize = 1_000_000;
