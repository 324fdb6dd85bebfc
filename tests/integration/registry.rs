//! The registry library against a real `docker-registry`: push, immutability,
//! semver resolution, digest pinning, the cache (warm and offline), the
//! original project's layout, basic auth, and a registry that is down.

use std::path::Path;

use pallet::registry::{
    ArtifactKind, Credentials, Provenance, PushOptions, Pushed, Reference, Registry, RegistryError,
    RegistryOptions,
};

use crate::support::registry::{TestRegistry, push_like_original};

fn client(address: &str, cache: &Path, offline: bool) -> Registry {
    Registry::new(RegistryOptions {
        offline,
        ..RegistryOptions::new(address, cache)
    })
    .expect("registry client")
}

fn workflow(id: &str, version: &str, note: &str) -> String {
    format!(
        "# {note}\nmetadata:\n  id: {id}\n  name: Demo   # kept byte for byte\n  version: \"{version}\"\n  \
         description: a demo\nsteps:\n  - id: only\n    skill: echo\n"
    )
}

/// Writes a workflow file and pushes it (validated) through `registry`.
async fn push(
    registry: &Registry,
    directory: &Path,
    text: &str,
    force: bool,
) -> Result<pallet::registry::Pushed, RegistryError> {
    let path = directory.join("demo.yaml");
    std::fs::write(&path, text).unwrap();
    registry
        .push_workflow_file(
            &path,
            Provenance::default(),
            PushOptions {
                force,
                ..PushOptions::default()
            },
        )
        .await
}

fn workflow_reference(text: &str) -> Reference {
    Reference::parse(ArtifactKind::Workflow, text).unwrap()
}

#[tokio::test]
async fn push_then_pull_is_byte_for_byte() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let text = workflow("demo-v1", "1.0.0", "first");
    let pushed = push(&registry, files.path(), &text, false).await.unwrap();
    assert_eq!(
        (
            pushed.repository.as_str(),
            pushed.tag.as_str(),
            pushed.uploaded
        ),
        ("workflows/demo", "1.0.0", true)
    );

    let other_cache = tempfile::tempdir().unwrap();
    let pulled = client(&server.address, other_cache.path(), false)
        .pull(&workflow_reference("demo-v1"))
        .await
        .unwrap();
    assert_eq!(pulled.content, text.as_bytes());
    assert_eq!(pulled.file_name, "demo.yaml");
    assert_eq!(pulled.media_type, "application/vnd.pallet.workflow.v1+yaml");
    assert_eq!(pulled.resolved.digest, pushed.digest);
    assert_eq!(pulled.resolved.version, Some(semver::Version::new(1, 0, 0)));
    assert_eq!(
        pulled.manifest.artifact_type.as_deref(),
        Some("application/vnd.pallet.workflow.v1")
    );
    assert_eq!(
        pulled.manifest.config.media_type,
        "application/vnd.pallet.workflow.config.v1+json"
    );
    let annotations = pulled.manifest.annotations.unwrap();
    assert_eq!(annotations["org.opencontainers.image.title"], "demo.yaml");
    assert_eq!(annotations["org.opencontainers.image.version"], "1.0.0");
    assert_eq!(
        annotations["org.opencontainers.image.description"],
        "a demo"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(&annotations["org.opencontainers.image.created"])
            .is_ok()
    );
    let config = pulled.config.expect("pallet config");
    assert_eq!(
        (
            config.id.as_str(),
            config.version.as_str(),
            config.schema_version
        ),
        ("demo-v1", "1.0.0", 1)
    );
    assert!(other_cache.path().join("oci-layout").exists());
    assert!(other_cache.path().join("index.json").exists());
}

