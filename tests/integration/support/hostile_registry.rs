//! A registry that misbehaves on purpose, over raw TCP so it can stop
//! mid-answer: it serves `/v2/`, an empty catalog, one workflow
//! (`workflows/hostile`, tag `1.0.0`) and its manifest honestly, then
//! answers the workflow's blob as [`Blob`] says.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const WORKFLOW: &str = "metadata: {id: hostile-v1, name: Hostile, version: 1.0.0}
steps:
  - {id: only, skill: echo, inputs: {text: hi}}
";

/// How the workflow blob is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    /// Headers and half the bytes, then silence (the connection stays open).
    HangsMidway,
    /// Far more bytes than the descriptor's `size`, without a Content-Length.
    Oversized,
    /// The manifest itself is 8 MiB (its descriptor is the tag's digest).
    OversizedManifest,
}

pub struct HostileRegistry {
    pub address: String,
    accepting: JoinHandle<()>,
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

struct Content {
    behaviour: Blob,
    manifest: Vec<u8>,
    manifest_digest: String,
    layer_digest: String,
    config: Vec<u8>,
    config_digest: String,
}

impl HostileRegistry {
    pub async fn start(behaviour: Blob) -> HostileRegistry {
        let config = b"{}".to_vec();
        let config_digest = digest(&config);
        let layer_digest = digest(WORKFLOW.as_bytes());
        let mut manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.pallet.workflow.v1",
            "config": {"mediaType": "application/vnd.pallet.workflow.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.pallet.workflow.v1+yaml", "digest": layer_digest, "size": WORKFLOW.len()}],
        }))
        .unwrap();
        if behaviour == Blob::OversizedManifest {
            // Valid JSON padded with whitespace, so only its size is wrong.
            manifest.extend(std::iter::repeat_n(b' ', 8 * 1024 * 1024));
        }
        let content = Arc::new(Content {
            behaviour,
            manifest_digest: digest(&manifest),
            manifest,
            layer_digest,
            config,
            config_digest,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, content.clone()));
            }
        });
        HostileRegistry { address, accepting }
    }
}

async fn answer(mut stream: TcpStream, content: Arc<Content>) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut words = text.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let head = method == "HEAD";
    let repository = "/v2/workflows/hostile";
    if path == format!("{repository}/blobs/{}", content.layer_digest) {
        return blob(stream, content.behaviour).await;
    }
    let (status, body, extra): (&str, Vec<u8>, String) = if path == "/v2/" {
        ("200 OK", b"{}".to_vec(), String::new())
    } else if path.starts_with("/v2/_catalog") {
        ("200 OK", br#"{"repositories":[]}"#.to_vec(), String::new())
    } else if path == format!("{repository}/tags/list") {
        (
            "200 OK",
            br#"{"name":"workflows/hostile","tags":["1.0.0"]}"#.to_vec(),
            String::new(),
        )
    } else if path == format!("{repository}/manifests/1.0.0")
        || path == format!("{repository}/manifests/{}", content.manifest_digest)
    {
        (
            "200 OK",
            content.manifest.clone(),
            format!(
                "Docker-Content-Digest: {}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                content.manifest_digest
            ),
        )
    } else if path == format!("{repository}/blobs/{}", content.config_digest) {
        ("200 OK", content.config.clone(), String::new())
    } else {
        ("404 Not Found", b"{}".to_vec(), String::new())
    };
    let headers = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(headers.as_bytes()).await;
    if !head {
        let _ = stream.write_all(&body).await;
    }
}

async fn blob(mut stream: TcpStream, behaviour: Blob) {
    let bytes = WORKFLOW.as_bytes();
    match behaviour {
        Blob::HangsMidway | Blob::OversizedManifest => {
            let headers = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = stream.write_all(headers.as_bytes()).await;
            let _ = stream.write_all(&bytes[..bytes.len() / 2]).await;
            // Silence, with the connection open, until the client gives up.
            let _ = stream.read(&mut [0u8; 1]).await;
        }
        Blob::Oversized => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .await;
            let chunk = vec![b'#'; 64 * 1024];
            // 64 MiB at most; the client should hang up long before.
            for _ in 0..1024 {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}
