//! A bounded reader of Server-Sent Events (the WHATWG `text/event-stream`
//! format): lines end in `\n`, `\r\n` or `\r`; `data:` lines of one event are
//! joined with `\n`; `event:` names the event; lines starting with `:` are
//! comments; a blank line ends the event. An agent's stream costs at most one
//! event's bytes of memory, ends after a number of events or bytes, and may
//! not stay silent longer than the idle timeout.

use std::time::Duration;

use tokio::time::Instant;

/// The bounds of one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SseLimits {
    /// The most bytes one event may have (the step's `max_response_size`).
    pub max_event_bytes: u64,
    /// The most bytes the whole stream may have.
    pub max_stream_bytes: u64,
    /// The most events the whole stream may have.
    pub max_events: u64,
    /// The longest wait for the next event.
    pub idle_timeout: Duration,
}

/// One event: its name (`message` when the stream gave none) and its data.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Why a stream was not read to its end.
#[derive(Debug)]
pub(crate) enum SseError {
    EventTooLarge { limit: u64 },
    StreamTooLarge { limit: u64 },
    TooManyEvents { limit: u64 },
    Idle { timeout: Duration },
    Transport(reqwest::Error),
}

/// Where the bytes come from: an HTTP body, or a list of chunks in tests.
pub(crate) trait Chunks {
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<bytes::Bytes>, reqwest::Error>> + Send;
}

impl Chunks for reqwest::Response {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, reqwest::Error> {
        self.chunk().await
    }
}

/// The events of one stream, read as they arrive.
pub(crate) struct SseReader<C> {
    chunks: C,
    limits: SseLimits,
    /// Bytes received and not yet split into lines.
    pending: Vec<u8>,
    /// The event being read.
    event: Option<String>,
    data: Option<String>,
    events: u64,
    bytes: u64,
    ended: bool,
}

impl<C: Chunks> SseReader<C> {
    pub fn new(chunks: C, limits: SseLimits) -> SseReader<C> {
        SseReader {
            chunks,
            limits,
            pending: Vec::new(),
            event: None,
            data: None,
            events: 0,
            bytes: 0,
            ended: false,
        }
    }

    /// The next event; `None` once the stream ended (an event the stream
    /// did not finish with a blank line is dropped, as the format says).
    pub async fn next(&mut self) -> Result<Option<SseEvent>, SseError> {
        let deadline = Instant::now() + self.limits.idle_timeout;
        loop {
            while let Some(line) = self.take_line() {
                if let Some(event) = self.line(&line)? {
                    self.events += 1;
                    if self.events > self.limits.max_events {
                        return Err(SseError::TooManyEvents {
                            limit: self.limits.max_events,
                        });
                    }
                    return Ok(Some(event));
                }
            }
            if self.ended {
                return Ok(None);
            }
            if self.pending.len() as u64 > self.limits.max_event_bytes {
                return Err(self.event_too_large());
            }
            let chunk = tokio::time::timeout_at(deadline, self.chunks.next_chunk())
                .await
                .map_err(|_| SseError::Idle {
                    timeout: self.limits.idle_timeout,
                })?
                .map_err(SseError::Transport)?;
            match chunk {
                Some(chunk) => {
                    self.bytes += chunk.len() as u64;
                    if self.bytes > self.limits.max_stream_bytes {
                        return Err(SseError::StreamTooLarge {
                            limit: self.limits.max_stream_bytes,
                        });
                    }
                    self.pending.extend_from_slice(&chunk);
                }
                None => self.ended = true,
            }
        }
    }

