//! The `connect()` shim that puts the per-link proxies between nodes on loopback.
//!
//! Why a shim: a node dials a peer at the Raft (and HTTP) address held in the replicated
//! membership / catalog — the address the peer *listens* on, the same for every dialer.
//! So a proxy per link cannot be selected through `--peers` alone (node 1's `--peers` view
//! initializes the catalog membership for everyone, and each node then registers its own
//! listen address). Instead every node runs with `LD_PRELOAD` of this small library, which
//! rewrites `connect()` to `127.0.0.1:<real port of peer j>` into `127.0.0.1:<proxy port of
//! link i→j>` (map in `JEPSEN_CONNECT_MAP="from=to,..."`). Nothing else changes: the node
//! is the released binary, unmodified.
//!
//! Built at run time with the system C compiler (`cc`), once per run directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const MAP_ENV: &str = "JEPSEN_CONNECT_MAP";

const SOURCE: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
static connect_fn real_connect;
static unsigned short from_port[256], to_port[256];
static int n_map;

__attribute__((constructor)) static void jepsen_shim_init(void) {
    real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    const char *s = getenv("JEPSEN_CONNECT_MAP");
    while (s && *s && n_map < 256) {
        char *end;
        long a = strtol(s, &end, 10);
        if (*end != '=') break;
        long b = strtol(end + 1, &end, 10);
        from_port[n_map] = (unsigned short)a;
        to_port[n_map] = (unsigned short)b;
        n_map++;
        if (*end != ',') break;
        s = end + 1;
    }
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    if (!real_connect) real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (in->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            unsigned short p = ntohs(in->sin_port);
            for (int i = 0; i < n_map; i++) {
                if (from_port[i] == p) {
                    struct sockaddr_in copy = *in;
                    copy.sin_port = htons(to_port[i]);
                    return real_connect(fd, (const struct sockaddr *)&copy, sizeof copy);
                }
            }
        }
    }
    return real_connect(fd, addr, len);
}
"#;

/// Compile the shim into `dir`; returns the `.so` path.
pub fn build(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("jepsen_connect_shim.c");
    let so = dir.join("jepsen_connect_shim.so");
    std::fs::write(&src, SOURCE)?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .with_context(|| format!("running {cc} (a C compiler is needed for the per-link proxy shim)"))?;
    if !out.status.success() {
        bail!("{cc} failed to build the connect shim: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(so)
}

/// `from=to,...`.
pub fn map_value(pairs: &[(u16, u16)]) -> String {
    pairs.iter().map(|(a, b)| format!("{a}={b}")).collect::<Vec<_>>().join(",")
}
