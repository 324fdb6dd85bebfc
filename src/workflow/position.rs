//! YAML -> JSON in one pass over the parser's events, recording where each node
//! sits (keyed by JSON pointer) so that schema and semantic problems, found on
//! JSON values, can be reported as line:column.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::{Map, Value};
use yaml_rust2::parser::{MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Event, Yaml};

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
    /// Keys given twice in one mapping: pointer and position of the second one.
    duplicates: Vec<(String, Position)>,
}

impl PositionIndex {
    /// Parses `text` into JSON (YAML 1.2 core schema) and records where every node
    /// is; fails on malformed YAML, on several documents, and on an empty document.
    pub fn parse(text: &str) -> Result<(Value, PositionIndex), SyntaxProblem> {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if let Err(error) = parser.load(&mut builder, true) {
            let at = position(error.marker());
            return Err(
                unquoted_template(text, at.line).unwrap_or_else(|| SyntaxProblem {
                    position: at,
                    message: format!("malformed YAML: {}", error.info()),
                    hint: Some(syntax_hint(error.info()).to_string()),
                }),
            );
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
        if let Some(problem) = builder.unsupported {
            return Err(unquoted_template(text, problem.position.line).unwrap_or(problem));
        }
        let root = builder.root.filter(|root| !root.is_null());
        let Some(root) = root else {
            return Err(SyntaxProblem {
                position: Position { line: 1, column: 1 },
                message: "the workflow file is empty".to_string(),
                hint: Some("a workflow needs `metadata` and `steps`".to_string()),
            });
        };
        Ok((root, builder.index))
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

    /// Keys given twice in one mapping (YAML parsers keep the last one silently).
    pub fn duplicate_keys(&self) -> &[(String, Position)] {
        &self.duplicates
    }

    /// Position of the mapping key naming `pointer` (falls back to the node).
    pub fn key(&self, pointer: &str) -> Position {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.node(pointer))
    }
}

/// A hint for the scanner's message, for the mistakes people make most.
fn syntax_hint(info: &str) -> &'static str {
    if info.contains("tab") {
        "indent with spaces: YAML does not allow tabs for indentation"
    } else if info.contains("mapping values are not allowed") {
        "quote a value that contains \": \" (e.g. skill: \"a: b\"), or check this line's indentation"
    } else if info.contains("quoted scalar") {
        "a quote opened here is never closed"
    } else if info.contains("flow sequence") || info.contains("flow mapping") {
        "a `[` or `{` opened here is never closed, or an item lacks its `,`"
    } else if info.contains("expected '-'") || info.contains("expected key") {
        "check the indentation: the items of one list or mapping start in the same column"
    } else {
        "check the indentation, quotes and brackets here; an unclosed quote or bracket may start earlier"
    }
}

