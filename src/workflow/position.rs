//! Where each YAML node sits in the source, keyed by JSON pointer, so that schema
//! and semantic problems (found on JSON values) can be reported as line:column.

use std::collections::HashMap;

use yaml_rust2::Event;
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Why a YAML text cannot be indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxProblem {
    pub position: Position,
    pub message: String,
    pub hint: Option<String>,
}

/// JSON pointer -> position of the node, and of the mapping key naming it.
#[derive(Debug, Default)]
pub struct PositionIndex {
    nodes: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl PositionIndex {
    /// Parses `text` and records every node; fails on malformed YAML, on several
    /// documents, and on an empty document.
    pub fn build(text: &str) -> Result<PositionIndex, SyntaxProblem> {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if let Err(error) = parser.load(&mut builder, true) {
            return Err(SyntaxProblem {
                position: position(error.marker()),
                message: format!("malformed YAML: {}", error.info()),
                hint: Some("check the indentation and quoting around this position".to_string()),
            });
        }
        if let Some(second) = builder.second_document {
            return Err(SyntaxProblem {
                position: second,
                message: "the file holds more than one YAML document".to_string(),
                hint: Some(
                    "a workflow file holds exactly one document; remove the `---` separator"
                        .to_string(),
                ),
            });
        }
        if builder.documents == 0 || builder.index.nodes.get("").is_none() {
            return Err(SyntaxProblem {
                position: Position { line: 1, column: 1 },
                message: "the workflow file is empty".to_string(),
                hint: Some("a workflow needs `metadata` and `steps`".to_string()),
            });
        }
        Ok(builder.index)
    }

    /// Position of the node at `pointer`, or of its nearest recorded ancestor
    /// (values reached through YAML aliases have no position of their own).
    pub fn node(&self, pointer: &str) -> Position {
        let mut current = pointer;
        loop {
            if let Some(found) = self.nodes.get(current) {
                return *found;
            }
            match current.rfind('/') {
                Some(cut) => current = &current[..cut],
                None => return Position { line: 1, column: 1 },
            }
        }
    }

    /// Position of the mapping key naming `pointer` (falls back to the node).
    pub fn key(&self, pointer: &str) -> Position {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.node(pointer))
    }
}

fn position(marker: &Marker) -> Position {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Position {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

enum Frame {
    Sequence {
        pointer: String,
        next: usize,
    },
    /// `key` is the pending key whose value comes next (None: a key comes next).
    Mapping {
        pointer: String,
        key: Option<String>,
    },
}

#[derive(Default)]
struct Builder {
    index: PositionIndex,
    stack: Vec<Frame>,
    documents: usize,
    second_document: Option<Position>,
}

impl Builder {
    /// The pointer of the node starting now, or None when this event is a mapping key.
    fn next_pointer(&mut self, text: Option<&str>, at: Position) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { pointer, next }) => {
                let child = format!("{pointer}/{next}");
                *next += 1;
                Some(child)
            }
            Some(Frame::Mapping { pointer, key }) => match key.take() {
                Some(name) => Some(format!("{pointer}/{}", escape(&name))),
                None => {
                    // Complex (non-scalar) keys are not used by workflows; name them by position.
                    let name = text
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{}:{}", at.line, at.column));
                    let child = format!("{pointer}/{}", escape(&name));
                    self.index.keys.entry(child).or_insert(at);
                    // A block mapping's start event is marked after its first key: start it at that key.
                    if let Some(start) = self.index.nodes.get_mut(pointer.as_str())
                        && (at.line, at.column) < (start.line, start.column)
                    {
                        *start = at;
                    }
                    *key = Some(name);
                    None
                }
            },
        }
    }

    fn record(&mut self, pointer: &str, at: Position) {
        self.index.nodes.entry(pointer.to_string()).or_insert(at);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        let at = position(&marker);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_document = Some(at);
                }
            }
            Event::Scalar(text, ..) => {
                if let Some(pointer) = self.next_pointer(Some(&text), at) {
                    self.record(&pointer, at);
                }
            }
            Event::Alias(_) => {
                if let Some(pointer) = self.next_pointer(None, at) {
                    self.record(&pointer, at);
                }
            }
            Event::SequenceStart(..) => {
                if let Some(pointer) = self.next_pointer(None, at) {
                    self.record(&pointer, at);
                    self.stack.push(Frame::Sequence { pointer, next: 0 });
                }
            }
            Event::MappingStart(..) => {
                if let Some(pointer) = self.next_pointer(None, at) {
                    self.record(&pointer, at);
                    self.stack.push(Frame::Mapping { pointer, key: None });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nodes_and_keys() {
        let text = "metadata:\n  id: x\nsteps:\n  - id: a\n    skill: s\n  - id: b\n";
        let index = PositionIndex::build(text).unwrap();
        let cases = [
            ("/metadata/id", Position { line: 2, column: 7 }),
            (
                "/steps/0/skill",
                Position {
                    line: 5,
                    column: 12,
                },
            ),
            ("/steps/1/id", Position { line: 6, column: 9 }),
            ("/steps/1/missing", Position { line: 6, column: 5 }),
        ];
        for (pointer, expected) in cases {
            assert_eq!(index.node(pointer), expected, "{pointer}");
        }
        assert_eq!(index.key("/steps/0/skill"), Position { line: 5, column: 5 });
    }

    #[test]
    fn rejects_bad_documents() {
        let cases = [
            ("a: [1, 2\n", "malformed YAML"),
            ("a: 1\n---\nb: 2\n", "more than one YAML document"),
            ("", "empty"),
            ("# only a comment\n", "empty"),
        ];
        for (text, expected) in cases {
            let problem = PositionIndex::build(text).unwrap_err();
            assert!(
                problem.message.contains(expected),
                "{text:?}: {}",
                problem.message
            );
        }
    }
}