    fn event_too_large(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.limits.max_event_bytes,
        }
    }

    /// The next whole line without its end. A `\r` last in the buffer waits
    /// for the next byte, which may be the `\n` of a `\r\n`.
    fn take_line(&mut self) -> Option<String> {
        let end = self
            .pending
            .iter()
            .position(|byte| matches!(byte, b'\n' | b'\r'))?;
        let crlf = match self.pending.get(end + 1) {
            _ if self.pending[end] == b'\n' => false,
            Some(b'\n') => true,
            Some(_) => false,
            None if self.ended => false,
            None => return None,
        };
        let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
        self.pending.drain(..end + 1 + usize::from(crlf));
        Some(line)
    }

    /// Takes one line in; a blank line gives the event read so far, if it has data.
    fn line(&mut self, line: &str) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            let event = self.event.take();
            return Ok(self.data.take().map(|data| SseEvent {
                event: event.unwrap_or_else(|| "message".to_string()),
                data,
            }));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                let data = match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                        data
                    }
                    None => self.data.insert(value.to_string()),
                };
                if data.len() as u64 > self.limits.max_event_bytes {
                    return Err(self.event_too_large());
                }
            }
            "event" => self.event = Some(value.to_string()),
            // `id` and `retry` serve reconnecting browsers; pallet resubscribes by task id.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    struct Script(VecDeque<&'static str>);

    impl Chunks for Script {
        async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, reqwest::Error> {
            match self.0.pop_front() {
                Some(chunk) => Ok(Some(bytes::Bytes::from_static(chunk.as_bytes()))),
                // The stream stays open and silent.
                None => std::future::pending().await,
            }
        }
    }

    struct Ends(VecDeque<&'static str>);

    impl Chunks for Ends {
        async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, reqwest::Error> {
            Ok(self
                .0
                .pop_front()
                .map(|chunk| bytes::Bytes::from_static(chunk.as_bytes())))
        }
    }

    const LIMITS: SseLimits = SseLimits {
        max_event_bytes: 64,
        max_stream_bytes: 1024,
        max_events: 5,
        idle_timeout: Duration::from_secs(1),
    };

    async fn read_all(chunks: &[&'static str]) -> (Vec<SseEvent>, Option<SseError>) {
        let mut reader = SseReader::new(Ends(chunks.iter().copied().collect()), LIMITS);
        let mut events = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(event)) => events.push(event),
                Ok(None) => return (events, None),
                Err(error) => return (events, Some(error)),
            }
        }
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.to_string(),
            data: data.to_string(),
        }
    }

    #[tokio::test]
    async fn events_in_every_line_ending_split_anywhere() {
        let cases: Vec<(Vec<&'static str>, Vec<SseEvent>)> = vec![
            (vec!["data: {}\n\n"], vec![event("message", "{}")]),
            (
                vec!["data: a\r\n\r\ndata:b\r\r"],
                vec![event("message", "a"), event("message", "b")],
            ),
            (
                vec!["da", "ta: a\r", "\n", "\r\n"],
                vec![event("message", "a")],
            ),
            (
                vec![
                    ": keep-alive\n",
                    "event: error\nid: 7\ndata: one\ndata: two\n\n",
                ],
                vec![event("error", "one\ntwo")],
            ),
            // A field without a colon, an event without data, an unfinished event.
            (
                vec!["data\n\nevent: x\n\ndata: late"],
                vec![event("message", "")],
            ),
        ];
        for (chunks, expected) in cases {
            let (events, error) = read_all(&chunks).await;
            assert!(error.is_none(), "{chunks:?}: {error:?}");
            assert_eq!(events, expected, "{chunks:?}");
        }
    }

    #[tokio::test]
    async fn bounds_are_errors() {
        let (_, error) = read_all(&["data: ", &*"x".repeat(100).leak(), "\n\n"]).await;
        assert!(
            matches!(error, Some(SseError::EventTooLarge { limit: 64 })),
            "{error:?}"
        );
        let endless: &'static str = "x".repeat(100).leak();
        let (_, error) = read_all(&["data: ", endless]).await;
        assert!(
            matches!(error, Some(SseError::EventTooLarge { .. })),
            "{error:?}"
        );
        let (events, error) = read_all(&["data: 1\n\n"; 6]).await;
        assert_eq!(events.len(), 5);
        assert!(
            matches!(error, Some(SseError::TooManyEvents { limit: 5 })),
            "{error:?}"
        );
        let (_, error) = read_all(&[": a comment that is long enough\n"; 40]).await;
        assert!(
            matches!(error, Some(SseError::StreamTooLarge { limit: 1024 })),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_stream_times_out() {
        let limits = SseLimits {
            idle_timeout: Duration::from_millis(50),
            ..LIMITS
        };
        let mut reader = SseReader::new(Script(["data: 1\n\n", ": still here\n"].into()), limits);
        assert_eq!(reader.next().await.unwrap(), Some(event("message", "1")));
        let error = reader.next().await.unwrap_err();
        assert!(matches!(error, SseError::Idle { .. }), "{error:?}");
    }
}
