//! The JSON shapes of docs/api.md, and their conversions from and to the `tickets` types.
//! Requests use `deny_unknown_fields`, so a misspelt field is a 400 naming it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;

use tickets::catalog::{
    Event, EventPatch, GeoPoint, Performer, PerformerSpec, QueueSettings, RowSpec, SectionKind, SectionSpec,
    Venue, VenueSpec,
};
use tickets::inventory::{booking_status_name, Availability, Booking, Hold, HoldStatus, TicketStatus};
use tickets::layout::TicketSpec;
use tickets::Millis;

use crate::error::ApiError;

// ---- time -----------------------------------------------------------------------------

/// Milliseconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339(ms: Millis) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339).unwrap_or_default()
}

/// An RFC 3339 time as milliseconds since the epoch; times before 1970 are refused.
pub fn parse_time(field: &str, value: &str) -> Result<Millis, ApiError> {
    let t = OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|e| ApiError::invalid(field, format!("not an RFC 3339 time: {e}")))?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| ApiError::invalid(field, "must not be before 1970"))
}

// ---- catalog --------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub name: String,
    pub seats: u32,
}

/// `{name, kind: "seated", rows: [...]}` or `{name, kind: "general", capacity}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    /// `seated` or `general`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Row>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueCreate {
    pub name: String,
    pub city: String,
    pub country: String,
    pub location: Location,
    pub sections: Vec<Section>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VenueOut {
    pub id: String,
    pub name: String,
    pub city: String,
    pub country: String,
    pub location: Location,
    pub sections: Vec<Section>,
    /// Number of tickets an event here has.
    pub capacity: u64,
    pub created_at: String,
}

impl VenueCreate {
    pub fn into_spec(self) -> Result<VenueSpec, ApiError> {
        let mut sections = Vec::with_capacity(self.sections.len());
        for (i, s) in self.sections.into_iter().enumerate() {
            let kind = match (s.kind.as_str(), s.rows, s.capacity) {
                ("seated", Some(rows), None) => SectionKind::Seated {
                    rows: rows.into_iter().map(|r| RowSpec { name: r.name, seats: r.seats }).collect(),
                },
                ("general", None, Some(capacity)) => SectionKind::General { capacity },
                ("seated", _, _) => {
                    return Err(ApiError::invalid(
                        format!("sections[{i}]"),
                        "a seated section has rows and no capacity",
                    ))
                }
                ("general", _, _) => {
                    return Err(ApiError::invalid(
                        format!("sections[{i}]"),
                        "a general section has capacity and no rows",
                    ))
                }
                _ => {
                    return Err(ApiError::invalid(
                        format!("sections[{i}].kind"),
                        "must be \"seated\" or \"general\"",
                    ))
                }
            };
            sections.push(SectionSpec { name: s.name, kind });
        }
        Ok(VenueSpec {
            name: self.name,
            city: self.city,
            country: self.country,
            location: GeoPoint { lat: self.location.lat, lon: self.location.lon },
            sections,
        })
    }
}

