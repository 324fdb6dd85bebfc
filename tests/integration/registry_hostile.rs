//! Registries that misbehave: one that stops sending mid-blob fails the read
//! within its read timeout (it used to hang `pallet run` forever), and one
//! that sends more than a descriptor's `size` (or a huge manifest) is cut off
//! as soon as the bound is passed.

use std::time::{Duration, Instant};

use pallet::registry::{
    ArtifactKind, Reference, Registry, RegistryError, RegistryOptions, Timeouts,
};

use crate::support::TestContext;
use crate::support::hostile_registry::{Blob, HostileRegistry};
use crate::support::process::output_within;

#[tokio::test]
async fn a_registry_that_hangs_mid_blob_fails_pallet_run_after_the_read_timeout() {
    let registry = HostileRegistry::start(Blob::HangsMidway).await;
    let home = TestContext::new();
    let mut command = home.pallet();
    command
        .args([
            "run",
            "--workflow",
            "hostile-v1",
            "--registry",
            &registry.address,
        ])
        .args(["--agent", "http://127.0.0.1:9", "--out", "out"])
        .env("PALLET_REGISTRY_READ_TIMEOUT", "1s");
    let started = Instant::now();
    let output =
        tokio::task::spawn_blocking(move || output_within(command, Duration::from_secs(20)))
            .await
            .unwrap()
            .expect("pallet run still hangs after 20 s on the stalled registry");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some_and(|code| code != 0),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!(
            "registry {} stalled sending /v2/workflows/hostile/blobs/",
            registry.address
        )),
        "{stderr}"
    );
    assert!(stderr.contains("read timeout 1s"), "{stderr}");
}

fn client(address: &str, cache: &std::path::Path) -> Registry {
    Registry::new(RegistryOptions {
        timeouts: Timeouts {
            read: Duration::from_secs(5),
            total: Duration::from_secs(10),
        },
        ..RegistryOptions::new(address, cache)
    })
    .unwrap()
}

#[tokio::test]
async fn more_bytes_than_the_descriptor_size_are_refused_as_they_arrive() {
    let cases = [
        (Blob::Oversized, "/v2/workflows/hostile/blobs/sha256:", 0),
        (
            Blob::OversizedManifest,
            "/v2/workflows/hostile/manifests/",
            4 * 1024 * 1024,
        ),
    ];
    for (behaviour, path, limit) in cases {
        let registry = HostileRegistry::start(behaviour).await;
        let cache = tempfile::tempdir().unwrap();
        let reference = Reference::parse(ArtifactKind::Workflow, "hostile-v1").unwrap();
        let error = client(&registry.address, cache.path())
            .pull(&reference)
            .await
            .unwrap_err();
        let RegistryError::TooLarge {
            path: found,
            limit: found_limit,
            ..
        } = &error
        else {
            panic!("{behaviour:?}: {error:?}");
        };
        assert!(found.starts_with(path), "{behaviour:?}: {found}");
        if limit > 0 {
            assert_eq!(*found_limit, limit, "{behaviour:?}");
        } else {
            assert_eq!(
                *found_limit,
                crate::support::hostile_registry::WORKFLOW.len() as u64
            );
        }
    }
}

/// A registry that refuses an upload says why in a distribution error
/// document; pallet shows those words (a 403 may be a permission, not a
/// password), bounded to one line.
#[tokio::test]
async fn a_refused_push_shows_the_registry_s_own_reason() {
    use axum::http::StatusCode;
    use axum::routing::{any, get};
    let denied = || async {
        (
            StatusCode::FORBIDDEN,
            r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied\n(forged line)"}]}"#,
        )
    };
    let invalid = || async {
        (
            StatusCode::BAD_REQUEST,
            r#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}"#,
        )
    };
    for (uploads, expected) in [
        (
            any(denied),
            "refused access to /v2/workflows/code-generation/blobs/uploads/ (DENIED: requested access to the resource is denied(forged line))",
        ),
        (
            any(invalid),
            "with http status 400 (MANIFEST_INVALID: manifest invalid)",
        ),
    ] {
        let router = axum::Router::new()
            .route("/v2/", get(|| async { "{}" }))
            .route("/v2/{*rest}", any(|| async { StatusCode::NOT_FOUND }))
            .route("/v2/workflows/code-generation/blobs/uploads/", uploads);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let served = tokio::spawn(async move { axum::serve(listener, router).await });
        let cache = TestContext::new();
        let error = client(&address, &cache.join("cache"))
            .push_workflow_file(
                std::path::Path::new("workflows/code-generation.yaml"),
                pallet::registry::Provenance::default(),
                pallet::registry::PushOptions::default(),
            )
            .await
            .unwrap_err();
        served.abort();
        let chain = pallet::error::chain_of(&error);
        assert!(chain.contains(expected), "{chain}");
    }
}
