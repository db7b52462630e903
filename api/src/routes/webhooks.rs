//! Webhooks (admin token): register, list and remove endpoints; read an endpoint's deliveries
//! and send one again. Delivery itself runs on each event's leader (`cluster::webhooks`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use cluster::webhooks::Delivery;
use tickets::inventory::NoticeKind;
use tickets::webhooks::{Webhook, WebhookSpec};

use crate::auth::Admin;
use crate::body::{ApiPath, JsonBody};
use crate::dto::rfc3339;
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;

/// Most deliveries one `GET …/deliveries` answers.
pub const DELIVERIES_PAGE_MAX: usize = 500;

#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// `http://` or `https://` with a host; each delivery is a `POST` of JSON to it.
    pub url: String,
    /// Wanted: `booking.confirmed`, `booking.refunded`, `hold.expired`, `event.sold_out`,
    /// `waitlist.offered`, `event.cancelled` (at least one).
    pub events: Vec<String>,
    /// 16..=256 printable ASCII characters: signs every delivery (`Boxoffice-Signature`).
    pub secret: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
}

impl From<&Webhook> for WebhookOut {
    fn from(w: &Webhook) -> Self {
        WebhookOut {
            id: w.id.clone(),
            url: w.spec.url.clone(),
            events: w.spec.events.iter().map(|k| k.name().to_string()).collect(),
            created_at: rfc3339(w.created_at),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhooksOut {
    pub webhooks: Vec<WebhookOut>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// `whd_<node>_<n>`.
    pub id: String,
    pub webhook_id: String,
    /// The notice's id, sent as `Boxoffice-Delivery` (the same on every retry and redelivery).
    pub notice_id: String,
    pub event_id: String,
    /// The event type, e.g. `booking.confirmed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `delivered` or `failed` (every attempt failed).
    pub status: String,
    pub attempts: u32,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// When the last attempt ended.
    pub at: String,
    /// The JSON body that was sent.
    pub payload: String,
}

impl From<&Delivery> for DeliveryOut {
    fn from(d: &Delivery) -> Self {
        DeliveryOut {
            id: d.id.clone(),
            webhook_id: d.webhook_id.clone(),
            notice_id: d.notice_id.clone(),
            event_id: d.event_id.clone(),
            kind: d.kind.clone(),
            status: d.status.clone(),
            attempts: d.attempts,
            http_status: d.http_status,
            error: d.error.clone(),
            at: rfc3339(d.at),
            payload: d.payload.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeliveriesOut {
    pub deliveries: Vec<DeliveryOut>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1..=500, default 100.
    pub limit: Option<String>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookCreate,
    security(("bearer" = [])),
    responses((status = 201, body = WebhookOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    _admin: Admin,
    body: JsonBody<WebhookCreate>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    let req = body.value;
    let mut events = std::collections::BTreeSet::new();
    for name in &req.events {
        let kind = NoticeKind::parse(name).ok_or_else(|| {
            let known: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.name()).collect();
            ApiError::invalid("events", format!("unknown event type {name:?}; known: {}", known.join(", ")))
        })?;
        events.insert(kind);
    }
    let hook = state.store.create_webhook(WebhookSpec { url: req.url, events, secret: req.secret }).await?;
    Ok((StatusCode::CREATED, Json(WebhookOut::from(&hook))))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhooksOut), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_webhooks(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<WebhooksOut>> {
    let webhooks = state.store.webhooks().iter().map(WebhookOut::from).collect();
    Ok(Json(WebhooksOut { webhooks }))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    responses((status = 204, description = "removed: no notice is sent to it any more"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(DeliveriesQuery),
    responses((status = 200, body = DeliveriesOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<DeliveriesOut>> {
    let q = crate::body::query_params(query)?;
    let limit = match q.limit {
        None => 100,
        Some(text) => {
            text.trim().parse::<usize>().ok().filter(|n| (1..=DELIVERIES_PAGE_MAX).contains(n)).ok_or_else(
                || ApiError::invalid("limit", format!("must be a number within 1..={DELIVERIES_PAGE_MAX}")),
            )?
        }
    };
    let found = state.store.webhook_deliveries(&id, limit).await?;
    Ok(Json(DeliveriesOut { deliveries: found.iter().map(DeliveryOut::from).collect() }))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    security(("bearer" = [])),
    responses((status = 200, body = DeliveryOut, description = "sent again (signed anew); `status` says how it went"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 503, body = Problem)))]
pub async fn redeliver(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeliveryOut>> {
    let d = state.store.redeliver(&id, &delivery_id).await?;
    Ok(Json(DeliveryOut::from(&d)))
}