#[tokio::test]
async fn versions_are_immutable_unless_forced() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let first = push(
        &registry,
        files.path(),
        &workflow("demo", "1.0.0", "first"),
        false,
    )
    .await
    .unwrap();

    let again = push(
        &registry,
        files.path(),
        &workflow("demo", "1.0.0", "first"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        (again.digest.as_str(), again.uploaded),
        (first.digest.as_str(), false)
    );

    let changed = workflow("demo", "1.0.0", "changed");
    let error = push(&registry, files.path(), &changed, false)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, RegistryError::TagExists { .. }),
        "{message}"
    );
    assert!(
        message.contains("workflows/demo:1.0.0")
            && message.contains(&server.address)
            && message.contains("force"),
        "{message}"
    );
    let pulled = registry
        .pull(&workflow_reference("demo@=1.0.0"))
        .await
        .unwrap();
    assert_eq!(
        pulled.content,
        workflow("demo", "1.0.0", "first").as_bytes()
    );

    let elsewhere_cache = tempfile::tempdir().unwrap();
    let elsewhere = client(&server.address, elsewhere_cache.path(), false);
    let before = elsewhere
        .pull(&workflow_reference("demo@^1"))
        .await
        .unwrap();
    assert_eq!(before.resolved.digest, first.digest);

    let forced = push(&registry, files.path(), &changed, true).await.unwrap();
    assert_ne!(forced.digest, first.digest);
    // The machine that forced sees the new content through ranges too.
    let range = registry.pull(&workflow_reference("demo@^1")).await.unwrap();
    assert_eq!(range.content, changed.as_bytes());
    // Elsewhere a range trusts the cached tag (one round-trip); an exact
    // reference asks the registry, and the cache then follows it.
    let cached = elsewhere.pull(&workflow_reference("demo")).await.unwrap();
    assert_eq!(cached.resolved.digest, first.digest);
    let exact = elsewhere
        .pull(&workflow_reference("demo@=1.0.0"))
        .await
        .unwrap();
    assert_eq!(exact.resolved.digest, forced.digest);
    let range = elsewhere
        .pull(&workflow_reference("demo@^1"))
        .await
        .unwrap();
    assert_eq!(range.resolved.digest, forced.digest);
    let fresh_cache = tempfile::tempdir().unwrap();
    let pulled = client(&server.address, fresh_cache.path(), false)
        .pull(&workflow_reference("demo@=1.0.0"))
        .await
        .unwrap();
    assert_eq!(pulled.content, changed.as_bytes());
}

#[tokio::test]
async fn blobs_the_registry_has_are_not_uploaded_again() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let first = workflow("demo", "1.0.0", "first");
    push(&registry, files.path(), &first, false).await.unwrap();
    assert_eq!(server.logged_blob_uploads(), 2, "config and layer uploaded");
    push(
        &registry,
        files.path(),
        &workflow("demo", "1.0.0", "second"),
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        server.logged_blob_uploads(),
        3,
        "only the new layer (the config is the same)"
    );

    let reverted = push(&registry, files.path(), &first, true).await.unwrap();
    assert!(reverted.uploaded);
    assert_eq!(
        server.logged_blob_uploads(),
        3,
        "both blobs were already there"
    );
    let fresh_cache = tempfile::tempdir().unwrap();
    let pulled = client(&server.address, fresh_cache.path(), false)
        .pull(&workflow_reference("demo"))
        .await
        .unwrap();
    assert_eq!(pulled.content, first.as_bytes());
}

#[tokio::test]
async fn invalid_workflow_is_never_pushed() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let error = push(
        &registry,
        files.path(),
        "metadata:\n  id: demo\nsteps: []\n",
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, RegistryError::InvalidWorkflow { .. }),
        "{error}"
    );
    assert!(registry.list_workflows().await.unwrap().is_empty());
}

