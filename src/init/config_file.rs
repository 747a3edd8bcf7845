//! The server config file `init --write-config` writes, made from the `--config` file.

use std::path::PathBuf;

use crate::config::ConfigFile;

/// Why the config file to write could not be made. Each names the `--config` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("could not read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file's `clusterID` is of the wrong shape.
    #[error(transparent)]
    Value(#[from] crate::config::file::Error),
    /// The file names another cluster.
    #[error("cluster ID {cluster_id:?} disagrees with clusterID {in_file:?} in {}", path.display())]
    Disagrees {
        /// The cluster id `init` was given.
        cluster_id: String,
        /// The file's.
        in_file: String,
        /// The file.
        path: PathBuf,
    },
    /// The file is not YAML (or JSON) `init` can add the cluster id to.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The server config to write: the `--config` file as it is when it names the cluster,
/// else that file with `clusterID` added, else a minimal one (with the `--address` the
/// certificate names, so the server listens there).
pub fn content(
    file: Option<&ConfigFile>,
    cluster_id: &str,
    address: &str,
) -> Result<Vec<u8>, Error> {
    let Some(file) = file else {
        return Ok(super::minimal_server_config(cluster_id, address).into_bytes());
    };
    let path = file.path();
    let raw = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    match file.get_string("clusterID")?.filter(|s| !s.is_empty()) {
        Some(id) if id == cluster_id => Ok(raw),
        Some(in_file) => Err(Error::Disagrees {
            cluster_id: cluster_id.to_owned(),
            in_file,
            path: path.to_owned(),
        }),
        None => with_cluster_id(&String::from_utf8_lossy(&raw), is_json(file), cluster_id)
            .map(String::into_bytes)
            .map_err(|message| Error::Parse {
                path: path.to_owned(),
                message,
            }),
    }
}

fn is_json(file: &ConfigFile) -> bool {
    file.path().extension().is_some_and(|e| e == "json")
}

/// `text` (YAML, or JSON when `json`) re-serialised as YAML with `clusterID` set: the
/// server reads its cluster id from this file alone. Comments are lost, the content kept;
/// an empty `clusterID` of any spelling is replaced.
fn with_cluster_id(text: &str, json: bool, cluster_id: &str) -> Result<String, String> {
    let mut value: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else if json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    let obj = value.as_object_mut().ok_or("not a mapping")?;
    obj.retain(|k, _| !k.eq_ignore_ascii_case("clusterid"));
    obj.insert(
        "clusterID".to_owned(),
        serde_json::Value::String(cluster_id.to_owned()),
    );
    serde_saphyr::to_string(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn file_with(dir: &Path, name: &str, text: &str) -> ConfigFile {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        ConfigFile::load(&path).unwrap()
    }

    #[test]
    fn without_a_file_the_minimal_config() {
        let text = content(None, "c", "127.0.0.1").unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), "clusterID: \"c\"\n");
    }

    #[test]
    fn a_file_naming_the_cluster_is_copied_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let text = "# ours\nclusterID: c\nserver:\n  port: 1\n";
        let f = file_with(dir.path(), "c.yaml", text);
        assert_eq!(
            content(Some(&f), "c", "127.0.0.1").unwrap(),
            text.as_bytes()
        );
    }

    #[test]
    fn a_file_naming_another_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = file_with(dir.path(), "c.yaml", "clusterID: other\n");
        let err = content(Some(&f), "c", "127.0.0.1").unwrap_err();
        assert!(matches!(err, Error::Disagrees { .. }), "{err:?}");
        assert!(err.to_string().contains("disagrees"), "{err}");
    }

    #[test]
    fn the_cluster_id_is_added_to_yaml_json_and_empty_files() {
        for (text, json, want) in [
            ("", false, "clusterID: c\n"),
            (
                "clusterid: \"\"\nserver:\n  port: 1\n",
                false,
                "clusterID: c\nserver:\n  port: 1\n",
            ),
            (
                "{\"server\": {\"port\": 1}}",
                true,
                "clusterID: c\nserver:\n  port: 1\n",
            ),
        ] {
            assert_eq!(with_cluster_id(text, json, "c").unwrap(), want, "{text}");
        }
        assert_eq!(
            with_cluster_id("- a\n", false, "c").unwrap_err(),
            "not a mapping"
        );
        assert!(with_cluster_id("{", true, "c").is_err());
    }
}
