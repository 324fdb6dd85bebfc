//! Interop with third-party clients: oras-py (`pip install oras`), the client
//! the original project pushed with, both ways; and skopeo (Debian `skopeo`),
//! which inspects a pallet artifact byte for byte and copies it to a
//! repository pallet then pulls from.

use std::path::Path;

use pallet::registry::{
    ArtifactKind, Provenance, PushOptions, Reference, Registry, RegistryOptions,
};

use crate::support::TestContext;
use crate::support::registry::TestRegistry;

fn client(address: &str, cache: &Path) -> Registry {
    Registry::new(RegistryOptions::new(address, cache)).expect("registry client")
}

/// Runs a Python snippet using oras-py in `directory` (its home too);
/// `argv[1..]` are `arguments`.
fn oras(script: &str, arguments: &[&str], directory: &TestContext) {
    let output = directory
        .command(crate::support::a2a_peer::python())
        .arg("-c")
        .arg(format!(
            "import sys\nfrom oras.client import OrasClient\n{script}"
        ))
        .args(arguments)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "oras-py failed (is it installed? pip install oras): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn oras_pulls_a_pallet_artifact_by_its_title() {
    let server = TestRegistry::start();
    let files = TestContext::new();
    let text = "# comment kept\nmetadata:\n  id: demo-v1\n  name: Demo\n  version: \"1.0.0\"\nsteps:\n  - id: only\n    skill: echo\n";
    let path = files.path().join("demo.yaml");
    std::fs::write(&path, text).unwrap();
    let cache = tempfile::tempdir().unwrap();
    client(&server.address, cache.path())
        .push_workflow_file(&path, Provenance::default(), PushOptions::default())
        .await
        .unwrap();

    let out = TestContext::new();
    let target = format!("{}/workflows/demo:1.0.0", server.address);
    oras(
        "OrasClient(insecure=True).pull(target=sys.argv[1], outdir=sys.argv[2])",
        &[&target, &out.path().display().to_string()],
        &out,
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("demo.yaml")).unwrap(),
        text
    );
}

#[tokio::test]
async fn pallet_pulls_what_oras_pushed() {
    let server = TestRegistry::start();
    let files = TestContext::new();
    let yaml = "metadata:\n  id: from-oras\n  name: From oras\n  version: \"1.0.0\"\nsteps:\n  - id: only\n    skill: echo\n";
    std::fs::write(files.path().join("from-oras.yaml"), yaml).unwrap();
    let card = r#"{"name": "planner", "url": "http://127.0.0.1:1", "skills": []}"#;
    std::fs::write(files.path().join("planner_agent_card.json"), card).unwrap();
    let push = "OrasClient(insecure=True).push(target=sys.argv[1], files=[sys.argv[2]])";
    let cases = [
        ("workflows/from-oras:v1", "from-oras.yaml:application/yaml"),
        ("workflows/plain-oras:v1", "from-oras.yaml"),
        (
            "agents/planner:v1",
            "planner_agent_card.json:application/json",
        ),
    ];
    for (target, file) in cases {
        oras(
            push,
            &[&format!("{}/{target}", server.address), file],
            &files,
        );
    }

    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path());
    for (reference, name) in [
        ("from-oras-v1", "from-oras.yaml"),
        ("plain-oras-v1", "from-oras.yaml"),
    ] {
        let pulled = registry
            .pull(&Reference::parse(ArtifactKind::Workflow, reference).unwrap())
            .await
            .unwrap();
        assert_eq!(
            (pulled.content.as_slice(), pulled.file_name.as_str()),
            (yaml.as_bytes(), name),
            "{reference}"
        );
    }
    let pulled = registry
        .pull(&Reference::parse(ArtifactKind::AgentCard, "planner").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (pulled.content.as_slice(), pulled.file_name.as_str()),
        (card.as_bytes(), "planner_agent_card.json")
    );
}

/// Runs skopeo (Debian package `skopeo`) with its home in `home`; returns its stdout.
fn skopeo(home: &TestContext, arguments: &[&str]) -> Vec<u8> {
    let output = home
        .command("skopeo")
        .arg("--insecure-policy")
        .args(arguments)
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        output.status.success(),
        "skopeo {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn skopeo_inspects_and_copies_a_pallet_artifact() {
    let server = TestRegistry::start();
    let files = TestContext::new();
    let text = "metadata:\n  id: demo-v1\n  name: Demo\n  version: \"1.0.0\"\nsteps:\n  - id: only\n    skill: echo\n";
    let path = files.path().join("demo.yaml");
    std::fs::write(&path, text).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&server.address, cache.path());
    let pushed = registry
        .push_workflow_file(&path, Provenance::default(), PushOptions::default())
        .await
        .unwrap();

    let source = format!("docker://{}/workflows/demo:1.0.0", server.address);
    let raw = skopeo(&files, &["inspect", "--raw", "--tls-verify=false", &source]);
    assert_eq!(
        pallet::registry::artifact::sha256_digest(&raw),
        pushed.digest
    );

    let copy = format!("docker://{}/workflows/copied:1.0.0", server.address);
    skopeo(
        &files,
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &source,
            &copy,
        ],
    );
    let pulled = registry
        .pull(&Reference::parse(ArtifactKind::Workflow, "copied-v1").unwrap())
        .await
        .unwrap();
    assert_eq!(pulled.content, text.as_bytes());
    assert_eq!(pulled.file_name, "demo.yaml");
}
