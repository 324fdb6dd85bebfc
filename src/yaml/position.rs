//! YAML -> JSON in one pass over the parser's events, recording where each node
//! sits (keyed by JSON pointer) so that problems found on JSON values (schema,
//! semantic, deserialization) can be reported as line:column.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::{Map, Value};
use yaml_rust2::parser::{MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Event, Yaml};

use super::problems::{check_characters, depth_hint, syntax_hint, too_deep, unquoted_template};
use super::{FileKind, limits};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A problem in a YAML text (its syntax, its bounds, or a value of the wrong
/// shape for what reads it), and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlProblem {
    pub position: Position,
    /// JSON pointer of the node where the problem is, when it is known ("" otherwise).
    pub pointer: String,
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
    /// is; fails on malformed YAML, on several documents, and on an empty document
    /// (the problems about the whole document name `kind`).
    pub fn parse(text: &str, kind: FileKind) -> Result<(Value, PositionIndex), YamlProblem> {
        // A leading byte order mark is allowed (editors write one); positions
        // are counted without it, as editors show them.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        check_characters(text)?;
        let mut builder = Builder::new(text.len(), kind);
        let mut parser = Parser::new_from_str(text);
        // Events are pulled one by one (`Parser::load` recurses once per nesting
        // level), so the first problem, a too deep nesting say, stops the parse.
        loop {
            let (event, marker) = parser.next_token().map_err(|error| {
                let at = position(error.marker());
                unquoted_template(text, at.line).unwrap_or_else(|| YamlProblem {
                    position: at,
                    pointer: String::new(),
                    message: format!("malformed YAML: {}", error.info()),
                    hint: Some(syntax_hint(error.info()).to_string()),
                })
            })?;
            if event == Event::StreamEnd {
                break;
            }
            builder.on_event(event, marker);
            if let Some(problem) = builder.problem.take() {
                let template = builder.suspect_template;
                let template = template.then(|| unquoted_template(text, problem.position.line));
                return Err(template.flatten().unwrap_or(problem));
            }
        }
        let root = builder.root.filter(|root| !root.is_null());
        let Some(root) = root else {
            return Err(YamlProblem {
                position: Position { line: 1, column: 1 },
                pointer: String::new(),
                message: format!("the {} file is empty", kind.name),
                hint: Some(kind.contents.to_string()),
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

/// How much an anchored value weighs when an alias repeats it.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    /// Text bytes (keys and strings) plus a few bytes per node.
    bytes: usize,
    /// Collections nested in it, itself included (0 for a scalar).
    depth: usize,
}

impl Size {
    /// Bytes counted per node besides its text, roughly what JSON adds.
    const NODE_BYTES: usize = 8;

    fn of(value: &Value) -> Size {
        let mut size = Size {
            nodes: 1,
            bytes: Size::NODE_BYTES,
            depth: usize::from(value.is_array() || value.is_object()),
        };
        let mut add = |child: Size, key_bytes: usize| {
            size.nodes += child.nodes;
            size.bytes += child.bytes + key_bytes;
            size.depth = size.depth.max(child.depth + 1);
        };
        match value {
            Value::Array(items) => items.iter().for_each(|item| add(Size::of(item), 0)),
            Value::Object(fields) => fields
                .iter()
                .for_each(|(key, field)| add(Size::of(field), key.len())),
            Value::String(text) => size.bytes += text.len(),
            _ => {}
        }
        size
    }
}

struct Builder {
    index: PositionIndex,
    stack: Vec<Frame>,
    root: Option<Value>,
    /// Anchored values with their sizes.
    anchors: HashMap<usize, (Value, Size)>,
    /// Nodes and bytes produced so far by expanding aliases.
    alias_nodes: usize,
    alias_bytes: usize,
    /// Bytes of the JSON pointers kept in the index (long keys repeat in every child's).
    index_bytes: usize,
    /// Bound on `alias_bytes` and on `index_bytes`.
    max_expanded_bytes: usize,
    documents: usize,
    /// The first problem found; the parse stops there.
    problem: Option<YamlProblem>,
    /// The problem may come from an unquoted `{{ }}` read as a mapping.
    suspect_template: bool,
    kind: FileKind,
}

impl Builder {
    fn new(input_bytes: usize, kind: FileKind) -> Builder {
        Builder {
            index: PositionIndex::default(),
            stack: Vec::new(),
            root: None,
            anchors: HashMap::new(),
            alias_nodes: 0,
            alias_bytes: 0,
            index_bytes: 0,
            max_expanded_bytes: limits::max_expanded_bytes(input_bytes),
            documents: 0,
            problem: None,
            suspect_template: false,
            kind,
        }
    }

    fn fail(&mut self, at: Position, message: String, hint: &str) {
        let pointer = self.current_pointer();
        self.problem.get_or_insert(YamlProblem {
            position: at,
            pointer,
            message,
            hint: Some(hint.to_string()),
        });
    }

    /// The pointer of the collection being read ("" at the top).
    fn current_pointer(&self) -> String {
        match self.stack.last() {
            Some(Frame::Sequence { pointer, .. } | Frame::Mapping { pointer, .. }) => {
                pointer.clone()
            }
            None => String::new(),
        }
    }

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
                        self.suspect_template = true;
                        self.fail(
                            at,
                            "complex mapping keys are not supported".to_string(),
                            "use a plain word as the key",
                        );
                        return None;
                    };
                    let child = format!("{pointer}/{}", escape(name));
                    match self.index.keys.entry(child) {
                        Entry::Occupied(entry) => {
                            self.index.duplicates.push((entry.key().clone(), at))
                        }
                        Entry::Vacant(entry) => {
                            self.index_bytes += entry.key().len();
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
        if let Entry::Vacant(entry) = self.index.nodes.entry(pointer.to_string()) {
            self.index_bytes += pointer.len();
            entry.insert(at);
        }
        if self.index_bytes > self.max_expanded_bytes {
            let limit = crate::error::describe_bytes(self.max_expanded_bytes);
            self.fail(
                at,
                format!("the document's keys, repeated on every nested value, exceed {limit}"),
                "use shorter keys or a flatter structure",
            );
        }
    }

    /// Attaches a finished node to its parent (or makes it the document).
    fn attach(&mut self, value: Value, anchor: usize) {
        if anchor != 0 {
            let size = Size::of(&value);
            self.anchors.insert(anchor, (value.clone(), size));
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
        if self.stack.len() >= limits::MAX_NESTING_DEPTH {
            self.fail(at, too_deep(), &depth_hint(self.kind));
            return;
        }
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

    /// The anchored value an alias names, or null once expansions would exceed
    /// `MAX_ALIAS_NODES`, the expanded-bytes bound or the nesting depth (then
    /// reported as a problem at the alias).
    fn expand_alias(&mut self, anchor: usize, at: Position) -> Value {
        let Some((value, size)) = self.anchors.get(&anchor) else {
            return Value::Null;
        };
        let (size, nodes) = (*size, self.alias_nodes.saturating_add(size.nodes));
        let bytes = self.alias_bytes.saturating_add(size.bytes);
        let hint = "aliases of aliases multiply the document's size; write the values out or use fewer nested aliases";
        if nodes > limits::MAX_ALIAS_NODES {
            self.fail(
                at,
                format!(
                    "YAML aliases expand to more than {} nodes",
                    limits::MAX_ALIAS_NODES
                ),
                hint,
            );
            return Value::Null;
        }
        if bytes > self.max_expanded_bytes {
            let limit = crate::error::describe_bytes(self.max_expanded_bytes);
            self.fail(
                at,
                format!("YAML aliases expand to more than {limit} (ten times the file, at least 1 MiB, at most 16 MiB)"),
                hint,
            );
            return Value::Null;
        }
        if self.stack.len() + size.depth > limits::MAX_NESTING_DEPTH {
            self.fail(at, too_deep(), &depth_hint(self.kind));
            return Value::Null;
        }
        let value = value.clone();
        (self.alias_nodes, self.alias_bytes) = (nodes, bytes);
        value
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
                    let hint = format!(
                        "{} {} file holds exactly one document; remove the `---` separator",
                        self.kind.article, self.kind.name
                    );
                    self.fail(
                        at,
                        "the file holds more than one YAML document".to_string(),
                        &hint,
                    );
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

/// The kind the tests parse.
#[cfg(test)]
const TEST: FileKind = FileKind {
    article: "a",
    name: "test",
    contents: "a test document",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nodes_and_keys() {
        let text = "metadata:\n  id: x\nsteps:\n  - id: a\n    skill: s\n  - id: b\n";
        let (value, index) = PositionIndex::parse(text, TEST).unwrap();
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
        let (value, _) = PositionIndex::parse(text, TEST).unwrap();
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
        let (value, _) = PositionIndex::parse(text, TEST).unwrap();
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
            let problem = PositionIndex::parse(text, TEST).unwrap_err();
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
        let problem = PositionIndex::parse(&text, TEST).unwrap_err();
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
        assert!(PositionIndex::parse(small, TEST).is_ok());
    }
}

#[cfg(test)]
mod bounds_tests {
    use super::*;

    /// Runs `check` on a thread with a small stack: a recursive walk over a
    /// deep document would overflow it (and abort the test binary).
    fn on_small_stack(check: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(check)
            .expect("thread starts")
            .join()
            .expect("no panic");
    }

    fn deep_documents(levels: usize) -> Vec<(&'static str, String)> {
        let mut aliased = String::from("a: &a [[[[[[[[[[1]]]]]]]]]]\n");
        for index in 0..levels / 10 {
            let previous = if index == 0 {
                "a".to_string()
            } else {
                format!("a{}", index - 1)
            };
            aliased.push_str(&format!(
                "a{index}: &a{index} [[[[[[[[[[*{previous}]]]]]]]]]]\n"
            ));
        }
        vec![
            ("block lists", format!("x:\n  {}1\n", "- ".repeat(levels))),
            (
                "block mappings",
                (0..levels)
                    .map(|level| format!("{}k:\n", "  ".repeat(level)))
                    .collect::<String>()
                    + &format!("{}1\n", "  ".repeat(levels)),
            ),
            (
                "flow lists",
                format!("x: {}1{}\n", "[".repeat(levels), "]".repeat(levels)),
            ),
            ("aliases of nested lists", aliased),
        ]
    }

    #[test]
    fn nesting_is_bounded_in_every_form() {
        on_small_stack(|| {
            for (form, text) in deep_documents(2_000) {
                let problem = PositionIndex::parse(&text, TEST).expect_err(form);
                assert!(
                    problem.message.contains("deeper than 64 levels")
                        || problem.message.contains("recursion limit"),
                    "{form}: {}",
                    problem.message
                );
                assert!(problem.hint.is_some(), "{form}");
            }
            let problem = PositionIndex::parse(&deep_documents(30_000)[0].1, TEST).unwrap_err();
            assert_eq!(
                (problem.position, problem.message.as_str()),
                (
                    Position {
                        line: 2,
                        column: 129
                    },
                    "YAML nesting is deeper than 64 levels (the limit)"
                )
            );
            assert_eq!(problem.pointer, format!("/x{}", "/0".repeat(62)));
            // The limit itself is fine.
            let text = format!("x: {}1{}\n", "[".repeat(63), "]".repeat(63));
            assert!(PositionIndex::parse(&text, TEST).is_ok());
        });
    }

    #[test]
    fn alias_expansion_is_bounded_in_bytes() {
        let big = "x".repeat(500 * 1024);
        let text = format!(
            "big: &big {big}\nlist: [{}]\n",
            vec!["*big"; 90_000].join(", ")
        );
        let started = std::time::Instant::now();
        let problem = PositionIndex::parse(&text, TEST).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(
            problem
                .message
                .starts_with("YAML aliases expand to more than 10.0 MiB (ten times the file"),
            "{}",
            problem.message
        );
        assert_eq!(problem.position.line, 2);
        // A few repeats of a large value stay within ten times the file.
        let text = format!("big: &big {big}\nlist: [*big, *big, *big]\n");
        assert!(PositionIndex::parse(&text, TEST).is_ok());
    }

    #[test]
    fn long_keys_repeated_on_nested_nodes_are_bounded() {
        // Implicit keys are at most 1024 characters long.
        let key = "k".repeat(1000);
        let mut text = String::new();
        for level in 0..60 {
            text.push_str(&format!("{}{key}{level}:\n", "  ".repeat(level)));
        }
        text.push_str(&format!(
            "{}[{}]\n",
            "  ".repeat(60),
            vec!["1"; 40_000].join(",")
        ));
        let problem = PositionIndex::parse(&text, TEST).unwrap_err();
        assert!(
            problem.message.contains("repeated on every nested value"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn control_characters_are_refused_where_they_are() {
        let cases = [
            ("a: 1\nb: x\0y\n", (2, 5), "U+0000"),
            ("a: 1\n\u{7}\n", (2, 1), "U+0007"),
            ("a: 'é\u{1b}'\n", (1, 6), "U+001B"),
            ("a: \u{9f}\n", (1, 4), "U+009F"),
        ];
        for (text, (line, column), code) in cases {
            let problem = PositionIndex::parse(text, TEST).unwrap_err();
            assert_eq!(problem.position, Position { line, column }, "{text:?}");
            assert!(problem.message.contains(code), "{}", problem.message);
        }
        for text in ["a: \"tab\there\"\r\nb: \"\\0 escaped\"\n", "a: x\u{85}y\n"] {
            assert!(PositionIndex::parse(text, TEST).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let (value, index) = PositionIndex::parse("\u{feff}metadata:\n  id: x\n", TEST).unwrap();
        assert_eq!(value, serde_json::json!({"metadata": {"id": "x"}}));
        assert_eq!(index.key("/metadata"), Position { line: 1, column: 1 });
        assert_eq!(index.node("/metadata/id"), Position { line: 2, column: 7 });
    }
}
