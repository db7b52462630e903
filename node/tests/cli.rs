//! The command line as an operator meets it: a token the server would refuse is not printed,
//! `demo` loads once and survives a pipe that closes, logs written to a file carry no
//! terminal colours, peers without a cluster secret are refused, a mistake is named where it
//! was made (flag or config file), secrets can come from files, and the systemd unit verifies.

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

/// Run `boxoffice serve ARGS` (no secrets in the environment) and expect it to refuse
/// to start, within 15 s; its stderr. A node that starts anyway is killed and the test fails.
fn serve_refused(args: &[&str], data: &std::path::Path) -> String {
    let mut child = Command::new(common::binary())
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("BOXOFFICE_AUTH_SECRET")
        .env_remove("BOXOFFICE_CLUSTER_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("boxoffice serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {args:?} started; it should have been refused");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "serve {args:?} ran");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn peers_without_a_cluster_secret_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stderr = serve_refused(
        &[
            "--node-id",
            "1",
            "--http",
            "127.0.0.1:0",
            "--raft",
            "127.0.0.1:1",
            "--peers",
            "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3",
        ],
        &data,
    );
    assert!(stderr.contains("without --cluster-secret"), "{stderr}");
    assert!(!data.exists(), "the data directory was made before the refusal");
}

#[test]
fn a_mistake_is_named_where_it_was_made_in_the_config_file_or_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, "snapshot_every = 10\n").unwrap();
    let config = config.to_str().unwrap();
    let stderr = serve_refused(&["--config", config], &data);
    assert!(stderr.contains(&format!("`snapshot_every` in {config} must be at least 100")), "{stderr}");
    let stderr = serve_refused(&["--snapshot-every", "10"], &data);
    assert!(stderr.contains("--snapshot-every (BOXOFFICE_SNAPSHOT_EVERY) must be at least 100"), "{stderr}");
    std::fs::write(dir.path().join("typo.toml"), "snapshot_evry = 1000\n").unwrap();
    let stderr = serve_refused(&["--config", dir.path().join("typo.toml").to_str().unwrap()], &data);
    assert!(stderr.contains("snapshot_evry"), "the unknown key is named: {stderr}");
    assert!(!data.exists(), "the data directory was made before a refusal");
}

#[test]
fn secrets_can_come_from_files_and_not_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("auth-secret");
    std::fs::write(&file, format!("{}\n", common::SECRET)).unwrap();
    // A token signed with the secret read from the file (its newline is not part of it).
    let out = Command::new(common::binary())
        .args(["token", "--user", "fan", "--auth-secret-file", file.to_str().unwrap()])
        .env_remove("BOXOFFICE_AUTH_SECRET")
        .output()
        .expect("boxoffice token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = api::AuthKeys::new(common::SECRET.as_bytes())
        .verify(token.trim())
        .expect("signed with the file's secret");
    assert_eq!(claims.sub, "fan");
    // Both ways at once, or an empty file: refused, naming them.
    let cluster_file = dir.path().join("cluster-secret");
    std::fs::write(&cluster_file, "from-a-file\n").unwrap();
    let both = ["--cluster-secret", "inline", "--cluster-secret-file", cluster_file.to_str().unwrap()];
    let stderr = serve_refused(&both, &data);
    assert!(
        stderr.contains("--cluster-secret (BOXOFFICE_CLUSTER_SECRET) and --cluster-secret-file"),
        "{stderr}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let stderr = serve_refused(&["--cluster-secret-file", empty.to_str().unwrap()], &data);
    assert!(stderr.contains("is empty") && stderr.contains("--cluster-secret-file"), "{stderr}");
    let stderr = serve_refused(&["--auth-secret-file", "/nonexistent/secret"], &data);
    assert!(stderr.contains("/nonexistent/secret"), "{stderr}");
    assert!(!data.exists(), "the data directory was made before a refusal");
}

/// `deploy/boxoffice.service` passes `systemd-analyze verify` (with ExecStart pointing at the
/// binary under test): unknown keys and bad values are warnings there, so any output fails.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: no systemd-analyze on this machine (the unit's flags are checked by node/src/config.rs)");
        return;
    };
    assert!(out.status.success());
    let unit = include_str!("../../deploy/boxoffice.service")
        .replace("/usr/local/bin/boxoffice", common::binary().to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boxoffice.service");
    std::fs::write(&path, unit).unwrap();
    let out =
        Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze verify");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}