#[tokio::test]
async fn resolves_highest_matching_semver_and_lists_sorted() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let mut digests = std::collections::HashMap::new();
    for version in ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0"] {
        let pushed = push(
            &registry,
            files.path(),
            &workflow("demo", version, version),
            false,
        )
        .await
        .unwrap();
        digests.insert(version, pushed.digest);
    }
    let cases = [
        ("demo-v1", "1.10.0"),
        ("demo@^1", "1.10.0"),
        ("demo@1.2", "1.10.0"),
        ("demo@~1.2", "1.2.0"),
        ("demo@=1.0.0", "1.0.0"),
        ("demo", "2.0.0"),
        ("demo-v2", "2.0.0"),
        ("demo@=2.0.0-rc.1", "2.0.0-rc.1"),
        ("demo@>=2.0.0-rc.1, <2.0.0", "2.0.0-rc.1"),
    ];
    for (text, version) in cases {
        let resolved = registry.resolve(&workflow_reference(text)).await.unwrap();
        assert_eq!(resolved.tag.as_deref(), Some(version), "{text}");
        assert_eq!(resolved.digest, digests[version], "{text}");
    }
    let error = registry
        .resolve(&workflow_reference("demo@^3"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::NoMatchingVersion { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("workflows/demo") && error.to_string().contains("^3"),
        "{error}"
    );
    let error = registry
        .resolve(&workflow_reference("absent"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::RepositoryNotFound { .. }),
        "{error}"
    );

    let listed = registry.list_workflows().await.unwrap();
    assert_eq!(listed.len(), 1);
    let versions: Vec<String> = listed[0]
        .versions
        .iter()
        .map(|listed| listed.tag.clone())
        .collect();
    assert_eq!(
        versions,
        ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0"]
    );
    for listed in &listed[0].versions {
        assert_eq!(listed.digest, digests[listed.tag.as_str()]);
    }
}

#[tokio::test]
async fn digest_reference_runs_exactly_those_bytes() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let original = workflow("demo", "1.0.0", "original");
    let first = push(&registry, files.path(), &original, false)
        .await
        .unwrap();
    push(
        &registry,
        files.path(),
        &workflow("demo", "1.0.0", "replaced"),
        true,
    )
    .await
    .unwrap();

    let fresh_cache = tempfile::tempdir().unwrap();
    let fresh = client(&server.address, fresh_cache.path(), false);
    let pulled = fresh
        .pull(&workflow_reference(&format!("demo@{}", first.digest)))
        .await
        .unwrap();
    assert_eq!(pulled.content, original.as_bytes());
    assert_eq!(pulled.resolved.digest, first.digest);
    assert_eq!(pulled.resolved.version, Some(semver::Version::new(1, 0, 0)));

    let before = fresh.read_requests();
    fresh
        .pull(&workflow_reference(&format!("demo@{}", first.digest)))
        .await
        .unwrap();
    assert_eq!(
        fresh.read_requests(),
        before,
        "a cached digest reference needs no request"
    );
}

#[tokio::test]
async fn warm_resolve_is_one_round_trip_and_offline_serves_the_cache() {
    let mut server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let text = workflow("demo-v1", "1.2.0", "cached");
    push(
        &client(&server.address, cache.path(), false),
        files.path(),
        &text,
        false,
    )
    .await
    .unwrap();

    let run_cache = tempfile::tempdir().unwrap();
    client(&server.address, run_cache.path(), false)
        .pull(&workflow_reference("demo-v1"))
        .await
        .unwrap();
    for reference in ["demo-v1", "demo@=1.2.0"] {
        let warm = client(&server.address, run_cache.path(), false);
        let logged_before = server.logged_requests();
        let pulled = warm.pull(&workflow_reference(reference)).await.unwrap();
        assert_eq!(pulled.content, text.as_bytes());
        assert_eq!(
            warm.read_requests(),
            1,
            "{reference}: warm pull makes one request"
        );
        assert_eq!(
            server.logged_requests() - logged_before,
            1,
            "{reference}: registry saw one request"
        );
    }

    server.stop();
    let offline = client(&server.address, run_cache.path(), true);
    let pulled = offline.pull(&workflow_reference("demo-v1")).await.unwrap();
    assert_eq!(pulled.content, text.as_bytes());
    assert_eq!(pulled.resolved.tag.as_deref(), Some("1.2.0"));
    let missing = offline
        .pull(&workflow_reference("other-v1"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, RegistryError::NotCached { .. }),
        "{missing}"
    );
    assert!(
        missing.to_string().contains("workflows/other@^1")
            && missing.to_string().contains("offline"),
        "{missing}"
    );

    let down = client(&server.address, run_cache.path(), false)
        .pull(&workflow_reference("demo-v1"))
        .await
        .unwrap_err();
    assert!(matches!(down, RegistryError::NotAnswering { .. }), "{down}");
    assert_eq!(
        down.to_string(),
        format!("registry not answering at {}", server.address)
    );
}

