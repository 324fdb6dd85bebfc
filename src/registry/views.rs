//! The JSON views of registry listings and of one pulled artifact, shared by
//! the CLI's `--json` output and the service's registry routes.

use serde_json::{Value, json};

use super::{Listed, Pulled};

/// One repository with its versions (`pallet list --json`, `GET /registry/workflows`).
pub fn listed_json(listed: &Listed) -> Value {
    json!({
        "repository": listed.repository,
        "versions": listed.versions.iter().map(|version| json!({
            "version": version.version.to_string(),
            "tag": version.tag,
            "digest": version.digest,
        })).collect::<Vec<_>>(),
        "other_tags": listed.other_tags,
        "unreadable": listed.unreadable.iter().map(|broken| json!({
            "tag": broken.tag,
            "error": broken.problem,
        })).collect::<Vec<_>>(),
    })
}

/// One pulled version: reference, digest, config, annotations (`pallet show --json`).
pub fn shown_json(registry: &str, pulled: &Pulled) -> Value {
    let resolved = &pulled.resolved;
    json!({
        "reference": format!("{}/{}@{}", registry, resolved.repository, resolved.digest),
        "repository": resolved.repository,
        "tag": resolved.tag,
        "version": resolved.version.as_ref().map(ToString::to_string),
        "digest": resolved.digest,
        "artifact_type": pulled.manifest.artifact_type,
        "media_type": pulled.media_type,
        "file_name": pulled.file_name,
        "size": pulled.content.len(),
        "config": pulled.config.as_ref().map(|config| json!({
            "id": config.id,
            "name": config.name,
            "version": config.version,
            "schema_version": config.schema_version,
        })),
        "annotations": pulled.manifest.annotations,
    })
}
