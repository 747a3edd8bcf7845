//! One setting, read from its layers: command-line flag > environment variable > config
//! file > default, as upstream's viper reads it.
//!
//! The rule is pure ([`pick`]); [`Layers`] applies it with a parsed [`ConfigFile`]. clap
//! fills a flag from its environment variable when the flag is absent (`env = …` on the
//! argument), so a flag value handed to [`Layers`] already is "flag, else environment";
//! a caller that reads a variable itself passes it as the `env` layer of [`pick`].
//!
//! An empty string or path counts as not set on every layer (`clusterID: ""` leaves the
//! default in force, as an unset key would); an empty list does not (`backendMode: []`
//! is an explicit, and invalid, choice).

use std::path::PathBuf;
use std::time::Duration;

use super::file::{ConfigFile, Error};

/// The layer a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// An environment variable.
    Env,
    /// The config file (`--config`).
    File,
    /// The built-in default.
    Default,
}

/// A setting's value type: when it counts as set, and how the config file spells it.
pub trait Setting: Sized {
    /// Whether this value sets the setting (an empty string does not).
    fn is_set(&self) -> bool {
        true
    }

    /// The config file's value at `key`; a value of the wrong shape is an error naming
    /// the file and the key.
    fn from_file(file: &ConfigFile, key: &str) -> Result<Option<Self>, Error>;
}

/// The highest layer that sets a value, and which layer that is; `None` when no layer
/// does.
// upstream: viper returns a flag's value whenever the flag was given, even an empty one;
// we let an empty string or path fall through to the next layer, because an empty cluster
// id, partition, host name or path is never what the operator meant.
pub fn pick<T: Setting>(flag: Option<T>, env: Option<T>, file: Option<T>) -> Option<(T, Source)> {
    [
        (flag, Source::Flag),
        (env, Source::Env),
        (file, Source::File),
    ]
    .into_iter()
    .find_map(|(v, source)| v.filter(Setting::is_set).map(|v| (v, source)))
}

/// [`pick`], falling back to `default`.
pub fn pick_or<T: Setting>(
    flag: Option<T>,
    env: Option<T>,
    file: Option<T>,
    default: T,
) -> (T, Source) {
    pick(flag, env, file).unwrap_or((default, Source::Default))
}

/// The layers below the command line: the config file, when one is given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layers<'a> {
    file: Option<&'a ConfigFile>,
}

impl<'a> Layers<'a> {
    /// Layers over `file` (none: flags and defaults only).
    pub fn new(file: Option<&'a ConfigFile>) -> Self {
        Self { file }
    }

    /// The config file, if any.
    pub fn file(&self) -> Option<&'a ConfigFile> {
        self.file
    }

    /// The config file's value at `key` (only the file: for keys with no flag).
    pub fn file_value<T: Setting>(&self, key: &str) -> Result<Option<T>, Error> {
        let value = match self.file {
            Some(f) => T::from_file(f, key)?,
            None => None,
        };
        Ok(value.filter(Setting::is_set))
    }

    /// `flag` (or its environment variable), else the config file's `key`; `None` when
    /// neither sets it. The file's value is read even under a flag: a value of the wrong
    /// shape is a bad config file whichever layer wins.
    pub fn get<T: Setting>(&self, flag: Option<T>, key: &str) -> Result<Option<T>, Error> {
        let file = self.file_value(key)?;
        Ok(pick(flag, None, file).map(|(v, _)| v))
    }

    /// [`Layers::get`], else `default`.
    pub fn get_or<T: Setting>(&self, flag: Option<T>, key: &str, default: T) -> Result<T, Error> {
        Ok(self.get(flag, key)?.unwrap_or(default))
    }
}

impl Setting for String {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }

    fn from_file(file: &ConfigFile, key: &str) -> Result<Option<Self>, Error> {
        file.get_string(key)
    }
}

impl Setting for PathBuf {
    fn is_set(&self) -> bool {
        !self.as_os_str().is_empty()
    }

    fn from_file(file: &ConfigFile, key: &str) -> Result<Option<Self>, Error> {
        Ok(file.get_string(key)?.map(PathBuf::from))
    }
}

impl Setting for bool {
    fn from_file(file: &ConfigFile, key: &str) -> Result<Option<Self>, Error> {
        file.get_bool(key)
    }
}

impl Setting for Vec<String> {
    fn from_file(file: &ConfigFile, key: &str) -> Result<Option<Self>, Error> {
        file.get_string_list(key)
    }
}

impl Setting for Duration {
    /// A Go-style duration (`90s`, `1m30s`) or a number of seconds.
    fn from_file(file: &ConfigFile, key: &str) -> Result<Option<Self>, Error> {
        match file.get_string(key)? {
            Some(s) => crate::go::time::parse_duration(&s)
                .map(Some)
                .map_err(|message| file.bad_value(key, message)),
            None => Ok(None),
        }
    }
}

/// Integers: the file's value must fit the type (`server.port: 70000` names the key).
macro_rules! integer_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn from_file(file: &ConfigFile, key: &str) -> Result<Option<Self>, Error> {
                match file.get_i64(key)? {
                    Some(v) => <$t>::try_from(v).map(Some).map_err(|_| {
                        file.bad_value(
                            key,
                            format!("{v} is out of range {}..={}", <$t>::MIN, <$t>::MAX),
                        )
                    }),
                    None => Ok(None),
                }
            }
        }
    )*};
}
integer_setting!(u16, u32, u64, usize);

#[cfg(test)]
mod tests;
