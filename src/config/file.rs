//! The upstream config file (`--config`), read the way viper reads it.
//!
//! Viper matches keys case-insensitively at every level (`clusterID`, `clusterid` and
//! `ClusterId` are one key; mapstructure does the same for mapping fields), so the file
//! is parsed once into a JSON value whose object keys are all lower-cased, and looked up
//! by dotted path (`server.mapRoles`). YAML (`.yaml`, `.yml`, or no extension) and JSON
//! (`.json`) are accepted.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a config file could not be used. Every variant names the file; key errors name
/// the key too.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("can't read configuration file {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON.
    #[error("can't parse configuration file {path:?}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column where the parser gives them).
        message: String,
    },
    /// The extension names a format we don't read.
    #[error("can't read configuration file {path:?}: unsupported config type {ext:?}")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The extension.
        ext: String,
    },
    /// A key holds a value of the wrong shape.
    #[error("configuration file {path:?}: key {key:?}: {message}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The dotted key, as upstream spells it.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A parsed config file with case-insensitive, dotted-path lookups.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    path: PathBuf,
    root: Value,
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the contents of `path` (the extension picks the format).
    pub fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let parse_err = |message: String| Error::Parse {
            path: path.to_owned(),
            message,
        };
        let root: Value = match ext.as_str() {
            "json" => serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?,
            "yaml" | "yml" | "" => {
                if text.trim().is_empty() {
                    Value::Object(Default::default())
                } else {
                    // Unquoted account ids such as `012345678901` stay strings as written:
                    // upstream's viper/mapstructure turns them into floats or octal values
                    // (`12345678901`), silently breaking `mapAccounts`.
                    let options = serde_saphyr::options! {
                        leading_zero_numbers_as_strings: true,
                    };
                    serde_saphyr::from_str_with_options(text, options)
                        .map_err(|e| parse_err(e.to_string()))?
                }
            }
            other => {
                return Err(Error::UnsupportedType {
                    path: path.to_owned(),
                    ext: other.to_owned(),
                });
            }
        };
        let root = lowercase_keys(root);
        if !root.is_object() && !root.is_null() {
            return Err(parse_err("the top level must be a mapping".to_owned()));
        }
        Ok(Self {
            path: path.to_owned(),
            root,
        })
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw value at a dotted key (`server.mapRoles`), matched case-insensitively.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let mut cur = &self.root;
        for part in key.split('.') {
            cur = cur.as_object()?.get(&part.to_ascii_lowercase())?;
        }
        (!cur.is_null()).then_some(cur)
    }

    /// Deserialises the value at `key` into `T`; a wrong shape is an error naming the
    /// file and the key.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get(key)
            .map(|v| {
                serde_json::from_value(v.clone()).map_err(|e| self.bad_value(key, e.to_string()))
            })
            .transpose()
    }

    /// A string value. Numbers and booleans are accepted and printed (viper's cast does
    /// the same), anything else is an error.
    pub fn get_string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.bad_value(key, "expected a string".to_owned())),
        }
    }

    /// A boolean value (`true`/`false`, or the strings viper's cast accepts).
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" => Ok(Some(false)),
                _ => Err(self.bad_value(key, format!("expected a boolean, got {s:?}"))),
            },
            Some(_) => Err(self.bad_value(key, "expected a boolean".to_owned())),
        }
    }

    /// An integer value (numbers, or strings that parse as one).
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.bad_value(key, format!("expected an integer, got {n}"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.bad_value(key, format!("expected an integer, got {s:?}"))),
            Some(_) => Err(self.bad_value(key, "expected an integer".to_owned())),
        }
    }

    /// A list of strings. A scalar string is split on whitespace, as viper's cast does
    /// for `server.backendMode: "MountedFile DynamicFile"`.
    pub fn get_string_list(&self, key: &str) -> Result<Option<Vec<String>>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.split_whitespace().map(str::to_owned).collect())),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    _ => Err(self.bad_value(key, "expected a list of strings".to_owned())),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.bad_value(key, "expected a list of strings".to_owned())),
        }
    }

    /// Every leaf key path in the file (lower-cased, dotted), for unknown-key warnings.
    /// Descends only into objects: list items (mapping entries) are not listed.
    pub fn keys(&self) -> Vec<String> {
        fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
            if let Value::Object(map) = v {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    if v.is_object() {
                        walk(&path, v, out);
                    } else {
                        out.push(path);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk("", &self.root, &mut out);
        out
    }

    /// An error about `key` in this file.
    pub fn bad_value(&self, key: &str, message: String) -> Error {
        Error::BadValue {
            path: self.path.clone(),
            key: key.to_owned(),
            message,
        }
    }
}

/// Lower-cases every object key, recursively (Go's `encoding/json` and mapstructure
/// match field names case-insensitively; this makes serde do the same).
pub fn lowercase_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lowercase_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> ConfigFile {
        ConfigFile::parse(Path::new("c.yaml"), text).unwrap()
    }

    #[test]
    fn keys_are_case_insensitive() {
        let c =
            yaml("clusterID: one\nserver:\n  Port: 1234\n  backendMode: MountedFile DynamicFile\n");
        assert_eq!(c.get_string("clusterid").unwrap().as_deref(), Some("one"));
        assert_eq!(c.get_string("CLUSTERID").unwrap().as_deref(), Some("one"));
        assert_eq!(c.get_i64("server.port").unwrap(), Some(1234));
        assert_eq!(
            c.get_string_list("server.backendMode").unwrap().unwrap(),
            ["MountedFile", "DynamicFile"]
        );
        let mut keys = c.keys();
        keys.sort();
        assert_eq!(keys, ["clusterid", "server.backendmode", "server.port"]);
    }

    #[test]
    fn bad_values_name_file_and_key() {
        let c = yaml("server:\n  port: [1]\n");
        let e = c.get_i64("server.port").unwrap_err().to_string();
        assert!(e.contains("c.yaml") && e.contains("server.port"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_file() {
        let e = ConfigFile::parse(Path::new("/x/bad.yaml"), "a: [\n").unwrap_err();
        assert!(e.to_string().contains("/x/bad.yaml"), "{e}");
        let e = ConfigFile::parse(Path::new("x.toml"), "a=1").unwrap_err();
        assert!(e.to_string().contains("unsupported config type"), "{e}");
    }

    #[test]
    fn json_works_too() {
        let c = ConfigFile::parse(Path::new("c.json"), r#"{"ClusterID":"x"}"#).unwrap();
        assert_eq!(c.get_string("clusterID").unwrap().as_deref(), Some("x"));
    }
}
