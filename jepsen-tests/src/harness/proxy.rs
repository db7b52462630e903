//! A TCP proxy for one directed link `i → j` (node i's connections to one of node j's
//! ports). Cut: new connections are accepted and dropped at once, open ones are dropped
//! (both sides closed). Heal: forwarding resumes for new connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Proxy {
    pub from: u64,
    pub to: u64,
    /// `raft` or `http`.
    pub port_kind: &'static str,
    pub listen_port: u16,
    pub target: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(
        from: u64,
        to: u64,
        port_kind: &'static str,
        target: SocketAddr,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen_port = listener.local_addr()?.port();
        let (tx, _) = watch::channel(false);
        let cut = Arc::new(tx);
        let cut2 = cut.clone();
        let accepted = Arc::new(AtomicU64::new(0));
        let accepted2 = accepted.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        accepted2.fetch_add(1, Ordering::Relaxed);
                        if *cut2.borrow() {
                            drop(inbound);
                            continue;
                        }
                        let mut rx = cut2.subscribe();
                        conns.spawn(async move {
                            let Ok(Ok(mut outbound)) =
                                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
                            else {
                                return;
                            };
                            let _ = inbound.set_nodelay(true);
                            let _ = outbound.set_nodelay(true);
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = rx.wait_for(|cut| *cut) => {}
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Proxy { from, to, port_kind, listen_port, target, cut, accepted, task })
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }

    /// Connections accepted so far (cut or not).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

impl Drop for Proxy {
    /// Closes the listener and every forwarded connection (the task owns them all).
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn roundtrip(port: u16) -> std::io::Result<()> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await??;
        assert_eq!(&buf, b"ping");
        Ok(())
    }

    #[tokio::test]
    async fn cut_drops_open_connections_and_refuses_new_ones_until_healed() {
        let target = echo_server().await;
        let p = Proxy::start(1, 2, "raft", target).await.unwrap();
        roundtrip(p.listen_port).await.unwrap();

        let mut open = TcpStream::connect(("127.0.0.1", p.listen_port)).await.unwrap();
        open.write_all(b"a").await.unwrap();
        let mut one = [0u8; 1];
        open.read_exact(&mut one).await.unwrap();

        p.set_cut(true);
        // The open connection is closed (EOF or reset), a new one gets nothing through.
        let mut buf = [0u8; 8];
        let r =
            tokio::time::timeout(Duration::from_secs(2), open.read(&mut buf)).await.expect("closed promptly");
        assert!(matches!(r, Ok(0) | Err(_)), "open connection dropped, got {r:?}");
        assert!(roundtrip(p.listen_port).await.is_err(), "no traffic while cut");

        p.set_cut(false);
        roundtrip(p.listen_port).await.unwrap();
        assert!(p.accepted() >= 4);
    }
}