/// YAML reads an unquoted `{{ ... }}` value as a nested mapping, which fails in
/// confusing ways: find such a value at or before `line` and say so plainly.
fn unquoted_template(text: &str, line: usize) -> Option<SyntaxProblem> {
    for (index, content) in text.lines().take(line).enumerate() {
        let Some(start) = content.find("{{") else {
            continue;
        };
        let before = content[..start].trim_end();
        if before.ends_with(':')
            || before.ends_with('-')
            || before.ends_with('[')
            || before.ends_with(',')
        {
            return Some(SyntaxProblem {
                position: Position {
                    line: index + 1,
                    column: content[..start].chars().count() + 1,
                },
                message: "unquoted template: YAML reads `{{ ... }}` as a mapping".to_string(),
                hint: Some("put the template in quotes: \"{{ workflow.input.name }}\"".to_string()),
            });
        }
    }
    None
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

/// A collection being read; `anchor` is its YAML anchor id (0: none).
enum Frame {
    Sequence {
        pointer: String,
        items: Vec<Value>,
        anchor: usize,
    },
    /// `key` is the pending key whose value comes next (None: a key comes next).
    Mapping {
        pointer: String,
        key: Option<String>,
        fields: Map<String, Value>,
        anchor: usize,
    },
}

/// Most nodes all alias expansions of one file may produce together: far
/// above any real workflow, far below what exhausts memory ("billion laughs").
const MAX_ALIAS_NODES: usize = 100_000;

#[derive(Default)]
struct Builder {
    index: PositionIndex,
    stack: Vec<Frame>,
    root: Option<Value>,
    /// Anchored values with their node counts.
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes produced so far by expanding aliases.
    alias_nodes: usize,
    documents: usize,
    second_document: Option<Position>,
    /// A construct workflows never need (complex keys), reported like a syntax error.
    unsupported: Option<SyntaxProblem>,
}

impl Builder {
    /// The pointer of the node starting now, or None when this event is a mapping key.
    fn next_pointer(&mut self, key_text: Option<&str>, at: Position) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Sequence { pointer, items, .. }) => {
                Some(format!("{pointer}/{}", items.len()))
            }
            Some(Frame::Mapping { pointer, key, .. }) => match key {
                Some(name) => Some(format!("{pointer}/{}", escape(name))),
                None => {
                    let Some(name) = key_text else {
                        self.unsupported.get_or_insert(SyntaxProblem {
                            position: at,
                            message: "complex mapping keys are not supported".to_string(),
                            hint: Some("use a plain word as the key".to_string()),
                        });
                        return None;
                    };
                    let child = format!("{pointer}/{}", escape(name));
                    match self.index.keys.entry(child) {
                        Entry::Occupied(entry) => {
                            self.index.duplicates.push((entry.key().clone(), at))
                        }
                        Entry::Vacant(entry) => {
                            entry.insert(at);
                        }
                    }
                    // A block mapping's start event is marked after its first key: start it at that key.
                    if let Some(start) = self.index.nodes.get_mut(pointer.as_str())
                        && (at.line, at.column) < (start.line, start.column)
                    {
                        *start = at;
                    }
                    *key = Some(name.to_string());
                    None
                }
            },
        }
    }

    fn record(&mut self, pointer: &str, at: Position) {
        self.index.nodes.entry(pointer.to_string()).or_insert(at);
    }

    /// Attaches a finished node to its parent (or makes it the document).
    fn attach(&mut self, value: Value, anchor: usize) {
        if anchor != 0 {
            let nodes = count_nodes(&value);
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Sequence { items, .. }) => items.push(value),
            Some(Frame::Mapping { key, fields, .. }) => {
                if let Some(name) = key.take() {
                    fields.insert(name, value);
                }
            }
        }
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        at: Position,
    ) {
        if let Some(pointer) = self.next_pointer(Some(&text), at) {
            self.record(&pointer, at);
            self.attach(resolve_scalar(text, style, tag.as_ref()), anchor);
        }
    }

    fn start(&mut self, mapping: bool, anchor: usize, at: Position) {
        let Some(pointer) = self.next_pointer(None, at) else {
            return;
        };
        self.record(&pointer, at);
        let frame = if mapping {
            Frame::Mapping {
                pointer,
                key: None,
                fields: Map::new(),
                anchor,
            }
        } else {
            Frame::Sequence {
                pointer,
                items: Vec::new(),
                anchor,
            }
        };
        self.stack.push(frame);
    }

    /// The anchored value an alias names, or null once expansions would
    /// exceed `MAX_ALIAS_NODES` (then reported as a problem at the alias).
    fn expand_alias(&mut self, anchor: usize, at: Position) -> Value {
        let Some((value, nodes)) = self.anchors.get(&anchor) else {
            return Value::Null;
        };
        let total = self.alias_nodes.saturating_add(*nodes);
        if total > MAX_ALIAS_NODES {
            self.unsupported.get_or_insert(SyntaxProblem {
                position: at,
                message: format!(
                    "YAML aliases expand to more than {MAX_ALIAS_NODES} nodes"
                ),
                hint: Some(
                    "aliases of aliases multiply the document's size; write the values out or use fewer nested aliases"
                        .to_string(),
                ),
            });
            return Value::Null;
        }
        self.alias_nodes = total;
        value.clone()
    }

    fn end(&mut self) {
        match self.stack.pop() {
            Some(Frame::Sequence { items, anchor, .. }) => self.attach(Value::Array(items), anchor),
            Some(Frame::Mapping { fields, anchor, .. }) => {
                self.attach(Value::Object(apply_merge_key(fields)), anchor)
            }
            None => {}
        }
    }
}

