//! A small HTTP/1.1 server on std threads for the AdminServer and the Prometheus `/metrics`
//! endpoint: never on a client shard.
//!
//! Requests are parsed by `httparse` (hyper's parser); this module only moves bytes and
//! keeps every connection bounded, which `tiny_http` does not (it has no timeouts, no limit
//! on a header line and a thread pool without limit):
//! - one accept thread per endpoint and one thread per connection, at most
//!   [`MAX_CONNECTIONS`] at once (past it a new connection gets 503 and is closed);
//! - a request's head must fit in [`MAX_HEAD_BYTES`] (Jetty's default request header size:
//!   past it, 431) and be complete within the idle timeout (`admin.idleTimeout`, 30 s by
//!   default) of the connection's start or of the previous reply; else it is closed;
//! - malformed requests get 400 and the connection is closed; request bodies are not read
//!   (GET and HEAD are all either endpoint serves): a request with one is answered and the
//!   connection closed.
//!
//! Each bad connection is logged once (at info), with its peer and what was wrong.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections served at once per endpoint.
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request line + headers (Jetty's `requestHeaderSize` default).
pub const MAX_HEAD_BYTES: usize = 8192;
/// Most header lines in one request.
const MAX_HEADERS: usize = 100;

/// A parsed request: the method, the percent-decoded path without its query, and the query
/// parameters (decoded; `+` is a space), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl HttpRequest {
    /// The first value of query parameter `name` (as a servlet's `getParameter`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// None: no Content-Type header (as Jetty for a servlet that sets none).
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// An error page (`status`, with its reason as a short HTML body, as Jetty sends).
    pub fn error(status: u16, message: &str) -> HttpResponse {
        let body = format!(
            "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=ISO-8859-1\"/>\n\
             <title>Error {status} {message}</title>\n</head>\n<body><h2>HTTP ERROR {status} {message}</h2>\n\
             </body>\n</html>\n"
        );
        HttpResponse::new(status, Some("text/html;charset=iso-8859-1"), body)
    }
}

pub type Handler = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// Binds `addr` (SO_REUSEADDR, so a restart is not blocked by TIME_WAIT) and serves it with
/// `handler` on threads named after `name`. Returns the bound address.
pub fn serve(
    name: &str,
    addr: SocketAddr,
    idle_timeout: Duration,
    handler: Handler,
) -> io::Result<SocketAddr> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(format!("{name}-accept"))
        .spawn(move || accept_loop(&thread_name, listener, idle_timeout, handler, active))?;
    Ok(local)
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

fn accept_loop(
    name: &str,
    listener: TcpListener,
    idle_timeout: Duration,
    handler: Handler,
    active: Arc<AtomicUsize>,
) {
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                log::warn!("{name}: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            log::info!("{name}: refusing {peer}: {MAX_CONNECTIONS} connections open");
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = write_response(
                &mut stream,
                &HttpResponse::error(503, "Service Unavailable"),
                false,
                true,
            );
            linger_close(stream, REFUSED_LINGER);
            continue;
        }
        let handler = handler.clone();
        let active_here = active.clone();
        let thread_name = name.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-conn"))
            .spawn(move || {
                if let Err(reason) = serve_connection(stream, idle_timeout, &handler) {
                    log::info!("{thread_name}: closing connection from {peer}: {reason}");
                }
                active_here.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::AcqRel);
            log::warn!("{name}: cannot start a thread for {peer}: {e}");
        }
    }
}

/// Serves requests on one connection until it closes. Err: why it was closed early.
fn serve_connection(
    mut stream: TcpStream,
    idle_timeout: Duration,
    handler: &Handler,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(idle_timeout))
        .map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        // A request's head must be complete within the idle timeout of the connection's
        // start (or, for the next request on a kept-alive connection, of the previous
        // reply): a client trickling bytes holds a thread no longer than one idle one.
        let deadline = Instant::now() + idle_timeout;
        let (request, head_len, keep_alive, has_body) = loop {
            match parse_head(&buf) {
                Parsed::Complete {
                    request,
                    head_len,
                    keep_alive,
                    has_body,
                } => break (request, head_len, keep_alive, has_body),
                Parsed::Bad(reason) => {
                    let _ = write_response(
                        &mut stream,
                        &HttpResponse::error(400, "Bad Request"),
                        false,
                        true,
                    );
                    linger_close(stream, ERROR_LINGER);
                    return Err(format!("bad request: {reason}"));
                }
                Parsed::TooLarge => {
                    let _ = write_response(
                        &mut stream,
                        &HttpResponse::error(431, "Request Header Fields Too Large"),
                        false,
                        true,
                    );
                    linger_close(stream, ERROR_LINGER);
                    return Err(format!("request head over {MAX_HEAD_BYTES} bytes"));
                }
                Parsed::Partial => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return if buf.is_empty() {
                    Ok(()) // idle between requests: close quietly, as Jetty does
                } else {
                    Err(format!("request not complete after {idle_timeout:?}"))
                };
            }
            stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 2048];
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return if buf.is_empty() {
                        Ok(())
                    } else {
                        Err("connection closed in the middle of a request".to_string())
                    }
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        };
        buf.drain(..head_len);
        let response = handler(&request);
        // A body we do not read would be taken for the next request: close after this one.
        let close = !keep_alive || has_body;
        write_response(&mut stream, &response, request.method == "HEAD", close)
            .map_err(|e| format!("writing the response: {e}"))?;
        if has_body {
            linger_close(stream, ERROR_LINGER);
            return Ok(());
        }
        if close {
            return Ok(());
        }
    }
}

