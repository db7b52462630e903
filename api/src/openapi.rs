//! The OpenAPI 3 document, generated from the handlers' annotations and served at
//! `/openapi.json`. A test checks that every route of the router is in it.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::*;
use crate::error::Problem;
use crate::routes::{booking, browse, catalog, dev, live, ops, search, seats};

#[derive(OpenApi)]
#[openapi(
    info(title = "boxoffice", description = "Self-hosted ticket store: browse, reserve, confirm. See API.md."),
    paths(
        catalog::create_venue, catalog::get_venue, catalog::update_venue, catalog::create_performer, catalog::get_performer, catalog::update_performer,
        catalog::create_event, catalog::update_event, catalog::cancel_event,
        catalog::list_events, catalog::list_venues, catalog::list_performers,
        browse::event_page, browse::tickets, seats::layout, seats::seats, live::ticket_stream, search::search,
        dev::token,
        live::queue_join, live::queue_me, live::queue_leave, live::queue_stream,
        booking::reserve, booking::confirm, booking::release, booking::get_hold, booking::extend,
        booking::get_booking, booking::my_bookings,
        ops::healthz, ops::readyz, ops::metrics, ops::cluster, ops::add_node, ops::remove_node,
    ),
    components(schemas(
        Problem, Location, Row, Section, VenueCreate, VenueOut, PerformerCreate, PerformerOut, Queue, EventCreate,
        EventUpdate, EventOut, AvailabilityOut, EventPageOut, TicketOut, TicketsOut, ReserveRequest, HoldOut,
        Payment, ConfirmRequest, ReleaseRequest, BookingOut, HoldStatusOut, ExtendOut, BookingsPage,
        ops::ClusterOut, ops::NodeOut, ops::GroupOut, ops::NodeAdd,
        live::QueueOut, live::ChangeOut, live::TicketChangeOut,
        seats::LayoutOut, seats::LayoutSectionOut, seats::LayoutRowOut, seats::SeatsOut,
        catalog::EventsPage, catalog::VenuesPage, catalog::PerformersPage,
        dev::DevTokenRequest, dev::DevTokenOut,
        search::SearchOut, search::SearchResultOut, search::SearchVenueOut, search::SearchPerformerOut,
    )),
    modifiers(&BearerAuth),
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