/// How many nodes (scalars and collections) `value` holds, itself included.
fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(fields) => 1 + fields.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// `<<: *defaults` (or a list of aliases) fills in the keys a mapping does not set itself.
fn apply_merge_key(mut fields: Map<String, Value>) -> Map<String, Value> {
    let Some(merged) = fields.remove("<<") else {
        return fields;
    };
    let sources = match merged {
        Value::Array(items) => items,
        other => vec![other],
    };
    for source in sources {
        let Value::Object(source) = source else {
            continue;
        };
        for (name, value) in source {
            fields.entry(name).or_insert(value);
        }
    }
    fields
}

/// The YAML 1.2 core schema: plain scalars may be null, booleans or numbers.
fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if style != TScalarStyle::Plain || tag.is_some_and(|tag| tag.suffix == "str") {
        return Value::String(text);
    }
    if matches!(text.as_str(), "Null" | "NULL") {
        return Value::Null;
    }
    match Yaml::from_str(&text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(flag) => Value::Bool(flag),
        Yaml::Integer(number) => Value::from(number),
        Yaml::Real(real) => real
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::String(text)),
        _ => Value::String(text),
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
            Event::Scalar(text, style, anchor, tag) => self.scalar(text, style, anchor, tag, at),
            Event::Alias(anchor) => {
                if let Some(pointer) = self.next_pointer(None, at) {
                    self.record(&pointer, at);
                    let value = self.expand_alias(anchor, at);
                    self.attach(value, 0);
                }
            }
            Event::SequenceStart(anchor, _) => self.start(false, anchor, at),
            Event::MappingStart(anchor, _) => self.start(true, anchor, at),
            Event::SequenceEnd | Event::MappingEnd => self.end(),
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
        let (value, index) = PositionIndex::parse(text).unwrap();
        assert_eq!(value["steps"][1]["id"], "b");
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
    fn scalars_follow_the_yaml_core_schema() {
        let text = "a: 1\nb: 1.0\nc: '1.0'\nd: true\ne: ~\nf: NULL\ng: text\nh: \"3\"\ni: !!str 4\nj: &x [1, {k: v}]\nl: *x\nm: 0x1f\nn: -2.5e3\n";
        let (value, _) = PositionIndex::parse(text).unwrap();
        let expected = serde_json::json!({
            "a": 1, "b": 1.0, "c": "1.0", "d": true, "e": null, "f": null, "g": "text", "h": "3", "i": "4",
            "j": [1, {"k": "v"}], "l": [1, {"k": "v"}], "m": 31, "n": -2500.0
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn merge_keys_fill_in_defaults() {
        let text =
            "defaults: &defaults {timeout: 30, skill: s}\nstep:\n  <<: *defaults\n  skill: t\n";
        let (value, _) = PositionIndex::parse(text).unwrap();
        assert_eq!(
            value["step"],
            serde_json::json!({"skill": "t", "timeout": 30})
        );
    }

    #[test]
    fn rejects_bad_documents() {
        let cases = [
            ("a: [1, 2\n", "malformed YAML"),
            ("a: 1\n---\nb: 2\n", "more than one YAML document"),
            ("", "empty"),
            ("# only a comment\n", "empty"),
            ("---\n", "empty"),
            ("? [a, b]\n: c\n", "complex mapping keys"),
            ("a: {{ workflow.input.x }}\n", "unquoted template"),
            (
                "a:\n  - {{ eq workflow.input.x \"y\" }}\n",
                "unquoted template",
            ),
            ("a: '{{ x }}'\nb: [1\n", "malformed YAML"),
        ];
        for (text, expected) in cases {
            let problem = PositionIndex::parse(text).unwrap_err();
            assert!(
                problem.message.contains(expected),
                "{text:?}: {}",
                problem.message
            );
        }
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n".to_string();
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        for pair in names.windows(2) {
            let aliases = vec![format!("*{}", pair[0]); 10].join(", ");
            text.push_str(&format!("{}: &{} [{aliases}]\n", pair[1], pair[1]));
        }
        let problem = PositionIndex::parse(&text).unwrap_err();
        assert!(
            problem
                .message
                .contains("aliases expand to more than 100000 nodes"),
            "{}",
            problem.message
        );
        assert_eq!(problem.position.line, 5);
        assert!(problem.hint.is_some());
        let small = "a: &a [1, 2]\nb: [*a, *a]\n";
        assert!(PositionIndex::parse(small).is_ok());
    }
}
