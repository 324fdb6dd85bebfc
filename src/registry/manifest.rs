//! The OCI image manifest and descriptor as pallet writes and reads them
//! (image-spec 1.1). Field order and the omission of absent fields are part
//! of the format: a manifest's digest is the hash of these exact bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The media type of an OCI image manifest (also the `Content-Type` of an upload).
pub const OCI_IMAGE_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A reference to a blob: its media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_spec_order_without_absent_fields() {
        let descriptor = |media_type: &str| Descriptor {
            media_type: media_type.into(),
            digest: "sha256:00".into(),
            size: 2,
            urls: None,
            annotations: None,
            artifact_type: None,
        };
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
            config: descriptor("c"),
            layers: vec![descriptor("l")],
            subject: None,
            artifact_type: Some("a".into()),
            annotations: None,
        };
        let text = serde_json::to_string(&manifest).unwrap();
        assert_eq!(
            text,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"c","digest":"sha256:00","size":2},"layers":[{"mediaType":"l","digest":"sha256:00","size":2}],"artifactType":"a"}"#
        );
        assert_eq!(
            serde_json::from_str::<ImageManifest>(&text).unwrap(),
            manifest
        );
    }
}
