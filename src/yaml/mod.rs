//! The one YAML reader: every YAML file pallet reads (workflows, agent
//! definitions, agents files, credentials) goes through [`PositionIndex::parse`],
//! so each problem, syntax or shape, names its file:line:column. A leaf module:
//! it knows YAML and JSON values, nothing of what the files mean.

pub mod limits;
mod position;
mod problems;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

pub use position::{Position, PositionIndex, YamlProblem, escape};

/// What a file holds, named in the problems about the whole document
/// ("the workflow file is empty", "a workflow file holds exactly one document").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    /// "a" or "an", as `name` needs.
    pub article: &'static str,
    pub name: &'static str,
    /// The hint for an empty file: what it should hold.
    pub contents: &'static str,
}

/// A YAML file that cannot be read into the type asked for, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{}:{}: {}{}", .problem.position.line, .problem.position.column, .problem.message, hint_suffix(.problem.hint.as_deref()))]
pub struct YamlError {
    /// The file (or other origin) as named in the message.
    pub file: String,
    pub problem: YamlProblem,
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|hint| format!(" (hint: {hint})"))
        .unwrap_or_default()
}

/// Reads YAML `text` from `file` into `T`: a syntax problem, or a value of
/// the wrong shape (a missing field, an unknown key, a wrong type), is
/// reported at its line:column.
pub fn from_str<T: DeserializeOwned>(
    text: &str,
    file: &str,
    kind: FileKind,
) -> Result<T, YamlError> {
    Document::parse(text, file, kind)?.read("")
}

/// Reads YAML text that comes from no file (a test's snippet, say); its
/// problems are located in `snippet`.
pub fn from_snippet<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    const SNIPPET: FileKind = FileKind {
        article: "a",
        name: "YAML",
        contents: "a YAML document",
    };
    from_str(text, "snippet", SNIPPET)
}

/// A parsed YAML file that remembers where each node is, for files whose parts
/// are read one by one (each part's problems keep their line:column).
#[derive(Debug)]
pub struct Document {
    file: String,
    value: Value,
    index: PositionIndex,
}

impl Document {
    pub fn parse(text: &str, file: &str, kind: FileKind) -> Result<Document, YamlError> {
        let (value, index) = PositionIndex::parse(text, kind).map_err(|problem| YamlError {
            file: file.to_string(),
            problem,
        })?;
        // A parser keeps the last of two equal keys: refused, so a file never
        // means something else than it seems to say.
        if let Some((pointer, position)) = index.duplicate_keys().first() {
            let (message, hint) = duplicate_key(pointer);
            return Err(YamlError {
                file: file.to_string(),
                problem: YamlProblem {
                    position: *position,
                    pointer: pointer.clone(),
                    message,
                    hint: Some(hint),
                },
            });
        }
        Ok(Document {
            file: file.to_string(),
            value,
            index,
        })
    }

    /// The whole document as JSON.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Deserializes the node at `pointer` ("" for the whole document).
    pub fn read<T: DeserializeOwned>(&self, pointer: &str) -> Result<T, YamlError> {
        let node = self.value.pointer(pointer).cloned().unwrap_or(Value::Null);
        serde_path_to_error::deserialize(node).map_err(|error| {
            let inner = format!("{pointer}{}", pointer_of(error.path()));
            let message = error.into_inner().to_string();
            // An unknown key is best shown at the key, anything else at its value.
            if message.starts_with("unknown field") {
                self.error_at_key(&inner, message)
            } else {
                self.error_at(&inner, message)
            }
        })
    }

    /// A problem with the node at `pointer`, at its line:column.
    pub fn error_at(&self, pointer: &str, message: String) -> YamlError {
        self.located(self.index.node(pointer), pointer, message)
    }

    fn error_at_key(&self, pointer: &str, message: String) -> YamlError {
        self.located(self.index.key(pointer), pointer, message)
    }

    fn located(&self, position: Position, pointer: &str, message: String) -> YamlError {
        YamlError {
            file: self.file.clone(),
            problem: YamlProblem {
                position,
                pointer: pointer.to_string(),
                message,
                hint: None,
            },
        }
    }
}

/// Message and hint for a key given twice in one mapping (at `pointer`).
pub fn duplicate_key(pointer: &str) -> (String, String) {
    let name = pointer.rsplit('/').next().unwrap_or_default();
    (
        format!("key `{name}` is given twice in the same mapping"),
        "remove one of them; YAML would silently keep only the last".to_string(),
    )
}

/// The JSON pointer of a deserialization path (`skills[0].timeout` -> `/skills/0/timeout`).
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => pointer.push_str(&format!("/{}", escape(key))),
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    const KIND: FileKind = FileKind {
        article: "a",
        name: "test",
        contents: "a mapping of `items`",
    };

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        items: Vec<Item>,
        #[serde(default)]
        names: BTreeMap<String, u32>,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        id: String,
        count: Option<u32>,
    }

    #[test]
    fn problems_name_file_line_and_column() {
        let cases = [
            (
                "items:\n  - {id: a, cont: 1}\n",
                "f.yaml:2:13: unknown field `cont`",
            ),
            (
                "items:\n  - id: a\n    count: many\n",
                "f.yaml:3:12: invalid type: string \"many\"",
            ),
            ("items:\n  - count: 1\n", "f.yaml:2:5: missing field `id`"),
            (
                "items: []\nnames: {a: 1, a: 2}\n",
                "f.yaml:2:15: key `a` is given twice in the same mapping (hint: remove one of them",
            ),
            (
                "items: []\nnames: {a: x}\n",
                "f.yaml:2:12: invalid type: string \"x\"",
            ),
            ("items: [\n", "f.yaml:2:1: malformed YAML"),
            ("items:\n\t- x\n", "f.yaml:2:2: malformed YAML"),
            (
                "",
                "f.yaml:1:1: the test file is empty (hint: a mapping of `items`)",
            ),
        ];
        for (text, expected) in cases {
            let error = from_str::<File>(text, "f.yaml", KIND).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn reads_the_value_when_it_fits() {
        let file: File = from_str("items:\n  - {id: a, count: 2}\n", "f.yaml", KIND).unwrap();
        assert_eq!(file.items[0].count, Some(2));
    }

    #[test]
    fn parts_read_one_by_one_keep_their_positions() {
        let text = "items:\n  - {id: a}\n  - {id: 3}\n";
        let document = Document::parse(text, "f.yaml", KIND).unwrap();
        let item: Item = document.read("/items/0").unwrap();
        assert_eq!(item.id, "a");
        let error = document.read::<Item>("/items/1").unwrap_err();
        assert_eq!(error.problem.pointer, "/items/1/id");
        assert!(
            error.to_string().starts_with("f.yaml:3:10: invalid type"),
            "{error}"
        );
        let error = document.error_at("/items", "not a list".to_string());
        assert_eq!(error.to_string(), "f.yaml:2:3: not a list");
    }

    #[test]
    fn the_nesting_bound_applies_to_every_file() {
        let text = format!("items: {}1{}\n", "[".repeat(100), "]".repeat(100));
        let error = from_str::<File>(&text, "f.yaml", KIND).unwrap_err();
        assert!(
            error.to_string().contains("deeper than 64 levels"),
            "{error}"
        );
    }
}
