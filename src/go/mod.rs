//! Go's standard library as far as upstream's behaviour and messages depend on it (pure):
//! tokens are parsed as Go parses them and refused with Go's words, because operators
//! grep logs for upstream's texts.
//!
//! | module      | Go                                                        |
//! |-------------|-----------------------------------------------------------|
//! | [`base64`]  | `base64.RawURLEncoding.DecodeString`                      |
//! | [`url`]     | `url.Parse`, `url.ParseQuery`                             |
//! | [`time`]    | `time.Parse("20060102T150405Z", …)`, `Time.String`, durations |
//! | [`json`]    | `json.Encoder`'s string escapes (and serde_json's, without the HTML ones) |
//! | [`strconv`] | `strconv.Quote` (fmt's `%q`, also of a `[]string`), `Atoi`|

pub mod base64;
pub mod json;
pub mod strconv;
pub mod time;
pub mod url;