#[tokio::test]
async fn corrupted_cache_blob_is_refetched_online_and_an_error_offline() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let text = workflow("demo", "1.0.0", "intact");
    push(
        &client(&server.address, cache.path(), false),
        files.path(),
        &text,
        false,
    )
    .await
    .unwrap();
    let layer = pallet::registry::artifact::sha256_digest(text.as_bytes());
    let blob_path = cache
        .path()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));

    std::fs::write(&blob_path, "tampered").unwrap();
    let offline = client(&server.address, cache.path(), true)
        .pull(&workflow_reference("demo"))
        .await
        .unwrap_err();
    assert!(
        matches!(offline, RegistryError::CorruptedOffline { .. }),
        "{offline}"
    );

    std::fs::write(&blob_path, "tampered").unwrap();
    let pulled = client(&server.address, cache.path(), false)
        .pull(&workflow_reference("demo"))
        .await
        .unwrap();
    assert_eq!(pulled.content, text.as_bytes());
    assert_eq!(std::fs::read(&blob_path).unwrap(), text.as_bytes());
}

#[tokio::test]
async fn reads_the_original_projects_layout() {
    let server = TestRegistry::start();
    let yaml = workflow("legacy-flow", "1.0.0", "pushed by the python original");
    push_like_original(
        &server.address,
        "workflows/legacy-flow",
        "v1",
        "legacy-flow.yaml",
        "application/yaml",
        yaml.as_bytes(),
    )
    .await;
    let card = br#"{"name": "planner", "url": "http://127.0.0.1:1", "skills": []}"#;
    push_like_original(
        &server.address,
        "agents/planner",
        "v1",
        "planner_agent_card.json",
        "application/json",
        card,
    )
    .await;

    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let pulled = registry
        .pull(&workflow_reference("legacy-flow-v1"))
        .await
        .unwrap();
    assert_eq!(pulled.content, yaml.as_bytes());
    assert_eq!(
        (pulled.file_name.as_str(), pulled.media_type.as_str()),
        ("legacy-flow.yaml", "application/yaml")
    );
    assert_eq!(pulled.resolved.tag.as_deref(), Some("v1"));

    let pulled = registry
        .pull(&Reference::parse(ArtifactKind::AgentCard, "planner").unwrap())
        .await
        .unwrap();
    assert_eq!(pulled.content, card);
    assert_eq!(pulled.file_name, "planner_agent_card.json");
    assert!(pulled.config.is_none(), "not a pallet config");

    let listed = registry.list_workflows().await.unwrap();
    assert_eq!(listed.len(), 1, "agents/ is not listed as a workflow");
    assert_eq!(listed[0].other_tags, ["v1"]);
}

