//! The OpenAPI 3.1 document, generated from the handlers' annotations and served at
//! `/openapi.json`. A test checks that every route of the router is in it, and
//! `api/tests/openapi.rs` that it is exact where a generated client or a fuzzer looks:
//! parameters where they are, every error `application/problem+json`.
//!
//! Handlers list their success answers and the errors of their own (404, 409, ...).
//! [`ErrorResponses`] adds, in one place, the errors that come from the shared layers
//! rather than the handler — the extractors (400 for a bad parameter or body, 401 without
//! a token, 413 for a body over the limit), the out-of-service and storage paths (503,
//! 500) and the connection's own limits (414, 431) — and gives every error the problem
//! schema as `application/problem+json`.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use crate::dto::*;
use crate::error::Problem;
use crate::routes::{booking, browse, catalog, dev, live, ops, search, seats, waitlist, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "boxoffice", description = "Self-hosted ticket store: browse, reserve, confirm. See docs/api.md in the repository."),
    paths(
        catalog::create_venue, catalog::get_venue, catalog::update_venue, catalog::create_performer, catalog::get_performer, catalog::update_performer,
        catalog::create_event, catalog::update_event, catalog::cancel_event,
        catalog::list_events, catalog::list_venues, catalog::list_performers,
        browse::event_page, browse::tickets, seats::layout, seats::seats, live::ticket_stream, search::search,
        dev::token,
        live::queue_join, live::queue_me, live::queue_leave, live::queue_stream,
        waitlist::waitlist_join, waitlist::waitlist_me, waitlist::waitlist_leave, waitlist::waitlist_stream,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::delete_webhook, webhooks::deliveries,
        webhooks::redeliver,
        booking::reserve, booking::confirm, booking::release, booking::get_hold, booking::extend,
        booking::get_booking, booking::cancel_booking, booking::my_bookings,
        ops::healthz, ops::readyz, ops::metrics, ops::cluster, ops::add_node, ops::remove_node,
    ),
    components(schemas(
        Problem, Location, Row, Section, VenueCreate, VenueOut, PerformerCreate, PerformerOut, Queue, EventCreate,
        EventUpdate, EventOut, AvailabilityOut, EventPageOut, TicketOut, TicketsOut, ReserveRequest, HoldOut,
        Payment, ConfirmRequest, ReleaseRequest, BookingOut, CancelOut, HoldStatusOut, ExtendOut, BookingsPage,
        ops::ClusterOut, ops::NodeOut, ops::GroupOut, ops::NodeAdd,
        live::QueueOut, live::ChangeOut, live::TicketChangeOut, waitlist::WaitlistRequest, waitlist::WaitlistOut,
        webhooks::WebhookCreate, webhooks::WebhookOut, webhooks::WebhooksOut, webhooks::DeliveryOut, webhooks::DeliveriesOut,
        seats::LayoutOut, seats::LayoutSectionOut, seats::LayoutRowOut, seats::SeatsOut,
        catalog::EventsPage, catalog::VenuesPage, catalog::PerformersPage,
        dev::DevTokenRequest, dev::DevTokenOut,
        search::SearchOut, search::SearchResultOut, search::SearchVenueOut, search::SearchPerformerOut,
    )),
    modifiers(&BearerAuth, &PathParams, &ErrorResponses),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// Declares each variable of a path template (`{id}`) that its operation does not declare
/// itself, as a required string: handlers take them with [`crate::body::ApiPath`], which
/// utoipa does not read.
struct PathParams;

impl Modify for PathParams {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        for (path, item) in openapi.paths.paths.iter_mut() {
            let names: Vec<&str> = path
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
                .collect();
            for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
                .into_iter()
                .flatten()
            {
                let params = op.parameters.get_or_insert_with(Vec::new);
                for (i, name) in names.iter().enumerate() {
                    if params.iter().any(|p| p.name == *name && p.parameter_in == ParameterIn::Path) {
                        continue;
                    }
                    let param = ParameterBuilder::new()
                        .name(*name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build();
                    params.insert(i.min(params.len()), param);
                }
            }
        }
    }
}

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The errors every operation shares (see the module doc), and problem+json for all errors.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The operations routes answer even on a node that is out of service.
            let operations_route = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics")
                || path.starts_with("/v1/cluster");
            let has_path_params = path.contains('{');
            let writes = [&mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in writes.into_iter().flatten() {
                // A write proposed through Raft may commit too late to know (`outcome_unknown`);
                // the dev sign-in writes nothing.
                if path != "/v1/dev/token" {
                    op.responses.responses.entry("504".to_string()).or_insert_with(|| {
                        RefOr::T(Response::new(
                            "`outcome_unknown`: proposed but not known committed in time; it may have happened",
                        ))
                    });
                }
            }
            for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
                .into_iter()
                .flatten()
            {
                add_shared_errors(op, operations_route, has_path_params);
                for (status, response) in op.responses.responses.iter_mut() {
                    if is_error(status) {
                        if let RefOr::T(r) = response {
                            r.content.clear();
                            r.content.insert(
                                PROBLEM_CONTENT_TYPE.to_string(),
                                Content::new(Some(Ref::from_schema_name("Problem"))),
                            );
                        }
                    }
                }
            }
        }
    }
}

fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

fn add_shared_errors(op: &mut Operation, operations_route: bool, has_path_params: bool) {
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new(description)));
    };
    if op.request_body.is_some() || has_query || has_path_params {
        add("400", "`invalid_request`: a parameter or the body is malformed; `field` names it");
    }
    if secured {
        add("401", "`unauthorized`: no, bad or expired bearer token");
    }
    if op.request_body.is_some() {
        add("413", "`payload_too_large`: the body is over 1 MiB");
    }
    add("414", "`uri_too_long`: the request line is over 64 KiB (answered before routing)");
    add("431", "`headers_too_large`: too many or too large headers (answered before routing)");
    add("500", "`internal`: a bug or a storage failure; logged with detail, answered without");
    if !operations_route {
        add(
            "503",
            "`unavailable`: no quorum, or this node is out of service; nothing was done; `Retry-After` set",
        );
    }
}
