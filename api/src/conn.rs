//! The connection under hyper. Hyper answers a request it cannot parse on its own, before
//! any router sees it: 400 for a malformed request line or header, 414 for a request target
//! over 64 KiB (`http`'s limit on a URI), 431 for too many (over 100) or too large headers.
//! Those answers have an empty body and no content type, and there is no hook to change
//! them. [`ProblemListener`] wraps each accepted connection in a [`ProblemIo`] that
//! recognises such an automatic answer as hyper writes it — a 400, 414 or 431 head with
//! `content-length: 0` and no `content-type`, which no handler of ours writes: every error
//! of the router is problem+json with a body — and sends a problem+json answer in its
//! place, so that every answer of the API, these included, is `application/problem+json`.
//! Hyper closes the connection after such an answer, so nothing follows it.
//!
//! Everything else passes through untouched (reads, and writes, vectored or not).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::Problem;

/// Longest response head examined for an automatic answer, in bytes: hyper's are ~100.
const AUTOMATIC_HEAD_BYTES_MAX: usize = 512;

/// A listener whose connections answer hyper's own parse errors as problem+json.
pub struct ProblemListener<L>(pub L);

impl<L: Listener> Listener for ProblemListener<L> {
    type Io = ProblemIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.0.accept().await;
        (ProblemIo { inner: io, pending: None }, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose automatic error answers are rewritten (see the module doc).
pub struct ProblemIo<T> {
    inner: T,
    /// The replacement answer and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    /// Write what is left of a replacement answer.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((bytes, written)) = &mut self.pending {
            while *written < bytes.len() {
                let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drive(cx))?;
        if let Some(replacement) = problem_answer(buf) {
            self.pending = Some((replacement, 0));
            // Hyper flushes next; the replacement goes out there if not now.
            let _ = self.drive(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drive(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if let Some(replacement) = problem_answer(first) {
                self.pending = Some((replacement, 0));
                let _ = self.drive(cx)?;
                return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drive(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// If `head` is one of hyper's automatic error answers, the problem+json answer to send
/// instead (keeping its `date`).
pub fn problem_answer(head: &[u8]) -> Option<Vec<u8>> {
    if head.len() > AUTOMATIC_HEAD_BYTES_MAX {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (code, title, detail) = match text.get(..13)? {
        "HTTP/1.1 400 " => {
            ("invalid_request", "Invalid request", "the request line or a header is malformed")
        }
        "HTTP/1.1 414 " => ("uri_too_long", "URI too long", "the request target is longer than 64 KiB"),
        "HTTP/1.1 431 " => (
            "headers_too_large",
            "Request header fields too large",
            "too many headers (over 100), or the request head is too large",
        ),
        _ => return None,
    };
    let head_end = text.find("\r\n\r\n")?;
    if head_end + 4 != text.len() {
        return None;
    }
    let lines: Vec<&str> = text[..head_end].split("\r\n").collect();
    let has = |name: &str| {
        lines.iter().skip(1).any(|l| l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name))
    };
    if !lines.iter().skip(1).any(|l| l.eq_ignore_ascii_case("content-length: 0")) || has("content-type:") {
        return None;
    }
    let status: u16 = text[9..12].parse().ok()?;
    metrics::counter!("boxoffice_http_errors_total", "code" => code).increment(1);
    let body = serde_json::to_vec(&Problem {
        kind: format!("https://boxoffice.dev/problems/{code}"),
        title: title.to_string(),
        status,
        code: code.to_string(),
        detail: detail.to_string(),
        field: None,
        tickets: None,
        hold_id: None,
        booking_id: None,
    })
    .ok()?;
    let mut out = format!("{}\r\n", lines[0]);
    for line in lines.iter().skip(1).filter(|l| !l.to_ascii_lowercase().starts_with("content-length:")) {
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !has("connection:") {
        out.push_str("connection: close\r\n");
    }
    out.push_str(&format!(
        "content-type: {}\r\ncontent-length: {}\r\n\r\n",
        crate::openapi::PROBLEM_CONTENT_TYPE,
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::problem_answer;

    #[test]
    fn hyper_automatic_answers_become_problems() {
        for (status, code) in [
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
            ("400 Bad Request", "invalid_request"),
        ] {
            let head = format!(
                "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 16:00:00 GMT\r\n\r\n"
            );
            let out = String::from_utf8(problem_answer(head.as_bytes()).expect("rewritten")).unwrap();
            let (head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{head}");
            assert!(head.contains("content-type: application/problem+json"), "{head}");
            assert!(head.contains("date: Fri, 04 Dec 2026"), "{head}");
            assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
            assert!(!head.contains("content-length: 0"), "{head}");
            assert_eq!(head.matches("connection: close").count(), 1, "{head}");
            let problem: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(problem["code"], code);
            assert_eq!(problem["status"].as_u64().unwrap().to_string(), &status[..3]);
        }
    }

    #[test]
    fn the_routers_answers_pass_through() {
        for head in [
            // Our own errors carry a content type and a body.
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 120\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            // A head followed by body bytes in the same write is not hyper's empty answer.
            "HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\nxyz",
            "{\"status\": 400}",
        ] {
            assert!(problem_answer(head.as_bytes()).is_none(), "{head:?}");
        }
    }
}
