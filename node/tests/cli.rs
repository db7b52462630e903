//! The command line as an operator meets it: a token the server would refuse is not printed,
//! `demo` loads once and survives a pipe that closes, and logs written to a file carry no
//! terminal colours.

mod common;

use std::process::{Command, Stdio};

#[test]
fn token_for_an_empty_or_overlong_user_is_refused() {
    for user in [String::new(), "u".repeat(129)] {
        let out = Command::new(common::binary())
            .args(["token", "--user", &user])
            .env("BOXOFFICE_AUTH_SECRET", common::SECRET)
            .output()
            .expect("boxoffice token");
        assert!(!out.status.success(), "a token for {:?} bytes was printed", user.len());
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--user must be 1..=128 bytes"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_loads_once_and_a_closed_pipe_is_no_panic() {
    let cluster = common::Cluster::start(1).await;
    let node = &cluster.nodes[0];
    let demo = || {
        Command::new(common::binary())
            .args(["demo", "--http", &node.http])
            .env("BOXOFFICE_AUTH_SECRET", common::SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("boxoffice demo")
    };
    // The reader goes away before anything is printed (`demo | head -0`).
    let mut first = demo();
    drop(first.stdout.take());
    let out = first.wait_with_output().expect("demo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo with a closed pipe: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let again = demo().wait_with_output().expect("demo runs");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("already loaded"), "{said}");
    let admin = common::token("admin", true);
    let events = node.client().get("/v1/events?limit=100", Some(&admin)).await;
    assert_eq!(events.status, 200, "{}", events.body);
    assert_eq!(events.body["events"].as_array().map(Vec::len), Some(4), "loaded twice: {}", events.body);

    // The node's log went to a file: plain text, no ANSI escapes.
    let log = std::fs::read_to_string(&node.log).expect("node log");
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
}
