//! Picking a version from a repository's tags, as Helm and Flux do: keep the
//! tags that parse as semver, take the highest match. Pure: no IO.

use semver::{Version, VersionReq};

use super::reference::{legacy_tag_to_version, tag_to_version};

/// The tag chosen for a requirement and the version it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub tag: String,
    pub version: Version,
}

/// The highest tag matching `requirement`. Pre-releases match only when the
/// requirement names one (semver crate rules, as cargo). Tags of the original
/// project (`v1`) count only when no semver tag matches, so a pallet-pushed
/// version always wins over them.
pub fn select(tags: &[String], requirement: &VersionReq) -> Option<Selected> {
    highest(tags, requirement, tag_to_version)
        .or_else(|| highest(tags, requirement, legacy_tag_to_version))
}

fn highest(
    tags: &[String],
    requirement: &VersionReq,
    parse: fn(&str) -> Option<Version>,
) -> Option<Selected> {
    tags.iter()
        .filter_map(|tag| {
            parse(tag).map(|version| Selected {
                tag: tag.clone(),
                version,
            })
        })
        .filter(|selected| requirement.matches(&selected.version))
        .max_by(|left, right| left.version.cmp(&right.version))
}

/// Semver tags in ascending version order (registries list tags unsorted).
pub fn sorted_versions(tags: &[String]) -> Vec<Selected> {
    let mut versions: Vec<Selected> = tags
        .iter()
        .filter_map(|tag| {
            tag_to_version(tag).map(|version| Selected {
                tag: tag.clone(),
                version,
            })
        })
        .collect();
    versions.sort_by(|left, right| left.version.cmp(&right.version));
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|tag| tag.to_string()).collect()
    }

    #[test]
    fn takes_highest_match() {
        let available = tags(&[
            "1.10.0",
            "2.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "1.2.0",
            "latest",
            "v1",
        ]);
        let cases = [
            ("^1", Some("1.10.0")),
            ("1.2", Some("1.10.0")),
            ("~1.2", Some("1.2.0")),
            ("=1.0.0", Some("1.0.0")),
            ("*", Some("2.0.0")),
            ("^2", Some("2.0.0")),
            (">=2.0.0-rc.1, <2.0.0", Some("2.0.0-rc.1")),
            ("^3", None),
        ];
        for (requirement, expected) in cases {
            let selected = select(&available, &VersionReq::parse(requirement).unwrap());
            assert_eq!(
                selected.map(|selected| selected.tag),
                expected.map(String::from),
                "{requirement}"
            );
        }
    }

    #[test]
    fn pre_releases_only_when_named() {
        let available = tags(&["2.0.0-rc.1", "1.0.0"]);
        let cases = [
            ("^2", None),
            ("*", Some("1.0.0")),
            ("^2.0.0-rc.1", Some("2.0.0-rc.1")),
        ];
        for (requirement, expected) in cases {
            let selected = select(&available, &VersionReq::parse(requirement).unwrap());
            assert_eq!(
                selected.map(|selected| selected.tag),
                expected.map(String::from),
                "{requirement}"
            );
        }
    }

    #[test]
    fn legacy_tags_only_when_no_semver_tag_matches() {
        let cases = [
            (vec!["v1"], "^1", Some("v1")),
            (vec!["v1", "v2"], "*", Some("v2")),
            (vec!["v1", "1.0.1"], "^1", Some("1.0.1")),
            (vec!["v1", "2.0.0"], "^1", Some("v1")),
            (vec!["v1"], "^2", None),
        ];
        for (available, requirement, expected) in cases {
            let selected = select(&tags(&available), &VersionReq::parse(requirement).unwrap());
            assert_eq!(
                selected.map(|selected| selected.tag),
                expected.map(String::from),
                "{available:?} {requirement}"
            );
        }
    }

    #[test]
    fn sorts_semver_tags_ignoring_others() {
        let sorted = sorted_versions(&tags(&["1.10.0", "latest", "1.2.0", "1.0.0_build.1", "v1"]));
        let sorted: Vec<&str> = sorted
            .iter()
            .map(|selected| selected.tag.as_str())
            .collect();
        assert_eq!(sorted, ["1.0.0_build.1", "1.2.0", "1.10.0"]);
    }
}
