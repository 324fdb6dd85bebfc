//! Run and step events: one row per transition, step attempt status change
//! and agent status message, written by triggers of the schema (migrations
//! `0009_events.sql`, `postgres/0003_events.sql`) in the transaction of the
//! change. Readers page through them in commit order from an [`EventCursor`],
//! which is what `GET /events` sends as the SSE event id.

use std::fmt;
use std::str::FromStr;

use rusqlite::params;
use serde_json::Value;

use super::{RunStore, StoreError};

/// Where a reader stands in the event order. On SQLite the order is the
/// row id (`xid` is 0); on PostgreSQL it is (transaction id, row id), see
/// the PostgreSQL migration for why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    pub xid: u64,
    pub id: u64,
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.xid {
            0 => write!(f, "{}", self.id),
            xid => write!(f, "{xid}.{}", self.id),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not an event id: expected a number, or two joined by `.`, as sent in the `id:` lines of the stream"
)]
pub struct BadCursor(String);

impl FromStr for EventCursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor(text.chars().take(64).collect());
        let number = |part: &str| match part.bytes().all(|byte| byte.is_ascii_digit()) {
            true => part.parse::<u64>().map_err(|_| bad()),
            false => Err(bad()),
        };
        match text.trim().split_once('.') {
            None => Ok(EventCursor {
                xid: 0,
                id: number(text.trim())?,
            }),
            Some((xid, id)) => Ok(EventCursor {
                xid: number(xid)?,
                id: number(id)?,
            }),
        }
    }
}

/// Which events a reader wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    All,
    Run(String),
    Workflow(String),
}

impl EventScope {
    pub fn admits(&self, event: &Event) -> bool {
        match self {
            EventScope::All => true,
            EventScope::Run(id) => event.run_id == *id,
            EventScope::Workflow(id) => event.workflow_id == *id,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub cursor: EventCursor,
    pub run_id: String,
    pub workflow_id: String,
    /// `run.created`, `run.<status>`, `step.<status>` or `step.message`.
    pub kind: String,
    pub step_id: Option<String>,
    pub data: Value,
    pub at: String,
}

impl Event {
    /// The row's columns after the cursor's: run, workflow, type, step, data, at.
    pub(super) fn from_columns(
        cursor: EventCursor,
        run_id: String,
        workflow_id: String,
        kind: String,
        step_id: Option<String>,
        data: String,
        at: String,
    ) -> Event {
        Event {
            cursor,
            run_id,
            workflow_id,
            kind,
            step_id,
            data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
            at,
        }
    }

    /// The JSON an event stream sends as the event's data.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.cursor.to_string(),
            "type": self.kind,
            "run_id": self.run_id,
            "workflow_id": self.workflow_id,
            "step_id": self.step_id,
            "at": self.at,
            "data": self.data,
        })
    }
}

impl RunStore {
    /// Up to `limit` events after `after`, in order.
    pub fn events_after(
        &self,
        after: EventCursor,
        scope: &EventScope,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        const COLUMNS: &str = "SELECT id, run_id, workflow_id, type, step_id, data, at FROM events";
        let (sql, value) = match scope {
            EventScope::All => (
                format!("{COLUMNS} WHERE id > ?1 AND ?2 IS NULL ORDER BY id LIMIT ?3"),
                None,
            ),
            EventScope::Run(id) => (
                format!("{COLUMNS} WHERE run_id = ?2 AND id > ?1 ORDER BY id LIMIT ?3"),
                Some(id),
            ),
            EventScope::Workflow(id) => (
                format!("{COLUMNS} WHERE workflow_id = ?2 AND id > ?1 ORDER BY id LIMIT ?3"),
                Some(id),
            ),
        };
        let after = i64::try_from(after.id).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![after, value, limit], |row| {
                Ok(Event::from_columns(
                    EventCursor {
                        xid: 0,
                        id: row.get::<_, i64>(0)?.max(0) as u64,
                    },
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The cursor of the newest event (the default of `after`).
    pub fn last_event(&self) -> Result<EventCursor, StoreError> {
        let id: i64 = self.read(|connection| {
            Ok(
                connection.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |row| {
                    row.get(0)
                })?,
            )
        })?;
        Ok(EventCursor {
            xid: 0,
            id: id.max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_print_and_parse_back() {
        for cursor in [
            EventCursor { xid: 0, id: 0 },
            EventCursor { xid: 0, id: 42 },
            EventCursor { xid: 731, id: 9 },
        ] {
            assert_eq!(cursor.to_string().parse::<EventCursor>().unwrap(), cursor);
        }
        assert_eq!(" 7 ".parse::<EventCursor>().unwrap().id, 7);
        for bad in [
            "",
            "x",
            "-1",
            "1.",
            ".1",
            "1.2.3",
            "+4",
            "99999999999999999999999",
        ] {
            let error = bad.parse::<EventCursor>().unwrap_err().to_string();
            assert!(error.contains("is not an event id"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_order_is_the_transaction_first() {
        let early = EventCursor { xid: 5, id: 900 };
        let late = EventCursor { xid: 6, id: 3 };
        assert!(early < late);
    }
}
