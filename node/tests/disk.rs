//! A node on a lazy disk ([`jepsen::lazyfs`]: a FUSE file system that loses whatever was not
//! fsynced when told to): an acknowledged booking survives a power cut, and a full disk stops
//! writes without losing or acknowledging anything, then the node restarts in place. Each
//! test prints `SKIPPED` with the reason where FUSE is unavailable (not root, no
//! `/dev/fuse`, no `fusermount3`).

mod common;

use std::time::{Duration, Instant};

use common::{free_ports, small_event, token, Node};
use jepsen::lazyfs::LazyFs;
use serde_json::json;

/// The node's data directory on a lazy disk, both under `root`.
fn lazy_disk(root: &std::path::Path, test: &str) -> Option<LazyFs> {
    if let Err(why) = LazyFs::available() {
        eprintln!("SKIPPED: {test}: FUSE is unavailable here: {why}");
        return None;
    }
    Some(LazyFs::mount(&root.join("backing"), &root.join("data")).expect("mount a lazy disk"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_booking_survives_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = lazy_disk(dir.path(), "an_acknowledged_booking_survives_a_power_cut") else { return };
    let mut node = Node::start(disk.mountpoint());
    let c = node.client();
    let event = small_event(&c, 600, 4).await;
    let alice = token("alice", false);
    let hold =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-7"]})).await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let other =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-8"]})).await;
    assert_eq!(other.status, 201, "{}", other.body);
    let booking = c
        .post(
            "/v1/booking/confirm",
            &alice,
            json!({"hold_id": hold.body["hold_id"], "payment": {"token": "tok_visa"}}),
        )
        .await;
    assert_eq!(booking.status, 201, "{}", booking.body);
    // Power loss the instant the answer arrived: only what was fsynced is left.
    node.kill();
    let cut = disk.crash(false, 1);
    eprintln!("power cut: {cut:?}");
    node.restart();
    let c = node.client();
    let id = booking.body["booking_id"].as_str().unwrap();
    let read = c.get(&format!("/v1/bookings/{id}"), Some(&alice)).await;
    assert_eq!(
        read.status, 200,
        "the acknowledged booking is gone after a power cut ({cut:?}): {}",
        read.body
    );
    assert_eq!(read.body["tickets"], json!(["A-1-7"]));
    let h = c.get(&format!("/v1/holds/{}", other.body["hold_id"].as_str().unwrap()), Some(&alice)).await;
    assert_eq!(h.body["status"], "active", "the acknowledged hold survived: {}", h.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_writes_and_the_node_restarts_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = lazy_disk(dir.path(), "a_full_disk_stops_writes_and_the_node_restarts_in_place") else {
        return;
    };
    let http = format!("127.0.0.1:{}", free_ports(1)[0]);
    let mut node = Node::start_on(disk.mountpoint(), &http);
    let pid = node.child.as_ref().unwrap().id();
    let c = node.client();
    let event = small_event(&c, 600, 10).await;
    let alice = token("alice", false);
    let before =
        c.post("/v1/booking/reserve", &alice, json!({"event_id": event, "ticket_ids": ["A-1-1"]})).await;
    assert_eq!(before.status, 201, "{}", before.body);

    disk.set_full(true);
    // Writes stop: none is acknowledged while the disk is full.
    let mut refused = None;
    for seat in 2..=10 {
        let body = json!({"event_id": event, "ticket_ids": [format!("A-1-{seat}")]});
        let answer =
            c.try_send("POST", "/v1/booking/reserve", Some(&alice), Some(body), Duration::from_secs(5)).await;
        match answer {
            Ok(a) if a.status == 201 => continue, // taken before the first failed flush
            Ok(a) => {
                refused = Some((seat, a.status, a.body));
                break;
            }
            Err(e) => {
                refused = Some((seat, 0, json!(e.to_string())));
                break;
            }
        }
    }
    let (seat, status, body) = refused.expect("a write was refused while the disk was full");
    assert!(status == 0 || status >= 500, "a full disk answers 5xx, not {status} {body}");
    eprintln!("refused while the disk was full: seat {seat}: {status} {body}");
    // The flush that failed may still be under way when a write times out.
    let started = Instant::now();
    loop {
        let ready =
            c.try_send("GET", "/readyz", None, None, Duration::from_secs(5)).await.expect("readyz answers");
        if ready.status == 503 && ready.body.to_string().contains("storage failed") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not ready, saying why, while the disk is full: {} {}",
            ready.status,
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(node.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the node did not exit");

    disk.set_full(false);
    // Restarted in place (same pid: exec) and serving again.
    match testkit::wait_ready(&c.http, &c.base, Duration::from_secs(60), || None).await {
        Ok(took) => eprintln!("ready again {took:?} after the disk had room"),
        Err(e) => panic!("ready again after the disk had room: {e}"),
    }
    assert_eq!(node.child.as_ref().unwrap().id(), pid);
    assert!(node.child.as_mut().unwrap().try_wait().unwrap().is_none(), "the node is still running");
    let h = c.get(&format!("/v1/holds/{}", before.body["hold_id"].as_str().unwrap()), Some(&alice)).await;
    assert_eq!(h.body["status"], "active", "the hold taken before the disk filled: {}", h.body);
    let after = c
        .post(
            "/v1/booking/reserve",
            &token("bob", false),
            json!({"event_id": event, "ticket_ids": [format!("A-1-{seat}")]}),
        )
        .await;
    assert!(after.status == 201 || after.status == 409, "writes work again: {} {}", after.status, after.body);
    node.kill();
}
