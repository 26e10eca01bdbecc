//! Just enough HTTP/1.1 framing for a proxy: read one whole message (request or response) off a
//! stream, byte for byte, so it can be forwarded unchanged. Bodies are framed by
//! `Content-Length`, `Transfer-Encoding: chunked`, or (responses only) the end of the stream.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest head accepted (request line or status line and headers).
const MAX_HEAD: usize = 64 * 1024;

/// The parsed head of a message.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// Request method (empty for responses).
    pub method: String,
    /// Request target (empty for responses).
    pub path: String,
    /// Response status (0 for requests).
    pub status: u16,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the connection closes after this message.
    pub fn closes(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        conn.contains("close") || (self.version == "HTTP/1.0" && !conn.contains("keep-alive"))
    }
}

/// One whole message: its head and every byte of it as read.
#[derive(Debug, Clone)]
pub struct Message {
    /// Start line and headers, parsed.
    pub head: Head,
    /// Head and body, unchanged.
    pub raw: Vec<u8>,
    /// The body was framed by the end of the stream (the connection is finished).
    pub ended_by_close: bool,
}

impl Message {
    /// The body (after the head).
    pub fn body(&self) -> &[u8] {
        let end = find(&self.raw, b"\r\n\r\n", 0).map(|i| i + 4).unwrap_or(self.raw.len());
        &self.raw[end..]
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

fn parse_head(bytes: &[u8], request: bool) -> io::Result<Head> {
    let text = std::str::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.splitn(3, ' ');
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("malformed start line: {first:?}"));
    let mut head = Head::default();
    if request {
        head.method = parts.next().ok_or_else(bad)?.to_string();
        head.path = parts.next().ok_or_else(bad)?.to_string();
        head.version = parts.next().ok_or_else(bad)?.to_string();
    } else {
        head.version = parts.next().ok_or_else(bad)?.to_string();
        head.status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    }
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((n, v)) = line.split_once(':') {
            head.headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(head)
}

/// Where a chunked body that starts at `from` ends, if `buf` holds all of it.
fn chunked_end(buf: &[u8], mut pos: usize) -> io::Result<Option<usize>> {
    loop {
        let Some(eol) = find(buf, b"\r\n", pos) else { return Ok(None) };
        let line = std::str::from_utf8(&buf[pos..eol]).unwrap_or("");
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {line:?}")))?;
        pos = eol + 2;
        if size == 0 {
            // Trailers (usually none), then an empty line.
            if buf.len() >= pos + 2 && &buf[pos..pos + 2] == b"\r\n" {
                return Ok(Some(pos + 2));
            }
            return Ok(find(buf, b"\r\n\r\n", pos).map(|i| i + 4));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        pos += size + 2;
    }
}

/// Reads the next message from `stream`; `buf` keeps bytes read past it (pipelining). `None`
/// when the stream ends cleanly before a message starts.
pub async fn read_message<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>, request: bool) -> io::Result<Option<Message>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n", 0) {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = parse_head(&buf[..head_end - 4], request)?;
    let chunked = head.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = head.header("content-length").and_then(|v| v.parse::<usize>().ok());
    let no_body = !request && (head.status < 200 || head.status == 204 || head.status == 304);
    let mut ended_by_close = false;
    let end = loop {
        let framed = if no_body {
            Some(head_end)
        } else if chunked {
            chunked_end(buf, head_end)?
        } else if let Some(n) = length {
            (buf.len() >= head_end + n).then_some(head_end + n)
        } else if request {
            Some(head_end)
        } else {
            None
        };
        if let Some(end) = framed {
            break end;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            if !request && !chunked && length.is_none() {
                ended_by_close = true;
                break buf.len();
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let raw: Vec<u8> = buf.drain(..end).collect();
    Ok(Some(Message { head, raw, ended_by_close }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], request: bool) -> Vec<Message> {
        let mut s = bytes;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(m) = read_message(&mut s, &mut buf, request).await.unwrap() {
            out.push(m);
        }
        out
    }

    #[tokio::test]
    async fn pipelined_requests_are_split_by_content_length() {
        let two = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nX-Amz-Target: DynamoDB_20120810.PutItem\r\n\r\nabcGET /x HTTP/1.1\r\n\r\n";
        let ms = read(two, true).await;
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].body(), b"abc");
        assert_eq!(ms[0].head.header("x-amz-target"), Some("DynamoDB_20120810.PutItem"));
        assert_eq!((ms[1].head.method.as_str(), ms[1].head.path.as_str()), ("GET", "/x"));
    }

    #[tokio::test]
    async fn chunked_and_close_framed_responses() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let ms = read(chunked, false).await;
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].raw.len(), chunked.len());
        let closed = b"HTTP/1.0 200 OK\r\n\r\nuntil the end";
        let ms = read(closed, false).await;
        assert!(ms[0].ended_by_close && ms[0].head.closes());
        assert_eq!(ms[0].body(), b"until the end");
    }

    #[tokio::test]
    async fn a_cut_message_is_an_error() {
        let mut s: &[u8] = b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert!(read_message(&mut s, &mut Vec::new(), true).await.is_err());
    }
}
