//! The system tools the harness may use — `ip` and `iptables` (the namespace mode),
//! libfaketime (the clock nemesis) and `fusermount3` (the lazy disks) — found on the machine, or installed with apt when the
//! harness runs as root and they are missing (once per process). Everything here says
//! *why* a tool is unavailable, so a skipped mode or nemesis is printed with its reason.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// Where Debian (and others) put libfaketime's multi-threaded library.
pub fn libfaketime() -> Option<PathBuf> {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
        "/usr/lib64/faketime/libfaketimeMT.so.1",
    ];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Install `ip`, `iptables`, libfaketime and `fusermount3` with apt if any is missing and we are root.
/// Returns what it did (or why it did nothing), for the run's log.
pub fn ensure_installed() -> &'static str {
    static DONE: OnceLock<String> = OnceLock::new();
    DONE.get_or_init(|| {
        let missing: Vec<&str> = [
            ("iproute2", have("ip")),
            ("iptables", have("iptables")),
            ("faketime", libfaketime().is_some()),
            ("fuse3", have("fusermount3")),
        ]
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(p, _)| *p)
        .collect();
        if missing.is_empty() {
            return "iproute2, iptables, libfaketime and fuse3 present".into();
        }
        if !is_root() {
            return format!("missing {missing:?}; not root, so not installed");
        }
        if !have("apt-get") {
            return format!("missing {missing:?}; no apt-get to install them");
        }
        let install = |update: bool| {
            let mut script = String::new();
            if update {
                script.push_str("apt-get update -qq && ");
            }
            script.push_str(&format!(
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {} >/dev/null",
                missing.join(" ")
            ));
            Command::new("sh").args(["-c", &script]).status().is_ok_and(|s| s.success())
        };
        eprintln!("installing {missing:?} with apt-get (root) for the namespace mode / clock nemesis");
        if install(false) || install(true) {
            format!("installed {missing:?} with apt-get")
        } else {
            format!("missing {missing:?}; apt-get install failed")
        }
    })
}
