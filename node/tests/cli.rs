//! The command line as an operator meets it: a token the server would refuse is not printed,
//! `demo` loads once and survives a pipe that closes, logs written to a file carry no
//! terminal colours, and peers without a cluster secret are refused.

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

#[test]
fn peers_without_a_cluster_secret_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(common::binary())
        .args(["serve", "--node-id", "1", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:1"])
        .args(["--peers", "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3"])
        .arg("--data-dir")
        .arg(&data)
        .env("BOXOFFICE_AUTH_SECRET", common::SECRET)
        .env_remove("BOXOFFICE_CLUSTER_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("boxoffice serve");
    // Bounded: a node that starts anyway is killed and the test fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a node with peers and no cluster secret started");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "a node with peers and no cluster secret ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without --cluster-secret"), "{stderr}");
    assert!(!data.exists(), "the data directory was made before the refusal");
}
