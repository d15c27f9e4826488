//! The JSON of `midge sub -F %j` and `%J`, written byte for byte as mosquitto_sub writes it
//! with cJSON: members in insertion order, cJSON's string escapes, and cJSON's layout for
//! `--pretty` (tabs, `"key":\tvalue`, arrays as `[1, 2]`).
//!
//! `%J` embeds the payload as parsed JSON; [`parse`] is a small strict parser for that, so a
//! payload that is not JSON is reported, never trusted.

use std::fmt::Write;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(f64),
    /// Bytes, not `String`: topics and payloads are printed as received.
    String(Vec<u8>),
    Array(Vec<Self>),
    Object(Vec<(String, Self)>),
}

impl Json {
    /// The text, minified (`pretty` false) or as cJSON_Print lays it out.
    pub(crate) fn print(&self, pretty: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out, pretty, 0);
        out
    }

    fn write(&self, out: &mut Vec<u8>, pretty: bool, depth: usize) {
        match self {
            Self::Null => out.extend_from_slice(b"null"),
            Self::Bool(true) => out.extend_from_slice(b"true"),
            Self::Bool(false) => out.extend_from_slice(b"false"),
            Self::Number(n) => out.extend_from_slice(number(*n).as_bytes()),
            Self::String(s) => string(out, s),
            Self::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(if pretty { b", " } else { b"," });
                    }
                    item.write(out, pretty, depth + 1);
                }
                out.push(b']');
            }
            Self::Object(members) => {
                out.push(b'{');
                if pretty {
                    out.push(b'\n');
                }
                for (i, (key, value)) in members.iter().enumerate() {
                    if pretty {
                        out.extend(std::iter::repeat_n(b'\t', depth + 1));
                    }
                    string(out, key.as_bytes());
                    out.push(b':');
                    if pretty {
                        out.push(b'\t');
                    }
                    value.write(out, pretty, depth + 1);
                    if i + 1 < members.len() {
                        out.push(b',');
                    }
                    if pretty {
                        out.push(b'\n');
                    }
                }
                if pretty {
                    out.extend(std::iter::repeat_n(b'\t', depth));
                }
                out.push(b'}');
            }
        }
    }
}

/// cJSON's number format: integers as integers, others with up to 17 significant digits.
fn number(n: f64) -> String {
    if !n.is_finite() {
        return "null".into();
    }
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    format!("{n}")
}

/// cJSON's string escapes: `"`, `\`, the named controls, other controls as `\u00XX`; every
/// other byte as it is.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &byte in s {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => {
                let mut escaped = String::new();
                let _ = write!(escaped, "\\u{byte:04x}");
                out.extend_from_slice(escaped.as_bytes());
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

/// Parses a whole document (whitespace around it allowed); `None` if it is not JSON.
pub(crate) fn parse(text: &[u8]) -> Option<Json> {
    let mut parser = Parser {
        text,
        at: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.space();
    (parser.at == text.len()).then_some(value)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    depth: usize,
}

/// Deeper nesting is refused rather than risking the stack (cJSON's limit too).
const MAX_DEPTH: usize = 1000;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8], value: Json) -> Option<Json> {
        if self.text.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Some(value)
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Json> {
        self.space();
        match self.peek()? {
            b'n' => self.literal(b"null", Json::Null),
            b't' => self.literal(b"true", Json::Bool(true)),
            b'f' => self.literal(b"false", Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => self.nested(|p| p.array()),
            b'{' => self.nested(|p| p.object()),
            _ => self.number(),
        }
    }

    fn nested(&mut self, inner: impl FnOnce(&mut Self) -> Option<Json>) -> Option<Json> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = inner(self);
        self.depth -= 1;
        value
    }

    fn array(&mut self) -> Option<Json> {
        self.at += 1;
        let mut items = Vec::new();
        self.space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Json::Array(items));
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self) -> Option<Json> {
        self.at += 1;
        let mut members = Vec::new();
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(Json::Object(members));
        }
        loop {
            self.space();
            if self.peek()? != b'"' {
                return None;
            }
            let key = String::from_utf8(self.string()?).ok()?;
            self.space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            members.push((key, self.value()?));
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(Json::Object(members));
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        let value = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        self.at += 4;
        Some(value)
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let byte = self.peek()?;
            self.at += 1;
            match byte {
                b'"' => return Some(out),
                b'\\' => {
                    let escape = self.peek()?;
                    self.at += 1;
                    match escape {
                        b'"' | b'\\' | b'/' => out.push(escape),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0C),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) {
                                if self.text.get(self.at..self.at + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.at += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            }
                            let c = char::from_u32(code)?;
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return None,
                    }
                }
                _ => out.push(byte),
            }
        }
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
            self.at += 1;
        }
        let text = std::str::from_utf8(self.text.get(start..self.at)?).ok()?;
        if text.is_empty() {
            return None;
        }
        text.parse::<f64>().ok().map(Json::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minified_and_pretty_like_cjson() {
        let value = Json::Object(vec![
            ("a".into(), Json::Number(1.0)),
            (
                "b".into(),
                Json::Array(vec![Json::Number(1.0), Json::Number(2.5)]),
            ),
            ("c".into(), Json::String(b"q\"\n".to_vec())),
        ]);
        assert_eq!(value.print(false), br#"{"a":1,"b":[1,2.5],"c":"q\"\n"}"#.to_vec());
        assert_eq!(
            String::from_utf8(value.print(true)).unwrap(),
            "{\n\t\"a\":\t1,\n\t\"b\":\t[1, 2.5],\n\t\"c\":\t\"q\\\"\\n\"\n}"
        );
    }

    #[test]
    fn parser_is_strict() {
        assert!(parse(br#" {"x": [1, true, null, "\u00e9"]} "#).is_some());
        assert!(parse(b"{").is_none());
        assert!(parse(b"1 2").is_none());
        assert!(parse(b"hello").is_none());
        assert!(parse(&[b'['; 5000]).is_none());
    }
}