impl From<&Venue> for VenueOut {
    fn from(v: &Venue) -> Self {
        let sections = v
            .spec
            .sections
            .iter()
            .map(|s| match &s.kind {
                SectionKind::Seated { rows } => Section {
                    name: s.name.clone(),
                    kind: "seated".into(),
                    rows: Some(rows.iter().map(|r| Row { name: r.name.clone(), seats: r.seats }).collect()),
                    capacity: None,
                },
                SectionKind::General { capacity } => Section {
                    name: s.name.clone(),
                    kind: "general".into(),
                    rows: None,
                    capacity: Some(*capacity),
                },
            })
            .collect();
        VenueOut {
            id: v.id.clone(),
            name: v.spec.name.clone(),
            city: v.spec.city.clone(),
            country: v.spec.country.clone(),
            location: Location { lat: v.spec.location.lat, lon: v.spec.location.lon },
            sections,
            capacity: v.spec.capacity(),
            created_at: rfc3339(v.created_at),
        }
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PerformerCreate {
    pub name: String,
    pub genre: String,
}

impl PerformerCreate {
    pub fn into_spec(self) -> PerformerSpec {
        PerformerSpec { name: self.name, genre: self.genre }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PerformerOut {
    pub id: String,
    pub name: String,
    pub genre: String,
}

impl From<&Performer> for PerformerOut {
    fn from(p: &Performer) -> Self {
        PerformerOut { id: p.id.clone(), name: p.spec.name.clone(), genre: p.spec.genre.clone() }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_max_admitted")]
    pub max_admitted: u32,
    #[serde(default = "default_admission_seconds")]
    pub admission_seconds: u64,
}

fn default_max_admitted() -> u32 {
    QueueSettings::default().max_admitted
}

fn default_admission_seconds() -> u64 {
    QueueSettings::default().admission_seconds
}

/// Per-user limit when the event does not set one.
pub const PER_USER_LIMIT_DEFAULT: u32 = 8;

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub venue_id: String,
    #[serde(default)]
    pub performer_ids: Vec<String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; default: now (on sale at once).
    #[serde(default)]
    pub on_sale_at: Option<String>,
    /// RFC 3339, after `on_sale_at`: reserves at or after it get 409 `event_closed` (holds
    /// made before may still be confirmed); default: `starts_at`.
    #[serde(default)]
    pub sales_end: Option<String>,
    /// Price per section name, in minor units; every section of the venue needs one.
    pub prices: BTreeMap<String, u64>,
    /// ISO 4217; default USD.
    #[serde(default)]
    pub currency: Option<String>,
    /// Default 8.
    #[serde(default)]
    pub per_user_limit: Option<u32>,
    /// Default 600.
    #[serde(default)]
    pub hold_seconds: Option<u64>,
    #[serde(default)]
    pub queue: Option<Queue>,
    /// RFC 3339: buyers may cancel their bookings (refunded) before it; admins any time.
    /// Default: `starts_at` (until the show starts).
    #[serde(default)]
    pub refund_until: Option<String>,
    /// How long a waiting-list offer is kept for its entry (1..=3600). Default:
    /// `hold_seconds`.
    #[serde(default)]
    pub waitlist_offer_seconds: Option<u64>,
}

impl EventCreate {
    pub fn into_spec(self, now: Millis) -> Result<tickets::catalog::EventSpec, ApiError> {
        let starts_at = parse_time("starts_at", &self.starts_at)?;
        let on_sale_at = match &self.on_sale_at {
            Some(s) => parse_time("on_sale_at", s)?,
            None => now.min(starts_at),
        };
        let sales_end = self.sales_end.as_deref().map(|s| parse_time("sales_end", s)).transpose()?;
        let refund_until = self.refund_until.as_deref().map(|s| parse_time("refund_until", s)).transpose()?;
        let queue = self.queue.map_or_else(QueueSettings::default, |q| QueueSettings {
            enabled: q.enabled,
            max_admitted: q.max_admitted,
            admission_seconds: q.admission_seconds,
        });
        Ok(tickets::catalog::EventSpec {
            name: self.name,
            description: self.description,
            event_type: self.event_type,
            venue_id: self.venue_id,
            performer_ids: self.performer_ids,
            starts_at,
            on_sale_at,
            sales_end,
            prices: self.prices,
            currency: self.currency.unwrap_or_else(|| "USD".into()),
            per_user_limit: self.per_user_limit.unwrap_or(PER_USER_LIMIT_DEFAULT),
            hold_seconds: self.hold_seconds.unwrap_or(tickets::limits::HOLD_SECONDS_DEFAULT),
            queue,
            refund_until,
            waitlist_offer_seconds: self.waitlist_offer_seconds,
        })
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub performer_ids: Option<Vec<String>>,
    /// RFC 3339; not in the past. Moves the end of sales too when `sales_end` was not set.
    pub starts_at: Option<String>,
    /// RFC 3339, after `on_sale_at`; now or past closes the sale at once.
    pub sales_end: Option<String>,
    /// RFC 3339; the end of the buyers' refund window (now or past closes it at once).
    /// Moves with `starts_at` when it was not set.
    pub refund_until: Option<String>,
}

impl EventUpdate {
    pub fn into_patch(self) -> Result<EventPatch, ApiError> {
        Ok(EventPatch {
            name: self.name,
            description: self.description,
            event_type: self.event_type,
            performer_ids: self.performer_ids,
            starts_at: self.starts_at.as_deref().map(|s| parse_time("starts_at", s)).transpose()?,
            sales_end: self.sales_end.as_deref().map(|s| parse_time("sales_end", s)).transpose()?,
            refund_until: self.refund_until.as_deref().map(|s| parse_time("refund_until", s)).transpose()?,
        })
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub venue_id: String,
    pub performer_ids: Vec<String>,
    pub starts_at: String,
    pub on_sale_at: String,
    /// When sales close: the one given, else `starts_at`.
    pub sales_end: String,
    pub prices: BTreeMap<String, u64>,
    pub currency: String,
    pub per_user_limit: u32,
    pub hold_seconds: u64,
    pub queue: Queue,
    /// Until when buyers may cancel: the one given, else `starts_at`.
    pub refund_until: String,
    /// How long a waiting-list offer is kept: the one given, else `hold_seconds`.
    pub waitlist_offer_seconds: u64,
    /// `scheduled` or `cancelled`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Event> for EventOut {
    fn from(e: &Event) -> Self {
        let s = &e.spec;
        EventOut {
            id: e.id.to_string(),
            name: s.name.clone(),
            description: s.description.clone(),
            event_type: s.event_type.clone(),
            venue_id: s.venue_id.clone(),
            performer_ids: s.performer_ids.clone(),
            starts_at: rfc3339(s.starts_at),
            on_sale_at: rfc3339(s.on_sale_at),
            sales_end: rfc3339(s.sales_end()),
            prices: s.prices.clone(),
            currency: s.currency.clone(),
            per_user_limit: s.per_user_limit,
            hold_seconds: s.hold_seconds,
            queue: Queue {
                enabled: s.queue.enabled,
                max_admitted: s.queue.max_admitted,
                admission_seconds: s.queue.admission_seconds,
            },
            refund_until: rfc3339(s.refund_until()),
            waitlist_offer_seconds: s.waitlist_offer_ms() / 1_000,
            status: if e.cancelled { "cancelled" } else { "scheduled" }.into(),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

// ---- browse ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AvailabilityOut {
    pub available: u64,
    pub held: u64,
    pub sold: u64,
}

impl From<Availability> for AvailabilityOut {
    fn from(a: Availability) -> Self {
        AvailabilityOut { available: a.available, held: a.held, sold: a.sold }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventPageOut {
    pub event: EventOut,
    pub venue: VenueOut,
    pub performers: Vec<PerformerOut>,
    pub availability: AvailabilityOut,
    /// The inventory's applied log index.
    pub version: u64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TicketOut {
    pub id: String,
    pub section: String,
    pub row: Option<String>,
    pub seat: Option<u32>,
    pub price: u64,
    /// `available`, `held` or `sold`.
    pub status: String,
}

pub fn status_str(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Available => "available",
        TicketStatus::Held => "held",
        TicketStatus::Sold => "sold",
    }
}

impl TicketOut {
    pub fn new(spec: &TicketSpec, status: TicketStatus) -> Self {
        TicketOut {
            id: spec.id.clone(),
            section: spec.section.clone(),
            row: spec.row.clone(),
            seat: spec.seat,
            price: spec.price,
            status: status_str(status).into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TicketsOut {
    pub version: u64,
    pub tickets: Vec<TicketOut>,
}

// ---- booking --------------------------------------------------------------------------

/// `{event_id, ticket_ids}` or `{event_id, section, quantity}`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    #[schema(value_type = String)]
    pub event_id: tickets::EventId,
    #[serde(default)]
    pub ticket_ids: Option<Vec<String>>,
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default)]
    pub quantity: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct HoldOut {
    pub hold_id: String,
    pub event_id: String,
    pub tickets: Vec<String>,
    pub expires_at: String,
    pub amount: u64,
    pub currency: String,
}

impl From<&Hold> for HoldOut {
    fn from(h: &Hold) -> Self {
        HoldOut {
            hold_id: h.id.to_string(),
            event_id: h.event_id.to_string(),
            tickets: h.tickets.clone(),
            expires_at: rfc3339(h.expires_at),
            amount: h.amount,
            currency: h.currency.clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub token: String,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// Parsed here, once: the store takes a `HoldId`, not any string.
    #[schema(value_type = String)]
    pub hold_id: tickets::HoldId,
    pub payment: Payment,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    #[schema(value_type = String)]
    pub hold_id: tickets::HoldId,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingOut {
    pub booking_id: String,
    pub hold_id: String,
    pub event_id: String,
    pub tickets: Vec<String>,
    pub amount: u64,
    pub currency: String,
    pub payment_ref: String,
    pub created_at: String,
    /// `confirmed`, `refund_pending` (cancelled, the refund still runs) or `refunded`.
    pub status: String,
    /// The provider's refund reference, once `refunded`.
    #[serde(default)]
    pub refund_ref: Option<String>,
    /// RFC 3339, once `refunded`.
    #[serde(default)]
    pub refunded_at: Option<String>,
}

impl From<&Booking> for BookingOut {
    fn from(b: &Booking) -> Self {
        BookingOut {
            booking_id: b.id.to_string(),
            hold_id: b.hold_id.to_string(),
            event_id: b.event_id.to_string(),
            tickets: b.tickets.clone(),
            amount: b.amount,
            currency: b.currency.clone(),
            payment_ref: b.payment_ref.clone(),
            created_at: rfc3339(b.created_at),
            status: booking_status_name(b.status).into(),
            refund_ref: b.refund_ref.clone(),
            refunded_at: b.refunded_at.map(rfc3339),
        }
    }
}

/// The answer of `POST /v1/bookings/{booking_id}/cancel`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelOut {
    pub booking_id: String,
    /// `refunded`, or `refund_pending` while the refund still runs (the booking shows
    /// `refunded` once it is done).
    pub status: String,
    /// The provider's refund reference; `null` while pending.
    pub refund_ref: Option<String>,
}

impl From<&Booking> for CancelOut {
    fn from(b: &Booking) -> Self {
        CancelOut {
            booking_id: b.id.to_string(),
            status: booking_status_name(b.status).into(),
            refund_ref: b.refund_ref.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HoldStatusOut {
    pub hold_id: String,
    /// `active`, `confirming`, `confirmed`, `released` or `expired`.
    pub status: String,
    pub expires_at: String,
    pub tickets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
}

impl From<&Hold> for HoldStatusOut {
    fn from(h: &Hold) -> Self {
        let status = match h.status {
            HoldStatus::Active => "active",
            HoldStatus::Confirming => "confirming",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        };
        HoldStatusOut {
            hold_id: h.id.to_string(),
            status: status.into(),
            expires_at: rfc3339(h.expires_at),
            tickets: h.tickets.clone(),
            booking_id: h.booking_id.as_ref().map(ToString::to_string),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ExtendOut {
    pub hold_id: String,
    pub expires_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingsPage {
    pub bookings: Vec<BookingOut>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ms = 1_767_225_600_123;
        assert_eq!(parse_time("t", &rfc3339(ms)).unwrap(), ms);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert!(parse_time("t", "yesterday").is_err());
        assert!(parse_time("t", "1969-12-31T23:59:59Z").is_err());
    }
}
