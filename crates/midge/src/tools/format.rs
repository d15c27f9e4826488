//! How `midge sub` prints a message: the payload alone, `topic payload` with `-v`, or the
//! `-F` format with its `%` fields (width, `-` alignment, `0` padding, precision), `@` time
//! fields and `\` escapes, all as mosquitto_sub 2.0.11 prints them.
//!
//! Times are in UTC (mosquitto_sub uses the local time zone; docs/client-tools.md).

use std::io::{self, Write};

use midge_codec::{PayloadFormat, Publish};

use super::args::Config;
use super::json::{self, Json};
use crate::calendar::Now;

/// Prints one message to `out` as the flags ask; errors of `%J` go to stderr.
pub(crate) fn print_message(cfg: &Config, message: &Publish, out: &mut impl Write) -> io::Result<()> {
    if let Some(format) = &cfg.format {
        return formatted(cfg, format, message, out);
    }
    if cfg.verbose {
        if message.payload.is_empty() {
            if cfg.eol {
                writeln!(out, "{} (null)", message.topic)?;
            }
        } else {
            write!(out, "{} ", message.topic)?;
            out.write_all(&message.payload)?;
            if cfg.eol {
                out.write_all(b"\n")?;
            }
        }
    } else if !message.payload.is_empty() {
        out.write_all(&message.payload)?;
        if cfg.eol {
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

impl Now {
    /// `%j`'s timestamp: `2020-05-06T21:48:00.123456Z+0000`.
    fn json_timestamp(&self) -> String {
        format!("{}+0000", self.rfc3339())
    }
}

/// The payload, optionally in hex, padded and cut as mosquitto_sub's `write_payload` does.
fn write_payload(
    out: &mut impl Write,
    payload: &[u8],
    hex: Option<bool>,
    align_left: bool,
    pad: u8,
    width: usize,
) -> io::Result<()> {
    let mut len = payload.len();
    let padlen = if width > 0 {
        len = len.min(width);
        if hex.is_some() {
            len /= 2;
            width.saturating_sub(len * 2)
        } else {
            width - len
        }
    } else {
        0
    };
    let payload = payload.get(..len).unwrap_or(payload);
    if !align_left {
        out.write_all(&vec![pad; padlen])?;
    }
    match hex {
        None => out.write_all(payload)?,
        Some(upper) => {
            for byte in payload {
                if upper {
                    write!(out, "{byte:02X}")?;
                } else {
                    write!(out, "{byte:02x}")?;
                }
            }
        }
    }
    if align_left {
        out.write_all(&vec![b' '; padlen])?;
    }
    Ok(())
}

fn print_int(out: &mut impl Write, value: i64, align_left: bool, pad: u8, width: usize) -> io::Result<()> {
    if align_left {
        write!(out, "{value:<width$}")
    } else if pad == b'0' {
        write!(out, "{value:0width$}")
    } else {
        write!(out, "{value:>width$}")
    }
}

fn print_str(
    out: &mut impl Write,
    value: &[u8],
    align_left: bool,
    width: usize,
    precision: Option<usize>,
) -> io::Result<()> {
    let value = match precision {
        Some(p) => value.get(..p).unwrap_or(value),
        None => value,
    };
    let padding = vec![b' '; width.saturating_sub(value.len())];
    if !align_left {
        out.write_all(&padding)?;
    }
    out.write_all(value)?;
    if align_left {
        out.write_all(&padding)?;
    }
    Ok(())
}

fn print_blank(out: &mut impl Write, pad: u8, width: usize) -> io::Result<()> {
    out.write_all(&vec![pad; width])
}

/// The `-F` output for one message.
fn formatted(cfg: &Config, format: &str, message: &Publish, out: &mut impl Write) -> io::Result<()> {
    let f = format.as_bytes();
    let len = f.len();
    let mut now: Option<Now> = None;
    let mut i = 0;
    while i < len {
        match f[i] {
            b'%' => {
                let mut align_left = false;
                let mut pad = b' ';
                let mut width = 0usize;
                let mut precision = None;
                if i < len - 1 {
                    i += 1;
                    if f[i] == b'-' {
                        align_left = true;
                        if i < len - 1 {
                            i += 1;
                        }
                    }
                    if f[i] == b'0' {
                        pad = b'0';
                        if i < len - 1 {
                            i += 1;
                        }
                    }
                    while i < len - 1 && f[i].is_ascii_digit() {
                        width = width.saturating_mul(10).saturating_add(usize::from(f[i] - b'0'));
                        i += 1;
                    }
                    if f[i] == b'.' && i < len - 1 {
                        i += 1;
                        let mut p = 0usize;
                        while i < len - 1 && f[i].is_ascii_digit() {
                            p = p.saturating_mul(10).saturating_add(usize::from(f[i] - b'0'));
                            i += 1;
                        }
                        precision = Some(p);
                    }
                    if i < len {
                        let now = now.get_or_insert_with(Now::get);
                        field(cfg, message, f[i], align_left, pad, width, precision, now, out)?;
                    }
                }
            }
            b'@' => {
                if i < len - 1 {
                    i += 1;
                    if f[i] == b'@' {
                        out.write_all(b"@")?;
                    } else {
                        let now = now.get_or_insert_with(Now::get);
                        if f[i] == b'N' {
                            write!(out, "{:09}", now.nanos)?;
                        } else {
                            out.write_all(now.strftime(f[i]).as_bytes())?;
                        }
                    }
                }
            }
            b'\\' => {
                if i < len - 1 {
                    i += 1;
                    let byte = match f[i] {
                        b'\\' => Some(b'\\'),
                        b'0' => Some(0),
                        b'a' => Some(0x07),
                        b'e' => Some(0x1B),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'v' => Some(0x0B),
                        _ => None,
                    };
                    if let Some(byte) = byte {
                        out.write_all(&[byte])?;
                    }
                }
            }
            other => out.write_all(&[other])?,
        }
        i += 1;
    }
    if cfg.eol {
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[allow(clippy::too_many_arguments, reason = "printf's flags, one argument each")]
fn field(
    cfg: &Config,
    message: &Publish,
    spec: u8,
    align_left: bool,
    pad: u8,
    width: usize,
    precision: Option<usize>,
    now: &Now,
    out: &mut impl Write,
) -> io::Result<()> {
    let props = &message.properties;
    match spec {
        b'%' => out.write_all(b"%"),
        b'A' => match props.topic_alias {
            Some(alias) => print_int(out, i64::from(alias.get()), align_left, pad, width),
            None => print_blank(out, pad, width),
        },
        b'C' => match &props.content_type {
            Some(content_type) => print_str(out, content_type.as_bytes(), align_left, width, precision),
            None => print_blank(out, b' ', width),
        },
        b'D' => match &props.correlation_data {
            Some(data) => out.write_all(data),
            None => Ok(()),
        },
        b'E' => match props.message_expiry_interval {
            Some(expiry) => print_int(out, i64::from(expiry as i32), align_left, pad, width),
            None => print_blank(out, pad, width),
        },
        b'F' => match props.payload_format_indicator {
            Some(format) => print_int(
                out,
                i64::from(format == PayloadFormat::Utf8),
                align_left,
                pad,
                width,
            ),
            None => print_blank(out, pad, width),
        },
        b'I' => {
            let text = format!("{}T{}+0000", now.strftime(b'F'), now.strftime(b'T'));
            print_str(out, text.as_bytes(), align_left, width, precision)
        }
        b'j' => out.write_all(&message_json(message, now, None).print(cfg.pretty)),
        b'J' if message.payload.is_empty() => {
            out.write_all(&message_json(message, now, Some(Json::Null)).print(cfg.pretty))
        }
        b'J' => match json::parse(&message.payload) {
            Some(payload) => out.write_all(&message_json(message, now, Some(payload)).print(cfg.pretty)),
            None => {
                if !cfg.quiet {
                    out.flush()?;
                    eprintln!(
                        "Error: Message payload is not valid JSON on topic {}.",
                        message.topic
                    );
                }
                Ok(())
            }
        },
        b'l' => print_int(out, message.payload.len() as i64, align_left, pad, width),
        b'm' => print_int(
            out,
            i64::from(message.packet_id.map_or(0, |id| id.get())),
            align_left,
            pad,
            width,
        ),
        b'P' => {
            for (n, pair) in props.user_properties.iter().enumerate() {
                if n > 0 {
                    out.write_all(b" ")?;
                }
                write!(out, "{}:{}", pair.name, pair.value)?;
            }
            Ok(())
        }
        b'p' => write_payload(out, &message.payload, None, align_left, pad, width),
        b'q' => write!(out, "{}", message.qos.as_u8()),
        b'R' => match &props.response_topic {
            Some(topic) => print_str(out, topic.as_bytes(), align_left, width, precision),
            None => Ok(()),
        },
        b'r' => out.write_all(if message.retain { b"1" } else { b"0" }),
        b'S' => match props.subscription_identifiers.first() {
            Some(id) => print_int(out, i64::from(id.get()), align_left, pad, width),
            None => print_blank(out, pad, width),
        },
        b't' => print_str(out, message.topic.as_bytes(), align_left, width, precision),
        b'U' => write!(out, "{}.{:09}", now.secs, now.nanos),
        b'x' => write_payload(out, &message.payload, Some(false), align_left, pad, width),
        b'X' => write_payload(out, &message.payload, Some(true), align_left, pad, width),
        _ => Ok(()),
    }
}

/// The `%j` / `%J` object: the payload as a string, or as the parsed JSON it holds.
fn message_json(message: &Publish, now: &Now, parsed: Option<Json>) -> Json {
    let mut members = vec![
        ("tst".to_owned(), Json::String(now.json_timestamp().into_bytes())),
        (
            "topic".to_owned(),
            Json::String(message.topic.as_bytes().to_vec()),
        ),
        ("qos".to_owned(), Json::Number(f64::from(message.qos.as_u8()))),
        (
            "retain".to_owned(),
            Json::Number(f64::from(u8::from(message.retain))),
        ),
        (
            "payloadlen".to_owned(),
            Json::Number(message.payload.len() as f64),
        ),
    ];
    if let Some(id) = message.packet_id {
        members.push(("mid".to_owned(), Json::Number(f64::from(id.get()))));
    }
    let props = &message.properties;
    if !props.is_empty() {
        let mut p = Vec::new();
        if let Some(format) = props.payload_format_indicator {
            p.push((
                "payload-format-indicator".to_owned(),
                Json::Number(f64::from(u8::from(format == PayloadFormat::Utf8))),
            ));
        }
        if let Some(expiry) = props.message_expiry_interval {
            p.push((
                "message-expiry-interval".to_owned(),
                Json::Number(f64::from(expiry)),
            ));
        }
        if let Some(topic) = &props.response_topic {
            p.push((
                "response-topic".to_owned(),
                Json::String(topic.as_bytes().to_vec()),
            ));
        }
        if let Some(data) = &props.correlation_data {
            p.push(("correlation-data".to_owned(), Json::String(data.to_vec())));
        }
        if let Some(content_type) = &props.content_type {
            p.push((
                "content-type".to_owned(),
                Json::String(content_type.as_bytes().to_vec()),
            ));
        }
        for id in &props.subscription_identifiers {
            p.push((
                "subscription-identifier".to_owned(),
                Json::Number(f64::from(id.get())),
            ));
        }
        if let Some(alias) = props.topic_alias {
            p.push(("topic-alias".to_owned(), Json::Number(f64::from(alias.get()))));
        }
        if !props.user_properties.is_empty() {
            let users = props
                .user_properties
                .iter()
                .map(|u| (u.name.to_string(), Json::String(u.value.as_bytes().to_vec())))
                .collect();
            p.push(("user-properties".to_owned(), Json::Object(users)));
        }
        members.push(("properties".to_owned(), Json::Object(p)));
    }
    // mosquitto_sub 2.0.11 hands the payload to cJSON as a C string: the bytes up to the first
    // NUL, as they are.
    let payload = match parsed {
        Some(parsed) => parsed,
        None if message.payload.is_empty() => Json::Null,
        None => Json::String(
            message
                .payload
                .split(|b| *b == 0)
                .next()
                .unwrap_or_default()
                .to_vec(),
        ),
    };
    members.push(("payload".to_owned(), payload));
    Json::Object(members)
}
