//! The Stripe-compatible provider against a small fake server: success, decline, a server
//! error (outcome unknown), and the idempotency key and form fields it sends; the same for
//! refunds.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use cluster::payment::{
    ChargeError, ChargeOutcome, ChargeRequest, PaymentProvider, RefundOutcome, RefundRequest, StripeConfig,
    StripeProvider,
};
use serde_json::json;

type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

async fn intents(State(seen): State<Seen>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let key = headers["idempotency-key"].to_str().unwrap().to_string();
    let auth = headers["authorization"].to_str().unwrap().to_string();
    seen.lock().unwrap().push((key, auth, body.clone()));
    if body.contains("payment_method=pm_card_visa") {
        (StatusCode::OK, axum::Json(json!({"id": "pi_1", "status": "succeeded"})))
    } else if body.contains("payment_method=pm_card_chargeDeclined") {
        (
            StatusCode::PAYMENT_REQUIRED,
            axum::Json(json!({"error": {"type": "card_error", "message": "Your card was declined."}})),
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"type": "api_error", "message": "boom"}})),
        )
    }
}

fn request(token: &str) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: "hld_e_h-1".into(),
        amount: 4500,
        currency: "USD".into(),
        token: token.into(),
        description: "boxoffice test".into(),
    }
}

#[tokio::test]
async fn stripe_provider_maps_answers() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/v1/payment_intents", axum::routing::post(intents))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let provider =
        StripeProvider::new(StripeConfig { base_url, secret_key: "sk_test_x".into(), ..Default::default() });

    let ok = provider.charge(&request("pm_card_visa")).await.unwrap();
    assert_eq!(ok, ChargeOutcome::Succeeded { payment_ref: "pi_1".into() });
    let declined = provider.charge(&request("pm_card_chargeDeclined")).await.unwrap();
    assert_eq!(declined, ChargeOutcome::Declined { detail: "Your card was declined.".into() });
    let unknown = provider.charge(&request("pm_other")).await;
    assert!(matches!(unknown, Err(ChargeError::Unknown(_))), "{unknown:?}");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let (key, auth, body) = &seen[0];
    assert_eq!(key, "hld_e_h-1");
    assert_eq!(auth, "Bearer sk_test_x");
    for field in ["amount=4500", "currency=usd", "confirm=true", "payment_method=pm_card_visa"] {
        assert!(body.contains(field), "{field} missing from {body}");
    }
}

async fn refunds(State(seen): State<Seen>, headers: HeaderMap, body: String) -> impl IntoResponse {
    let key = headers["idempotency-key"].to_str().unwrap().to_string();
    let auth = headers["authorization"].to_str().unwrap().to_string();
    seen.lock().unwrap().push((key, auth, body.clone()));
    match body.as_str() {
        "payment_intent=pi_ok" => (StatusCode::OK, axum::Json(json!({"id": "re_1", "status": "succeeded"}))),
        "payment_intent=pi_pending" => {
            (StatusCode::OK, axum::Json(json!({"id": "re_2", "status": "pending"})))
        }
        "payment_intent=pi_refunded" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"type": "invalid_request_error", "message": "already refunded"}})),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"type": "api_error", "message": "boom"}})),
        ),
    }
}

fn refund_request(payment_ref: &str) -> RefundRequest {
    RefundRequest {
        idempotency_key: "refund:bkg_e_b".into(),
        payment_ref: payment_ref.into(),
        amount: 4500,
        currency: "USD".into(),
    }
}

#[tokio::test]
async fn stripe_provider_maps_refund_answers() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new().route("/v1/refunds", axum::routing::post(refunds)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let provider =
        StripeProvider::new(StripeConfig { base_url, secret_key: "sk_test_x".into(), ..Default::default() });

    let ok = provider.refund(&refund_request("pi_ok")).await.unwrap();
    assert_eq!(ok, RefundOutcome::Refunded { refund_ref: "re_1".into() });
    let pending = provider.refund(&refund_request("pi_pending")).await.unwrap();
    assert_eq!(pending, RefundOutcome::Refunded { refund_ref: "re_2".into() });
    let refused = provider.refund(&refund_request("pi_refunded")).await.unwrap();
    assert!(matches!(refused, RefundOutcome::Declined { .. }), "{refused:?}");
    let unknown = provider.refund(&refund_request("pi_boom")).await;
    assert!(matches!(unknown, Err(ChargeError::Unknown(_))), "{unknown:?}");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0], ("refund:bkg_e_b".into(), "Bearer sk_test_x".into(), "payment_intent=pi_ok".into()));
}