/// How long a refused connection (503) is drained before it is closed (on the accept
/// thread: short).
const REFUSED_LINGER: Duration = Duration::from_millis(100);
/// How long a connection answered 400 or 431 is drained before it is closed.
const ERROR_LINGER: Duration = Duration::from_secs(1);
/// Most bytes drained before closing.
const LINGER_MAX_BYTES: usize = 1 << 20;

/// Closes a connection whose request was not read to its end without losing the answer
/// already written: closing a socket with unread input sends a reset, which can destroy the
/// answer before the client reads it. So: shut down our side, read (and drop) what the client
/// still sends for at most `limit` or [`LINGER_MAX_BYTES`], then close.
fn linger_close(mut stream: TcpStream, limit: Duration) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + limit;
    let mut drained = 0;
    let mut buf = [0u8; 4096];
    while drained < LINGER_MAX_BYTES {
        let now = Instant::now();
        if now >= deadline || stream.set_read_timeout(Some(deadline - now)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

enum Parsed {
    Complete {
        request: HttpRequest,
        head_len: usize,
        keep_alive: bool,
        has_body: bool,
    },
    Partial,
    TooLarge,
    Bad(String),
}

fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD_BYTES {
                Parsed::TooLarge
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::TooLarge,
        Err(e) => return Parsed::Bad(e.to_string()),
    };
    if head_len > MAX_HEAD_BYTES {
        return Parsed::TooLarge;
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Parsed::Bad("incomplete request line".to_string());
    };
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let connection = header("connection");
    let keep_alive = match version {
        0 => connection.as_deref() == Some("keep-alive"),
        _ => connection.as_deref() != Some("close"),
    };
    let has_body =
        header("transfer-encoding").is_some() || header("content-length").is_some_and(|v| v != "0");
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    // An absolute-form target (`GET http://host/path`): keep the path.
    let raw_path = match raw_path.find("://") {
        Some(i) => raw_path[i + 3..]
            .find('/')
            .map_or("/", |j| &raw_path[i + 3 + j..]),
        None => raw_path,
    };
    let query = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect();
    Parsed::Complete {
        request: HttpRequest {
            method: method.to_string(),
            path: percent_decode(raw_path, false),
            query,
        },
        head_len,
        keep_alive,
        has_body,
    }
}

/// `%XX` escapes (and, in a query, `+` for space) decoded; invalid escapes are kept as is,
/// invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_response(
    stream: &mut TcpStream,
    response: &HttpResponse,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    if let Some(content_type) = response.content_type {
        out.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    out.push_str(concat!("Server: zkrs/", env!("CARGO_PKG_VERSION"), "\r\n"));
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(text: &str) -> (HttpRequest, bool, bool) {
        match parse_head(text.as_bytes()) {
            Parsed::Complete {
                request,
                keep_alive,
                has_body,
                ..
            } => (request, keep_alive, has_body),
            _ => panic!("not complete: {text:?}"),
        }
    }

    #[test]
    fn parses_paths_queries_and_connection_rules() {
        let (r, keep, body) = complete(
            "GET /commands/set_trace_mask?traceMask=30%36&x=a+b HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/commands/set_trace_mask");
        assert_eq!(r.param("traceMask"), Some("306"));
        assert_eq!(r.param("x"), Some("a b"));
        assert!(keep && !body);
        let (_, keep, _) = complete("GET / HTTP/1.0\r\n\r\n");
        assert!(!keep);
        let (_, keep, _) = complete("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(!keep);
        let (_, _, body) = complete("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        assert!(body);
        let (r, _, _) = complete("GET http://h:1/commands/ruok HTTP/1.1\r\n\r\n");
        assert_eq!(r.path, "/commands/ruok");
    }

    #[test]
    fn partial_bad_and_too_large() {
        assert!(matches!(
            parse_head(b"GET /x HTTP/1.1\r\nHost"),
            Parsed::Partial
        ));
        assert!(matches!(
            parse_head(b"\x00\x01garbage\r\n\r\n"),
            Parsed::Bad(_)
        ));
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        assert!(matches!(parse_head(&huge), Parsed::TooLarge));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%2Fb%zz%4", false), "/a/b%zz%4");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a+b", true), "a b");
    }
}
