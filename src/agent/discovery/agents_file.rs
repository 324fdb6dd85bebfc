//! The agents file (`--agents-file`, YAML or JSON): a list of agent URLs, or
//! `agents: [{url, max_response_size, auth}]`. Each entry is read on its own so
//! that a bad one is named at its line:column.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{ConfiguredAgent, DiscoveryError};
use crate::agent::credentials::AuthEntry;
use crate::yaml::{Document, FileKind, YamlError};

/// How YAML problems about the whole file name an agents file.
const AGENTS_FILE: FileKind = FileKind {
    article: "an",
    name: "agents",
    contents: "an agents file lists agent URLs, or `agents: [{url: ...}]`",
};

/// `agents: [...]`; other keys are ignored.
#[derive(Deserialize)]
struct AgentsMapping {
    agents: Vec<Value>,
}

/// One entry given as a mapping rather than a bare URL.
#[derive(Deserialize)]
struct AgentEntry {
    url: String,
    #[serde(default, with = "crate::workflow::model::size_opt")]
    max_response_size: Option<u64>,
    #[serde(default)]
    auth: Option<AuthEntry>,
}

pub(super) fn read_agents_file(path: &Path) -> Result<Vec<ConfiguredAgent>, DiscoveryError> {
    let text = std::fs::read_to_string(path).map_err(|source| DiscoveryError::ReadAgentsFile {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_error = |source| DiscoveryError::ParseAgentsFile {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    // JSON is YAML too, so one parser reads both.
    let document =
        Document::parse(&text, &path.display().to_string(), AGENTS_FILE).map_err(parse_error)?;
    let (list, count) = entries(&document).map_err(parse_error)?;
    let mut agents = Vec::with_capacity(count);
    for index in 0..count {
        let pointer = format!("{list}/{index}");
        let agent = match document.value().pointer(&pointer) {
            Some(Value::String(url)) => ConfiguredAgent {
                url: url.clone(),
                max_response_size: None,
                secret: None,
            },
            _ => {
                let entry: AgentEntry = document.read(&pointer).map_err(parse_error)?;
                ConfiguredAgent {
                    secret: entry.auth.map(|auth| auth.secret(&entry.url)).transpose()?,
                    url: entry.url,
                    max_response_size: entry.max_response_size,
                }
            }
        };
        agents.push(agent);
    }
    Ok(agents)
}

/// The pointer of the list of entries and its length.
fn entries(document: &Document) -> Result<(&'static str, usize), YamlError> {
    match document.value() {
        Value::Array(items) => Ok(("", items.len())),
        Value::Object(_) => {
            let mapping: AgentsMapping = document.read("")?;
            Ok(("/agents", mapping.agents.len()))
        }
        _ => Err(document.error_at(
            "",
            "expected a list of agent URLs or `agents: [...]`".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn agents_files_in_every_accepted_shape() {
        let cases = [
            "agents:\n  - url: http://a\n  - url: http://b\n",
            "- http://a\n- http://b\n",
            r#"{"agents": [{"url": "http://a"}, "http://b"]}"#,
            r#"["http://a", "http://b"]"#,
        ];
        for text in cases {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(text.as_bytes()).unwrap();
            let urls: Vec<String> = read_agents_file(file.path())
                .unwrap()
                .into_iter()
                .map(|agent| agent.url)
                .collect();
            assert_eq!(urls, ["http://a", "http://b"], "{text}");
        }
    }

    #[test]
    fn agents_files_give_each_agent_its_response_limit() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let text = "agents:\n  - {url: http://a, max_response_size: 1MiB}\n  - {url: http://b, max_response_size: 2048}\n  - url: http://c\n";
        file.write_all(text.as_bytes()).unwrap();
        let limits: Vec<Option<u64>> = read_agents_file(file.path())
            .unwrap()
            .into_iter()
            .map(|agent| agent.max_response_size)
            .collect();
        assert_eq!(limits, [Some(1 << 20), Some(2048), None]);
    }

    #[test]
    fn an_agent_given_two_urls_is_refused_at_the_second() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"agents:\n  - url: http://a\n    url: http://b\n")
            .unwrap();
        let error = crate::error::chain_of(&read_agents_file(file.path()).unwrap_err());
        assert!(
            error.contains(":3:5: key `url` is given twice in the same mapping"),
            "{error}"
        );
    }

    #[test]
    fn bad_agents_files_are_named() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"agents: 3\n").unwrap();
        let error = read_agents_file(file.path()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&file.path().display().to_string()),
            "{error}"
        );
        assert!(error.hint().is_some());
        let missing = read_agents_file(Path::new("no-such-agents.yaml")).unwrap_err();
        assert!(
            missing.to_string().contains("no-such-agents.yaml"),
            "{missing}"
        );
    }

    #[test]
    fn bad_entries_are_named_at_their_line_and_column() {
        let cases = [
            (
                "agents:\n  - url: http://a\n  - {max_response_size: 1}\n",
                ":3:5: missing field `url`",
            ),
            ("agents:\n  - url: 3\n", ":2:10: invalid type: integer `3`"),
            (
                "- http://a\n- {url: http://b, auth: 3}\n",
                ":2:25: invalid type: integer `3`",
            ),
            ("agents: 3\n", ":1:9: invalid type: integer `3`"),
            ("agents:\n  - url: [\n", ":3:1: malformed YAML"),
            ("just text\n", ":1:1: expected a list of agent URLs"),
            ("{}\n", ":1:1: missing field `agents`"),
        ];
        for (text, expected) in cases {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(text.as_bytes()).unwrap();
            let error = read_agents_file(file.path()).unwrap_err();
            let chain = crate::error::chain_of(&error);
            let located = format!("{}{expected}", file.path().display());
            assert!(chain.contains(&located), "{text:?}: {chain}");
        }
    }
}
