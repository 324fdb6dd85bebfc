//! Workflow and agent references (`ID`, `ID@REQ`, `ID@=1.2.3`, `ID@sha256:...`)
//! and the tag encoding of versions. Pure: no IO.

use semver::{Version, VersionReq};

use super::RegistryError;

/// The forms a reference may take, shown in every reference error.
pub const ACCEPTED_FORMS: &str = "ID, ID@REQUIREMENT (cargo rules: @1.2 means ^1.2), ID@=1.2.3, \
     ID@v1 (the tag v1, else ^1), ID@sha256:<64 hex digits>";

/// Which kind of artifact a repository holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    Workflow,
    AgentCard,
}

impl ArtifactKind {
    /// Repository prefix: `workflows/` or `agents/`.
    pub fn namespace(self) -> &'static str {
        match self {
            ArtifactKind::Workflow => "workflows",
            ArtifactKind::AgentCard => "agents",
        }
    }
}

/// What version of a repository a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Requirement(VersionReq),
    /// `v1`, `v1.2`, `v1.2.3`: the original project's tag of that name when
    /// the repository has it (it may move), else `requirement` (`^1`, `~1.2`,
    /// `=1.2.3`) over the tags.
    Alias {
        tag: String,
        requirement: VersionReq,
    },
    /// `sha256:<64 hex>`: exactly those bytes.
    Digest(String),
}

/// A parsed reference: repository `<namespace>/<name>` plus a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub kind: ArtifactKind,
    /// Repository name without namespace, e.g. `code-generation`.
    pub name: String,
    pub selector: Selector,
}

impl Reference {
    pub fn parse(kind: ArtifactKind, text: &str) -> Result<Self, RegistryError> {
        let invalid = |problem: String| RegistryError::InvalidReference {
            reference: text.to_string(),
            problem,
        };
        let (id, selector_text) = match text.split_once('@') {
            Some((id, rest)) => (id, Some(rest)),
            None => (text, None),
        };
        let id = id
            .strip_prefix(&format!("{}/", kind.namespace()))
            .unwrap_or(id);
        if !is_repository_component(id) {
            return Err(invalid(format!(
                "`{id}` is not a valid id (lowercase letters, digits, and single `-`, `_` or `.` between them)"
            )));
        }
        let (name, major) = split_major_suffix(id);
        let selector = match selector_text {
            None => Selector::Requirement(match major {
                Some(major) => VersionReq::parse(&format!("^{major}"))
                    .map_err(|error| invalid(error.to_string()))?,
                None => VersionReq::STAR,
            }),
            Some(digest) if digest.starts_with("sha256:") => {
                if !super::artifact::is_sha256_digest(digest) {
                    return Err(invalid(
                        "a sha256 digest needs exactly 64 lowercase hex digits".into(),
                    ));
                }
                Selector::Digest(digest.to_string())
            }
            Some("") => return Err(invalid("nothing after `@`".into())),
            Some(text) => match alias_requirement(text) {
                Some(requirement) => Selector::Alias {
                    tag: text.to_string(),
                    requirement,
                },
                None => Selector::Requirement(VersionReq::parse(text).map_err(|error| {
                    invalid(format!("`{text}` is not a semver requirement ({error})"))
                })?),
            },
        };
        Ok(Reference {
            kind,
            name: name.to_string(),
            selector,
        })
    }

    /// `workflows/<name>` or `agents/<name>`.
    pub fn repository(&self) -> String {
        repository(self.kind, &self.name)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Requirement(requirement) => {
                write!(formatter, "{}@{requirement}", self.repository())
            }
            Selector::Alias { tag, .. } => write!(formatter, "{}@{tag}", self.repository()),
            Selector::Digest(digest) => write!(formatter, "{}@{digest}", self.repository()),
        }
    }
}

pub fn repository(kind: ArtifactKind, name: &str) -> String {
    format!("{}/{name}", kind.namespace())
}

/// Repository name for a workflow id: the id without a trailing `-v<major>`.
pub fn name_for_id(id: &str) -> &str {
    split_major_suffix(id).0
}

/// `code-generation-v1` -> (`code-generation`, Some(1)).
fn split_major_suffix(id: &str) -> (&str, Option<u64>) {
    if let Some((name, major)) = id.rsplit_once("-v")
        && !name.is_empty()
        && !major.is_empty()
        && major.chars().all(|c| c.is_ascii_digit())
        && let Ok(major) = major.parse()
    {
        return (name, Some(major));
    }
    (id, None)
}

/// One path component of a distribution repository name.
fn is_repository_component(text: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let separator = |c: char| matches!(c, '-' | '_' | '.');
    let Some(first) = text.chars().next() else {
        return false;
    };
    let last = text.chars().last().unwrap_or(first);
    alphanumeric(first)
        && alphanumeric(last)
        && text.chars().all(|c| alphanumeric(c) || separator(c))
}

/// Tags may not hold `+`, so build metadata is written with `_` (as Helm does).
pub fn version_to_tag(version: &Version) -> String {
    version.to_string().replace('+', "_")
}

/// The version a bare-semver tag stands for (`_` read back as `+`).
pub fn tag_to_version(tag: &str) -> Option<Version> {
    Version::parse(&tag.replace('_', "+")).ok()
}

