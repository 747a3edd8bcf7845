//! Reading an OCI image archive (a tar of an OCI image layout) as an installer or
//! containerd does: the index, the manifest of one platform, its layers in order.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image unpacked for one platform.
#[derive(Debug)]
pub struct Image {
    /// The root filesystem: the layers applied in order.
    pub root: PathBuf,
    /// The image configuration (`config` blob).
    pub config: Value,
}

/// An archive's layout, extracted once.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
}

fn json(path: &Path) -> Result<Value, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn tar(args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new("tar")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tar {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Layout {
    pub fn extract(archive: &Path, dir: &Path) -> Result<Self, String> {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        tar(&[
            "-C".as_ref(),
            dir.as_os_str(),
            "-xf".as_ref(),
            archive.as_os_str(),
        ])?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn blob(&self, digest: &str) -> Result<PathBuf, String> {
        let (alg, hex) = digest
            .split_once(':')
            .ok_or_else(|| format!("bad digest {digest}"))?;
        Ok(self.dir.join("blobs").join(alg).join(hex))
    }

    /// Every image manifest reachable from index.json with its platform: the
    /// descriptor's `platform`, else (a single-platform archive) the config's os and
    /// architecture.
    pub fn manifests(&self) -> Result<Vec<(String, Value)>, String> {
        let mut out = Vec::new();
        let mut queue: Vec<Value> = json(&self.dir.join("index.json"))?["manifests"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        while let Some(desc) = queue.pop() {
            let body = json(&self.blob(desc["digest"].as_str().unwrap_or_default())?)?;
            let media = desc["mediaType"].as_str().unwrap_or_default();
            if media == INDEX || media == DOCKER_LIST || body.get("manifests").is_some() {
                queue.extend(body["manifests"].as_array().cloned().unwrap_or_default());
                continue;
            }
            let platform = if desc["platform"].is_object() {
                &desc["platform"]
            } else {
                &json(&self.blob(body["config"]["digest"].as_str().unwrap_or_default())?)?
            };
            let p = format!(
                "{}/{}",
                platform["os"].as_str().unwrap_or("?"),
                platform["architecture"].as_str().unwrap_or("?")
            );
            out.push((p, body));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Unpacks the `linux/<arch>` image into `dest`.
    pub fn unpack(&self, arch: &str, dest: &Path) -> Result<Image, String> {
        let manifests = self.manifests()?;
        let platforms: Vec<String> = manifests.iter().map(|(p, _)| p.clone()).collect();
        let want = format!("linux/{arch}");
        let (_, manifest) = manifests
            .into_iter()
            .find(|(p, _)| *p == want)
            .ok_or_else(|| format!("no {want} image in the archive (it has {platforms:?})"))?;
        let config = json(&self.blob(manifest["config"]["digest"].as_str().unwrap_or_default())?)?;
        if config["architecture"] != arch {
            return Err(format!(
                "the {want} manifest's config says {}",
                config["architecture"]
            ));
        }
        fs::create_dir_all(dest).map_err(|e| e.to_string())?;
        for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
            let blob = self.blob(layer["digest"].as_str().unwrap_or_default())?;
            let media = layer["mediaType"].as_str().unwrap_or_default();
            let z: &str = if media.ends_with("+gzip") || media.ends_with(".gzip") {
                "-xzf"
            } else {
                "-xf"
            };
            tar(&[
                "-C".as_ref(),
                dest.as_os_str(),
                "--numeric-owner".as_ref(),
                z.as_ref(),
                blob.as_os_str(),
            ])?;
        }
        // Whiteouts would mean a multi-layer image with deletions, which these archives
        // never are; say so rather than apply them half-way.
        let listing = Command::new("find")
            .arg(dest)
            .args(["-name", ".wh.*"])
            .output()
            .map_err(|e| e.to_string())?;
        if !listing.stdout.is_empty() {
            return Err(format!(
                "whiteouts in the layers: {}",
                String::from_utf8_lossy(&listing.stdout)
            ));
        }
        Ok(Image {
            root: dest.to_owned(),
            config,
        })
    }
}