#[tokio::test]
async fn an_unreadable_agent_repository_does_not_hide_the_others() {
    let server = TestRegistry::start();
    let card = br#"{"name": "planner", "url": "http://127.0.0.1:1", "skills": []}"#;
    push_like_original(
        &server.address,
        "agents/planner",
        "v1",
        "planner_agent_card.json",
        "application/json",
        card,
    )
    .await;
    push_like_original(
        &server.address,
        "agents/binary",
        "v1",
        "binary.bin",
        "application/octet-stream",
        b"not a card",
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let registry = std::sync::Arc::new(client(&server.address, cache.path(), false));
    let discovery = pallet::registry::RegistryDiscovery::load(registry)
        .await
        .expect("the unreadable repository is skipped");
    assert_eq!(discovery.card_count().await, 1);
}

#[tokio::test]
async fn a_workflow_under_another_id_is_refused() {
    use pallet::workflow::WorkflowSource;
    let server = TestRegistry::start();
    let yaml = workflow("impostor-v1", "1.0.0", "pushed under the wrong name");
    push_like_original(
        &server.address,
        "workflows/demo",
        "v1",
        "demo.yaml",
        "application/yaml",
        yaml.as_bytes(),
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let registry = std::sync::Arc::new(client(&server.address, cache.path(), false));
    let source = pallet::registry::RegistrySource::new(registry, false);
    let error = source.load("demo-v1").await.unwrap_err();
    let message = format!("{error:?}");
    assert!(
        message.contains("impostor-v1") && message.contains("demo-v1"),
        "{message}"
    );
}

#[tokio::test]
async fn list_asks_only_for_tags_not_in_the_cache() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let pusher = client(&server.address, cache.path(), false);
    let mut pushed = Vec::new();
    for version in ["1.0.0", "1.1.0", "2.0.0"] {
        let text = workflow("demo", version, version);
        pushed.push(
            push(&pusher, files.path(), &text, false)
                .await
                .unwrap()
                .digest,
        );
    }
    let warm = client(&server.address, cache.path(), false);
    let listed = warm.list_workflows().await.unwrap();
    let digests: Vec<&str> = listed[0]
        .versions
        .iter()
        .map(|v| v.digest.as_str())
        .collect();
    assert_eq!(digests, pushed);
    assert_eq!(warm.read_requests(), 2, "catalog and tag list, no HEAD");

    let fresh_cache = tempfile::tempdir().unwrap();
    let cold = client(&server.address, fresh_cache.path(), false);
    let listed = cold.list_workflows().await.unwrap();
    let digests: Vec<&str> = listed[0]
        .versions
        .iter()
        .map(|v| v.digest.as_str())
        .collect();
    assert_eq!(digests, pushed);
    assert_eq!(
        cold.read_requests(),
        5,
        "catalog, tag list, one HEAD per version"
    );
}

#[tokio::test]
async fn agent_cards_push_and_pull() {
    let server = TestRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let card = br#"{"name": "Code Writer", "version": "1.1.0", "description": "writes code", "skills": []}"#;
    let pushed = registry
        .push_agent_card(
            "code_writer_agent_card.json",
            card,
            Provenance::default(),
            PushOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (pushed.repository.as_str(), pushed.tag.as_str()),
        ("agents/code-writer", "1.1.0")
    );
    let pulled = registry
        .pull(&Reference::parse(ArtifactKind::AgentCard, "code-writer@1").unwrap())
        .await
        .unwrap();
    assert_eq!(pulled.content, card);
    assert_eq!(
        pulled.media_type,
        "application/vnd.pallet.agentcard.v1+json"
    );
    let listed = registry.list(ArtifactKind::AgentCard).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].repository, "agents/code-writer");
    assert_eq!(listed[0].versions[0].digest, pushed.digest);
    assert!(registry.list_workflows().await.unwrap().is_empty());
    let error = registry
        .push_agent_card(
            "bad.json",
            br#"{"name": "x", "version": "banana"}"#,
            Provenance::default(),
            PushOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("bad.json")
            && error
                .to_string()
                .contains("`version` \"banana\" is not a version")
            && error.to_string().contains("MAJOR.MINOR.PATCH"),
        "{error}"
    );
}

