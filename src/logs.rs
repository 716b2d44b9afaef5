//! The server's log on stderr: env_logger, filtered by `RUST_LOG` (default `info`), in one of two
//! formats ([`LogFormat`], `[log] format`): env_logger's text lines, or one JSON object a line
//! for log shippers.
//!
//! A line about a session names it in key-value fields (`log::debug!(session = id, user = user;
//! "...")`): ` session=… user=…` after the text, `"session"` and `"user"` members in JSON. A field
//! whose value is an empty string (an anonymous session's user, a session not yet registered)
//! is left out. What a line holds is chosen where it is written; tokens, keys and secrets are
//! never among it (tests/logs.rs, tests/auth.rs, tests/api.rs).

use std::io::{self, Write};

use log::kv::{self, Key, Source, Value, VisitSource};
use log::Record;
use serde::{Deserialize, Serialize};

/// The `[log]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// env_logger's: `[2025-01-31T12:00:00Z DEBUG rpc_crypto_actors::session] message session=…`.
    #[default]
    Text,
    /// One JSON object a line: `time`, `level`, `target`, `message`, and the line's fields.
    Json,
}

/// The members every JSON line has; a field of the same name is left out rather than written
/// twice.
const OWN_MEMBERS: [&str; 4] = ["time", "level", "target", "message"];

/// The target of the line a panic writes in the JSON format.
pub const PANIC_TARGET: &str = "panic";

/// Starts logging in `settings`' format. In JSON, a panic is a line too (at `error`, target
/// [`PANIC_TARGET`], whatever `RUST_LOG` says) instead of the default hook's text, so that every
/// line of stderr parses.
pub fn init(settings: &LogSettings) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match settings.format {
        LogFormat::Text => {
            builder.format_key_values(text_fields);
        }
        LogFormat::Json => {
            builder
                .write_style(env_logger::WriteStyle::Never)
                .filter_module(PANIC_TARGET, log::LevelFilter::Error)
                .format(|buf, record| {
                    let time = buf.timestamp_millis().to_string();
                    write_json_line(buf, &time, record)
                });
            std::panic::set_hook(Box::new(|info| {
                let thread = std::thread::current();
                let name = thread.name().unwrap_or("<unnamed>");
                // As the default hook: captured when RUST_BACKTRACE asks for it.
                let backtrace = std::backtrace::Backtrace::capture();
                let backtrace = match backtrace.status() {
                    std::backtrace::BacktraceStatus::Captured => backtrace.to_string(),
                    _ => String::new(),
                };
                log::error!(
                    target: PANIC_TARGET,
                    backtrace = backtrace.as_str();
                    "thread '{name}' {info}"
                );
            }));
        }
    }
    builder.init();
}

/// One record as a JSON object and a newline. serde_json writes the message and the fields, so
/// quotes, newlines and control characters in them are escaped and the line stays one line.
pub fn write_json_line(out: &mut impl Write, time: &str, record: &Record<'_>) -> io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        time: &'a str,
        level: &'a str,
        target: &'a str,
        message: String,
        #[serde(flatten)]
        fields: serde_json::Map<String, serde_json::Value>,
    }
    let mut fields = JsonFields(serde_json::Map::new());
    record
        .key_values()
        .visit(&mut fields)
        .map_err(io::Error::other)?;
    let line = Line {
        time,
        level: record.level().as_str(),
        target: record.target(),
        message: record.args().to_string(),
        fields: fields.0,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Whether a field is written: not when its value is an empty string.
fn shown(value: &Value<'_>) -> bool {
    value.to_borrowed_str() != Some("")
}

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for JsonFields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        if !shown(&value) || OWN_MEMBERS.contains(&key.as_str()) {
            return Ok(());
        }
        let value = if let Some(flag) = value.to_bool() {
            flag.into()
        } else if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_owned(), value);
        Ok(())
    }
}

/// The text format's fields: ` key=value` each, as env_logger's own, without the empty ones.
fn text_fields(buf: &mut env_logger::fmt::Formatter, fields: &dyn Source) -> io::Result<()> {
    struct Text<'a>(&'a mut env_logger::fmt::Formatter);
    impl<'kvs> VisitSource<'kvs> for Text<'_> {
        fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
            if shown(&value) {
                write!(self.0, " {key}={value}")?;
            }
            Ok(())
        }
    }
    fields.visit(&mut Text(buf)).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(record: &Record<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        write_json_line(&mut out, "2025-01-31T12:00:00.123Z", record).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(text.ends_with('\n'));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_json_line_has_its_members_and_the_fields_that_have_a_value() {
        let fields: &[(&str, &str)] = &[("session", "3f2a"), ("user", ""), ("time", "no")];
        // The record lives only in the expression: `format_args!` borrows temporaries.
        let written = line(
            &Record::builder()
                .level(log::Level::Warn)
                .target("rpc_crypto_actors::session")
                .args(format_args!("a \"quoted\"\nmessage\u{1} {}", 7))
                .key_values(&fields)
                .build(),
        );
        assert_eq!(
            written,
            serde_json::json!({
                "time": "2025-01-31T12:00:00.123Z",
                "level": "WARN",
                "target": "rpc_crypto_actors::session",
                "message": "a \"quoted\"\nmessage\u{1} 7",
                "session": "3f2a",
            })
        );
    }

    #[test]
    fn numbers_and_flags_stay_json_numbers_and_booleans() {
        let fields: &[(&str, Value<'_>)] = &[
            ("count", Value::from(3u64)),
            ("delta", Value::from(-2i64)),
            ("ok", Value::from(true)),
        ];
        let line = line(
            &Record::builder()
                .args(format_args!("m"))
                .key_values(&fields)
                .build(),
        );
        assert_eq!(line["count"], 3);
        assert_eq!(line["delta"], -2);
        assert_eq!(line["ok"], true);
    }

    #[test]
    fn the_format_is_text_unless_json_is_asked_for() {
        assert_eq!(LogSettings::default().format, LogFormat::Text);
        let table: toml::Table = toml::from_str("format = \"json\"").unwrap();
        let settings: LogSettings = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(settings.format, LogFormat::Json);
        let table: toml::Table = toml::from_str("format = \"yaml\"").unwrap();
        assert!(toml::Value::Table(table).try_into::<LogSettings>().is_err());
    }
}