/// What an alias tag stands for when the repository lacks it: `v1` -> `^1`,
/// `v1.2` -> `~1.2` (its patches, as a docker `1.2` tag), `v1.2.3` -> `=1.2.3`.
fn alias_requirement(tag: &str) -> Option<VersionReq> {
    let version = legacy_tag_to_version(tag)?;
    let requirement = match tag.matches('.').count() {
        0 => format!("^{}", version.major),
        1 => format!("~{}.{}", version.major, version.minor),
        _ => format!("={version}"),
    };
    VersionReq::parse(&requirement).ok()
}

/// The tag pallet moves to the highest release of a major: `1.4.2` -> `v1`.
pub fn major_alias(version: &Version) -> String {
    format!("v{}", version.major)
}

/// The original project's tags (`v1`, `v1.2`, `v1.2.3`) as versions; only used
/// when no semver tag matches, so a pallet-pushed version always wins.
pub fn legacy_tag_to_version(tag: &str) -> Option<Version> {
    let numbers: Vec<u64> = tag
        .strip_prefix('v')?
        .split('.')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    match numbers.as_slice() {
        [major] => Some(Version::new(*major, 0, 0)),
        [major, minor] => Some(Version::new(*major, *minor, 0)),
        [major, minor, patch] => Some(Version::new(*major, *minor, *patch)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_accepted_forms() {
        let requirement = |text: &str| Selector::Requirement(VersionReq::parse(text).unwrap());
        let alias = |tag: &str, text: &str| Selector::Alias {
            tag: tag.into(),
            requirement: VersionReq::parse(text).unwrap(),
        };
        let cases = [
            ("code-generation-v1", "code-generation", requirement("^1")),
            (
                "code-generation",
                "code-generation",
                Selector::Requirement(VersionReq::STAR),
            ),
            (
                "code-generation@1.2",
                "code-generation",
                requirement("^1.2"),
            ),
            (
                "code-generation@=1.2.3",
                "code-generation",
                requirement("=1.2.3"),
            ),
            (
                "code-generation-v1@>=1.1, <1.5",
                "code-generation",
                requirement(">=1.1, <1.5"),
            ),
            (
                "workflows/smart-router@2",
                "smart-router",
                requirement("^2"),
            ),
            (
                "tool-v2x",
                "tool-v2x",
                Selector::Requirement(VersionReq::STAR),
            ),
            ("code-generation@v1", "code-generation", alias("v1", "^1")),
            (
                "code-generation-v1@v1.2",
                "code-generation",
                alias("v1.2", "~1.2"),
            ),
            (
                "code-generation@v1.2.3",
                "code-generation",
                alias("v1.2.3", "=1.2.3"),
            ),
            (
                &format!("code-generation@{DIGEST}"),
                "code-generation",
                Selector::Digest(DIGEST.into()),
            ),
        ];
        for (text, name, selector) in cases {
            let reference = Reference::parse(ArtifactKind::Workflow, text).unwrap();
            assert_eq!(
                (reference.name.as_str(), &reference.selector),
                (name, &selector),
                "{text}"
            );
        }
    }

    #[test]
    fn repository_drops_major_suffix() {
        let reference = Reference::parse(ArtifactKind::Workflow, "code-generation-v1").unwrap();
        assert_eq!(reference.repository(), "workflows/code-generation");
        let card = Reference::parse(ArtifactKind::AgentCard, "planner").unwrap();
        assert_eq!(card.repository(), "agents/planner");
    }

    #[test]
    fn rejects_bad_references_naming_the_problem() {
        let cases = [
            ("", "not a valid id"),
            ("Code-Generation", "not a valid id"),
            ("code generation", "not a valid id"),
            ("code-generation@", "nothing after `@`"),
            (
                "code-generation@banana",
                "`banana` is not a semver requirement",
            ),
            ("code-generation@sha256:abc", "64 lowercase hex digits"),
            ("code-generation@v1.x", "`v1.x` is not a semver requirement"),
            ("code-generation@v1.2.3.4", "not a semver requirement"),
            ("-code", "not a valid id"),
        ];
        for (text, expected) in cases {
            let error = Reference::parse(ArtifactKind::Workflow, text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains(ACCEPTED_FORMS), "{text}: {error}");
        }
    }

    #[test]
    fn tags_round_trip_build_metadata() {
        let cases = [
            ("1.0.0", "1.0.0"),
            ("2.0.0-rc.1", "2.0.0-rc.1"),
            ("1.2.3+build.5", "1.2.3_build.5"),
        ];
        for (version, tag) in cases {
            let version = Version::parse(version).unwrap();
            assert_eq!(version_to_tag(&version), tag);
            assert_eq!(tag_to_version(tag), Some(version));
        }
        assert_eq!(tag_to_version("v1"), None);
        assert_eq!(tag_to_version("latest"), None);
    }

    #[test]
    fn legacy_tags_read_as_versions() {
        let cases = [
            ("v1", Some(Version::new(1, 0, 0))),
            ("v2.3", Some(Version::new(2, 3, 0))),
            ("v1.2.3", Some(Version::new(1, 2, 3))),
            ("1.0.0", None),
            ("vx", None),
            ("latest", None),
        ];
        for (tag, expected) in cases {
            assert_eq!(legacy_tag_to_version(tag), expected, "{tag}");
        }
    }
}