/// The original project's cards have no `version`: pushed as 1.0.0, with
/// `v1` pointing at it, where the original's tools look.
#[tokio::test]
async fn agent_cards_without_a_version_are_pushed_as_1_0_0() {
    let server = TestRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let card = br#"{"name": "planner", "url": "http://127.0.0.1:1", "skills": []}"#;
    let pushed = registry
        .push_agent_card(
            "planner_agent_card.json",
            card,
            Provenance::default(),
            PushOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (pushed.tag.as_str(), pushed.alias.as_deref()),
        ("1.0.0", Some("v1"))
    );
    let pulled = registry
        .pull(&Reference::parse(ArtifactKind::AgentCard, "planner@v1").unwrap())
        .await
        .unwrap();
    assert_eq!(pulled.content, card);
    assert_eq!(pulled.resolved.tag.as_deref(), Some("v1"));
    assert_eq!(pulled.resolved.version, Some(semver::Version::new(1, 0, 0)));
}

#[tokio::test]
async fn records_git_source_and_revision() {
    let server = TestRegistry::start();
    let checkout = tempfile::tempdir().unwrap();
    let git = |arguments: &[&str]| {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(checkout.path())
            .args(arguments)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {arguments:?}");
        String::from_utf8(status.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://example.invalid/flows.git",
    ]);
    std::fs::write(
        checkout.path().join("demo.yaml"),
        workflow("demo", "1.0.0", "tracked"),
    )
    .unwrap();
    git(&["add", "demo.yaml"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "commit",
        "-qm",
        "demo",
    ]);
    let head = git(&["rev-parse", "HEAD"]);

    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let given = Provenance {
        source: Some("https://example.invalid/given".into()),
        revision: None,
    };
    registry
        .push_workflow_file(
            &checkout.path().join("demo.yaml"),
            given,
            PushOptions::default(),
        )
        .await
        .unwrap();
    let pulled = registry.pull(&workflow_reference("demo")).await.unwrap();
    let annotations = pulled.manifest.annotations.unwrap();
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://example.invalid/given"
    );
    assert_eq!(annotations["org.opencontainers.image.revision"], head);
}

#[tokio::test]
async fn basic_auth_with_htpasswd() {
    let server = TestRegistry::start_with_user("alice", "s3cret");
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let anonymous = client(&server.address, cache.path(), false);
    let error = push(
        &anonymous,
        files.path(),
        &workflow("demo", "1.0.0", "auth"),
        false,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error}"
    );

    let authenticated = Registry::new(RegistryOptions {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }),
        ..RegistryOptions::new(&server.address, cache.path())
    })
    .unwrap();
    let text = workflow("demo", "1.0.0", "auth");
    push(&authenticated, files.path(), &text, false)
        .await
        .unwrap();
    let pulled = authenticated
        .pull(&workflow_reference("demo"))
        .await
        .unwrap();
    assert_eq!(pulled.content, text.as_bytes());
}

#[tokio::test]
async fn bearer_token_challenge() {
    let server = TestRegistry::start_with_token_auth("alice", "s3cret").await;
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let anonymous = client(&server.address, cache.path(), false);
    let error = anonymous
        .resolve(&workflow_reference("demo"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error}"
    );

    let authenticated = Registry::new(RegistryOptions {
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }),
        ..RegistryOptions::new(&server.address, cache.path())
    })
    .unwrap();
    let text = workflow("demo", "1.0.0", "bearer");
    push(&authenticated, files.path(), &text, false)
        .await
        .unwrap();
    let pulled = authenticated
        .pull(&workflow_reference("demo"))
        .await
        .unwrap();
    assert_eq!(pulled.content, text.as_bytes());
    assert_eq!(authenticated.list_workflows().await.unwrap().len(), 1);
}

/// Pushes `demo` at `version` with the alias on or off; returns what was pushed.
async fn push_demo(registry: &Registry, directory: &Path, version: &str, alias: bool) -> Pushed {
    let path = directory.join("demo.yaml");
    std::fs::write(&path, workflow("demo-v1", version, version)).unwrap();
    let options = PushOptions {
        alias,
        ..PushOptions::default()
    };
    registry
        .push_workflow_file(&path, Provenance::default(), options)
        .await
        .unwrap()
}

#[tokio::test]
async fn push_moves_the_major_alias_to_the_highest_release_only() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    let fresh = || {
        let cache = tempfile::tempdir().unwrap();
        (client(&server.address, cache.path(), false), cache)
    };
    let alias_digest = |tag: &'static str| async move {
        let (reader, _cache) = fresh();
        reader
            .resolve(&workflow_reference(&format!("demo@{tag}")))
            .await
            .map(|resolved| (resolved.tag, resolved.digest))
    };

    let first = push_demo(&registry, files.path(), "1.0.0", true).await;
    assert_eq!(first.alias.as_deref(), Some("v1"));
    let second = push_demo(&registry, files.path(), "1.2.0", true).await;
    assert_eq!(second.alias.as_deref(), Some("v1"));
    assert_eq!(
        alias_digest("v1").await.unwrap(),
        (Some("v1".into()), second.digest.clone())
    );

    // An older release, a pre-release and --no-alias leave the alias alone.
    let older = push_demo(&registry, files.path(), "1.1.0", true).await;
    assert_eq!(older.alias, None);
    let candidate = push_demo(&registry, files.path(), "1.3.0-rc.1", true).await;
    assert_eq!(candidate.alias, None);
    let quiet = push_demo(&registry, files.path(), "1.4.0", false).await;
    assert_eq!(quiet.alias, None);
    assert_eq!(alias_digest("v1").await.unwrap().1, second.digest);

    // The same content again confirms the alias; the semver tags stay as pushed.
    let again = push_demo(&registry, files.path(), "1.4.0", true).await;
    assert_eq!(
        (again.uploaded, again.alias.as_deref()),
        (false, Some("v1"))
    );
    assert_eq!(alias_digest("v1").await.unwrap().1, quiet.digest);
    let (reader, _cache) = fresh();
    let exact = reader
        .resolve(&workflow_reference("demo@=1.2.0"))
        .await
        .unwrap();
    assert_eq!(exact.digest, second.digest);

    // Another major gets its own alias; `@v2` without one falls back to ^2.
    let error = alias_digest("v2").await.unwrap_err().to_string();
    assert!(error.contains("v2 (no such tag) or ^2"), "{error}");
    let two = push_demo(&registry, files.path(), "2.0.0", false).await;
    assert_eq!(
        alias_digest("v2").await.unwrap(),
        (Some("2.0.0".into()), two.digest)
    );
    let listed = registry.list_workflows().await.unwrap();
    assert_eq!(listed[0].other_tags, ["v1"]);
}

#[tokio::test]
async fn alias_references_read_the_tag_first_online_and_offline() {
    let server = TestRegistry::start();
    let files = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path(), false);
    // The original's own `v1` next to a pallet release of major 1: `@v1`
    // reads the tag, a range reads the release.
    let yaml = workflow("demo-v1", "1.0.0", "pushed by the python original");
    push_like_original(
        &server.address,
        "workflows/demo",
        "v1",
        "demo.yaml",
        "application/yaml",
        yaml.as_bytes(),
    )
    .await;
    let release = push_demo(&registry, files.path(), "1.5.0", false).await;

    let run_cache = tempfile::tempdir().unwrap();
    let online = client(&server.address, run_cache.path(), false);
    let by_tag = online.pull(&workflow_reference("demo@v1")).await.unwrap();
    assert_eq!(by_tag.content, yaml.as_bytes());
    assert_eq!(by_tag.resolved.tag.as_deref(), Some("v1"));
    assert_eq!(by_tag.resolved.version, Some(semver::Version::new(1, 0, 0)));
    let by_range = online.pull(&workflow_reference("demo@1")).await.unwrap();
    assert_eq!(by_range.resolved.digest, release.digest);
    let by_minor = online.pull(&workflow_reference("demo@v1.5")).await.unwrap();
    assert_eq!(
        by_minor.resolved.digest, release.digest,
        "no tag v1.5: ~1.5"
    );

    let offline = client(&server.address, run_cache.path(), true);
    let cached = offline.pull(&workflow_reference("demo@v1")).await.unwrap();
    assert_eq!(cached.content, yaml.as_bytes());
}
