//! The command line of `midge pub`, `midge sub` and `midge rr`: Mosquitto's `client_shared.c`
//! flag for flag, in any order, with its error messages word for word and numbers read by C's
//! `atoi`. Each tool takes only the flags its Mosquitto namesake takes.
//!
//! Parsing only builds a [`Config`]; nothing connects or prints except the error text, which
//! is returned for the caller to print. Flags Mosquitto has and Midge does not yet (TLS-PSK,
//! OpenSSL engines, SOCKS, `-A`) are refused with a message of their own
//! (docs/client-tools.md).

use std::time::Duration;

use midge_codec::{ProtocolVersion, QoS, TopicFilter, TopicName};

use super::Tool;
use super::properties::ToolProperties;

/// Where `midge pub` takes its message from (`-m`, `-f`, `-s`, `-l`, `-n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PubMode {
    None,
    Message(Vec<u8>),
    File(String),
    Stdin,
    StdinLines,
    Null,
}

/// Everything the flags say.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) unix_socket: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) id_prefix: Option<String>,
    pub(crate) keepalive: u16,
    pub(crate) qos: QoS,
    pub(crate) clean_session: bool,
    pub(crate) protocol: ProtocolVersion,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) will_topic: Option<String>,
    pub(crate) will_payload: Option<String>,
    pub(crate) will_qos: QoS,
    pub(crate) will_retain: bool,
    pub(crate) debug: bool,
    pub(crate) quiet: bool,
    /// `-x`; -1 while unset.
    pub(crate) session_expiry: i64,
    pub(crate) max_inflight: u16,
    pub(crate) nodelay: bool,
    pub(crate) properties: ToolProperties,
    // TLS
    pub(crate) cafile: Option<String>,
    pub(crate) capath: Option<String>,
    pub(crate) certfile: Option<String>,
    pub(crate) keyfile: Option<String>,
    pub(crate) keyform: Option<String>,
    pub(crate) insecure: bool,
    pub(crate) tls_version: Option<String>,
    pub(crate) ciphers: Option<String>,
    pub(crate) tls_alpn: Option<String>,
    pub(crate) tls_use_os_certs: bool,
    // midge rr
    pub(crate) response_topic: Option<String>,
    // midge pub
    pub(crate) topic: Option<String>,
    pub(crate) pub_mode: PubMode,
    pub(crate) retain: bool,
    pub(crate) repeat_count: u32,
    pub(crate) repeat_delay: Duration,
    // midge sub
    pub(crate) topics: Vec<String>,
    pub(crate) filter_outs: Vec<TopicFilter>,
    pub(crate) unsub_topics: Vec<String>,
    pub(crate) verbose: bool,
    pub(crate) format: Option<String>,
    pub(crate) eol: bool,
    pub(crate) msg_count: u32,
    pub(crate) timeout: u32,
    pub(crate) no_retain: bool,
    pub(crate) retained_only: bool,
    pub(crate) remove_retained: bool,
    pub(crate) exit_after_sub: bool,
    pub(crate) retain_as_published: bool,
    pub(crate) pretty: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            unix_socket: None,
            id: None,
            id_prefix: None,
            keepalive: 60,
            qos: QoS::AtMostOnce,
            clean_session: true,
            protocol: ProtocolVersion::V311,
            username: None,
            password: None,
            will_topic: None,
            will_payload: None,
            will_qos: QoS::AtMostOnce,
            will_retain: false,
            debug: false,
            quiet: false,
            session_expiry: -1,
            max_inflight: 20,
            nodelay: false,
            properties: ToolProperties::default(),
            cafile: None,
            capath: None,
            certfile: None,
            keyfile: None,
            keyform: None,
            insecure: false,
            tls_version: None,
            ciphers: None,
            tls_alpn: None,
            tls_use_os_certs: false,
            response_topic: None,
            topic: None,
            pub_mode: PubMode::None,
            retain: false,
            repeat_count: 1,
            repeat_delay: Duration::ZERO,
            topics: Vec::new(),
            filter_outs: Vec::new(),
            unsub_topics: Vec::new(),
            verbose: false,
            format: None,
            eol: true,
            msg_count: 0,
            timeout: 0,
            no_retain: false,
            retained_only: false,
            remove_retained: false,
            exit_after_sub: false,
            retain_as_published: false,
            pretty: false,
        }
    }
}

/// Why parsing stopped without a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `--help`: print the usage, exit 1.
    Help,
    /// `--version`: print the version line, exit 1.
    Version,
    /// A mistake: print this to stderr, then the "Use ... --help" hint, exit 1.
    Error(String),
}

/// C's `atoi`/`atol`: optional leading space and sign, then digits up to the first non-digit;
/// 0 when there are none. Saturates instead of overflowing.
pub(crate) fn atol(text: &str) -> i64 {
    let text = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut value: i64 = 0;
    for byte in digits.bytes().take_while(u8::is_ascii_digit) {
        value = value.saturating_mul(10).saturating_add(i64::from(byte - b'0'));
    }
    if negative { -value } else { value }
}

/// `atoi`, which truncates to a C `int`.
fn atoi(text: &str) -> i64 {
    atol(text) as i32 as i64
}

/// C's `atof` for `--repeat-delay`: the longest leading decimal number; 0 without one.
fn atof(text: &str) -> f64 {
    let text = text.trim_start();
    let end = text
        .char_indices()
        .take_while(|&(i, c)| c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0))
        .map(|(i, c)| i + c.len_utf8())
        .last()
        .unwrap_or(0);
    (0..=end)
        .rev()
        .find_map(|e| text.get(..e).and_then(|t| t.parse::<f64>().ok()))
        .unwrap_or(0.0)
}

fn qos_from(value: i64) -> Option<QoS> {
    u8::try_from(value).ok().and_then(QoS::from_bits)
}

/// Mosquitto's `mosquitto_sub_topic_check`: wildcards only as whole levels, `#` last.
fn valid_filter(filter: &str) -> bool {
    TopicFilter::new(filter).is_ok()
}

/// Parses the arguments after the tool's name, after the options file Mosquitto's tool reads
/// first (`$XDG_CONFIG_HOME/mosquitto_pub`, else `~/.config/mosquitto_pub`; `_sub` for sub).
pub(crate) fn parse(tool: Tool, args: &[String]) -> Result<Config, Stop> {
    let mut cfg = Config::default();
    if tool == Tool::Rr {
        // mosquitto_rr is an MQTT 5 tool first: its request/response properties need it.
        cfg.protocol = ProtocolVersion::V5;
    }
    if let Some(text) = options_file(tool).and_then(|path| std::fs::read_to_string(path).ok()) {
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            // One flag and, after the first space, its value, as Mosquitto splits the line.
            let line = line.trim_end_matches(['\r', '\n']);
            let mut words = line.trim_start_matches(' ').splitn(2, ' ');
            let Some(flag) = words.next().filter(|f| !f.is_empty()) else {
                continue;
            };
            let mut line_args = vec![flag.to_owned()];
            if let Some(value) = words
                .next()
                .map(|v| v.trim_start_matches(' '))
                .filter(|v| !v.is_empty())
            {
                line_args.push(value.to_owned());
            }
            parse_into(&mut cfg, tool, &line_args)?;
        }
    }
    parse_into(&mut cfg, tool, args)?;
    check(&mut cfg, tool)?;
    Ok(cfg)
}

/// The options file of Mosquitto's tool, if the environment names a place for it.
fn options_file(tool: Tool) -> Option<std::path::PathBuf> {
    let name = match tool {
        Tool::Pub => "mosquitto_pub",
        Tool::Sub => "mosquitto_sub",
        Tool::Rr => "mosquitto_rr",
    };
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(std::path::PathBuf::from(dir).join(name));
    }
    std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".config").join(name))
}

/// Applies one list of flags to `cfg`.
fn parse_into(cfg: &mut Config, tool: Tool, args: &[String]) -> Result<(), Stop> {
    let is_pub = tool == Tool::Pub;
    let is_sub = tool == Tool::Sub;
    let is_rr = tool == Tool::Rr;
    // Flags mosquitto_rr shares with mosquitto_pub (the request) or mosquitto_sub (the
    // response and how it is printed).
    let sends = is_pub || is_rr;
    let prints = is_sub || is_rr;
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let next = args.get(i + 1).map(String::as_str);
        // The value of a flag that takes one, or Mosquitto's complaint when it is missing.
        let value = |what: &str| -> Result<&str, Stop> {
            next.ok_or_else(|| {
                Stop::Error(format!(
                    "Error: {} argument given but no {what} specified.\n\n",
                    short_name(flag)
                ))
            })
        };
        let unknown = || Stop::Error(format!("Error: Unknown option '{flag}'.\n"));
        match flag {
            "--cafile" => {
                cfg.cafile = Some(value("file")?.to_owned());
                i += 1;
            }
            "--capath" => {
                cfg.capath = Some(value("directory")?.to_owned());
                i += 1;
            }
            "--cert" => {
                cfg.certfile = Some(value("file")?.to_owned());
                i += 1;
            }
            "--key" => {
                cfg.keyfile = Some(value("file")?.to_owned());
                i += 1;
            }
            "--keyform" => {
                cfg.keyform = Some(value("keyform")?.to_owned());
                i += 1;
            }
            "--ciphers" => {
                cfg.ciphers = Some(value("ciphers")?.to_owned());
                i += 1;
            }
            "--tls-version" => {
                cfg.tls_version = Some(value("version")?.to_owned());
                i += 1;
            }
            "--tls-alpn" => {
                cfg.tls_alpn = Some(value("protocol")?.to_owned());
                i += 1;
            }
            "--insecure" => cfg.insecure = true,
            "--tls-use-os-certs" => cfg.tls_use_os_certs = true,
            "-A"
            | "--psk"
            | "--psk-identity"
            | "--tls-engine"
            | "--tls-engine-kpass-sha1"
            | "--proxy"
            | "-S" => {
                return Err(Stop::Error(format!(
                    "Error: {flag} is not supported by {} yet.\n",
                    tool.name()
                )));
            }
            "--random-filter" if is_sub => {
                return Err(Stop::Error(format!(
                    "Error: {flag} is not supported by {} yet.\n",
                    tool.name()
                )));
            }
            "-C" if is_sub => {
                let count = atoi(value("count")?);
                if count < 1 {
                    return Err(Stop::Error(format!(
                        "Error: Invalid message count \"{count}\".\n\n"
                    )));
                }
                cfg.msg_count = count as u32;
                i += 1;
            }
            "-c" | "--disable-clean-session" => cfg.clean_session = false,
            "-d" | "--debug" => cfg.debug = true,
            "-D" | "--property" => {
                i += 1;
                cfg.properties.parse(args, &mut i).map_err(Stop::Error)?;
                cfg.protocol = ProtocolVersion::V5;
            }
            "-e" if is_rr => {
                let topic = value("response topic")?;
                if TopicName::new(topic).is_err() {
                    return Err(Stop::Error(format!(
                        "Error: Invalid response topic '{topic}', does it contain '+' or '#'?\n"
                    )));
                }
                cfg.response_topic = Some(topic.to_owned());
                i += 1;
            }
            "-E" if is_sub => cfg.exit_after_sub = true,
            "-f" | "--file" if sends => {
                if cfg.pub_mode != PubMode::None {
                    return Err(only_one_message());
                }
                cfg.pub_mode = PubMode::File(value("file")?.to_owned());
                i += 1;
            }
            "-F" if prints => {
                let format = value("format")?;
                check_format(format)?;
                cfg.format = Some(format.to_owned());
                i += 1;
            }
            "--help" => return Err(Stop::Help),
            "--version" => return Err(Stop::Version),
            "-h" | "--host" => {
                cfg.host = Some(value("host")?.to_owned());
                i += 1;
            }
            "-i" | "--id" => {
                if cfg.id_prefix.is_some() {
                    return Err(Stop::Error(
                        "Error: -i and -I argument cannot be used together.\n\n".into(),
                    ));
                }
                cfg.id = Some(value("id")?.to_owned());
                i += 1;
            }
            "-I" | "--id-prefix" => {
                if cfg.id.is_some() {
                    return Err(Stop::Error(
                        "Error: -i and -I argument cannot be used together.\n\n".into(),
                    ));
                }
                cfg.id_prefix = Some(value("id prefix")?.to_owned());
                i += 1;
            }
            "-k" | "--keepalive" => {
                let keepalive = atoi(value("keepalive")?);
                if !(5..=65535).contains(&keepalive) {
                    return Err(Stop::Error(
                        "Error: Invalid keepalive given, it must be between 5 and 65535 inclusive.\n\n"
                            .into(),
                    ));
                }
                cfg.keepalive = keepalive as u16;
                i += 1;
            }
            "-L" | "--url" => {
                parse_url(cfg, tool, value("URL")?)?;
                i += 1;
            }
            "-l" | "--stdin-line" if is_pub => {
                if cfg.pub_mode != PubMode::None {
                    return Err(only_one_message());
                }
                cfg.pub_mode = PubMode::StdinLines;
            }
            "-m" | "--message" if sends => {
                if cfg.pub_mode != PubMode::None {
                    return Err(only_one_message());
                }
                cfg.pub_mode = PubMode::Message(value("message")?.as_bytes().to_vec());
                i += 1;
            }
            "-M" => {
                let Some(max) = next else {
                    return Err(Stop::Error(
                        "Error: -M argument given but max_inflight not specified.\n\n".into(),
                    ));
                };
                let max = atoi(max);
                if max < 1 {
                    return Err(Stop::Error(
                        "Error: Maximum inflight messages must be greater than 0.\n\n".into(),
                    ));
                }
                cfg.max_inflight = u16::try_from(max).unwrap_or(u16::MAX);
                i += 1;
            }
            "--nodelay" => cfg.nodelay = true,
            "-n" | "--null-message" if sends => {
                if cfg.pub_mode != PubMode::None {
                    return Err(only_one_message());
                }
                cfg.pub_mode = PubMode::Null;
            }
            "-N" if prints => cfg.eol = false,
            "-p" | "--port" => {
                let port = atoi(value("port")?);
                if !(0..=65535).contains(&port) {
                    return Err(Stop::Error(format!("Error: Invalid port given: {port}\n")));
                }
                cfg.port = Some(port as u16);
                i += 1;
            }
            "--pretty" if prints => cfg.pretty = true,
            "-P" | "--pw" => {
                cfg.password = Some(value("password")?.to_owned());
                i += 1;
            }
            "-q" | "--qos" => {
                let qos = atoi(value("QoS")?);
                cfg.qos =
                    qos_from(qos).ok_or_else(|| Stop::Error(format!("Error: Invalid QoS given: {qos}\n")))?;
                i += 1;
            }
            "--quiet" => cfg.quiet = true,
            "-r" | "--retain" if is_pub => cfg.retain = true,
            "-R" if prints => cfg.no_retain = true,
            "--remove-retained" if is_sub => cfg.remove_retained = true,
            "--repeat" if is_pub => {
                let count = atoi(value("count")?);
                if count < 1 {
                    return Err(Stop::Error("Error: --repeat argument must be >0.\n\n".into()));
                }
                cfg.repeat_count = count as u32;
                i += 1;
            }
            "--repeat-delay" if is_pub => {
                let delay = atof(value("time")?);
                if delay < 0.0 {
                    return Err(Stop::Error(
                        "Error: --repeat-delay argument must be >=0.0.\n\n".into(),
                    ));
                }
                cfg.repeat_delay = Duration::from_secs_f64(delay.min(1e9));
                i += 1;
            }
            "--retain-as-published" if prints => cfg.retain_as_published = true,
            "--retained-only" if is_sub => cfg.retained_only = true,
            "-s" | "--stdin-file" if sends => {
                if cfg.pub_mode != PubMode::None {
                    return Err(only_one_message());
                }
                cfg.pub_mode = PubMode::Stdin;
            }
            "-t" | "--topic" => {
                add_topic(cfg, tool, value("topic")?, "-t")?;
                i += 1;
            }
            "-T" | "--filter-out" if is_sub => {
                let filter = value("topic filter")?;
                let parsed = TopicFilter::new(filter).map_err(|_| {
                    Stop::Error(format!(
                        "Error: Invalid filter topic '{filter}', are all '+' and '#' wildcards correct?\n"
                    ))
                })?;
                cfg.filter_outs.push(parsed);
                i += 1;
            }
            "-U" | "--unsubscribe" if is_sub => {
                let topic = value("unsubscribe topic")?;
                if !valid_filter(topic) {
                    return Err(Stop::Error(format!(
                        "Error: Invalid unsubscribe topic '{topic}', are all '+' and '#' wildcards correct?\n"
                    )));
                }
                cfg.unsub_topics.push(topic.to_owned());
                i += 1;
            }
            "-u" | "--username" => {
                cfg.username = Some(value("username")?.to_owned());
                i += 1;
            }
            "--unix" => {
                cfg.unix_socket = Some(value("socket path")?.to_owned());
                cfg.port = Some(0);
                i += 1;
            }
            "-V" | "--protocol-version" => {
                let Some(version) = next else {
                    return Err(Stop::Error(
                        "Error: --protocol-version argument given but no version specified.\n\n".into(),
                    ));
                };
                cfg.protocol = match version {
                    "mqttv31" | "31" => ProtocolVersion::V31,
                    "mqttv311" | "311" => ProtocolVersion::V311,
                    "mqttv5" | "5" => ProtocolVersion::V5,
                    _ => {
                        return Err(Stop::Error(
                            "Error: Invalid protocol version argument given.\n\n".into(),
                        ));
                    }
                };
                i += 1;
            }
            "-v" | "--verbose" if prints => cfg.verbose = true,
            "-W" if prints => {
                let timeout = atoi(value("timeout")?);
                if timeout < 1 {
                    return Err(Stop::Error(format!("Error: Invalid timeout \"{timeout}\".\n\n")));
                }
                cfg.timeout = timeout as u32;
                i += 1;
            }
            "--will-payload" => {
                cfg.will_payload = Some(value("will payload")?.to_owned());
                i += 1;
            }
            "--will-qos" => {
                let qos = atoi(value("will QoS")?);
                cfg.will_qos = qos_from(qos)
                    .ok_or_else(|| Stop::Error(format!("Error: Invalid will QoS {qos}.\n\n")))?;
                i += 1;
            }
            "--will-retain" => cfg.will_retain = true,
            "--will-topic" => {
                let topic = value("will topic")?;
                if TopicName::new(topic).is_err() {
                    return Err(Stop::Error(format!(
                        "Error: Invalid will topic '{topic}', does it contain '+' or '#'?\n"
                    )));
                }
                cfg.will_topic = Some(topic.to_owned());
                i += 1;
            }
            "-x" => {
                let Some(expiry) = next else {
                    return Err(Stop::Error(
                        "Error: -x argument given but no session expiry interval specified.\n\n".into(),
                    ));
                };
                cfg.session_expiry = parse_session_expiry(expiry)?;
                i += 1;
            }
            _ => return Err(unknown()),
        }
        i += 1;
    }
    Ok(())
}

/// The name Mosquitto's messages use for a flag: the short one where there is one.
fn short_name(flag: &str) -> &str {
    match flag {
        "--file" => "-f",
        "--host" => "-h",
        "--id" => "-i",
        "--id-prefix" => "-I",
        "--keepalive" => "-k",
        "--url" => "-L",
        "--message" => "-m",
        "--port" => "-p",
        "--pw" => "-P",
        "--qos" => "-q",
        "--topic" => "-t",
        "--filter-out" => "-T",
        "--unsubscribe" => "-U",
        "--username" => "-u",
        other => other,
    }
}

fn only_one_message() -> Stop {
    Stop::Error("Error: Only one type of message can be sent at once.\n\n".into())
}

/// `-x`: seconds, with `-1` and `∞` meaning never, read by `strtol` in base 0.
fn parse_session_expiry(text: &str) -> Result<i64, Stop> {
    if text == "∞" {
        return Ok(i64::from(u32::MAX));
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let parsed = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16)
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8)
    } else {
        body.parse::<i64>()
    };
    let value = match parsed {
        Ok(v) if !body.is_empty() => {
            if negative {
                -v
            } else {
                v
            }
        }
        _ => {
            return Err(Stop::Error(
                "Error: session-expiry-interval not a number.\n\n".into(),
            ));
        }
    };
    if value > i64::from(u32::MAX) || value < -1 {
        return Err(Stop::Error(
            "Error: session-expiry-interval out of range.\n\n".into(),
        ));
    }
    Ok(if value == -1 { i64::from(u32::MAX) } else { value })
}

/// `-t` and the topic of `-L`: a publish topic for `pub`, a filter for `sub`.
fn add_topic(cfg: &mut Config, tool: Tool, topic: &str, _arg: &str) -> Result<(), Stop> {
    match tool {
        Tool::Pub | Tool::Rr => {
            if TopicName::new(topic).is_err() {
                return Err(Stop::Error(format!(
                    "Error: Invalid publish topic '{topic}', does it contain '+' or '#'?\n"
                )));
            }
            cfg.topic = Some(topic.to_owned());
        }
        Tool::Sub => {
            if !valid_filter(topic) {
                return Err(Stop::Error(format!(
                    "Error: Invalid subscription topic '{topic}', are all '+' and '#' wildcards correct?\n"
                )));
            }
            cfg.topics.push(topic.to_owned());
        }
    }
    Ok(())
}

/// `-L mqtt://[username[:password]@]host[:port]/topic`.
fn parse_url(cfg: &mut Config, tool: Tool, url: &str) -> Result<(), Stop> {
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("mqtt://") {
        cfg.port = Some(1883);
        &url[7..]
    } else if lower.starts_with("mqtts://") {
        cfg.port = Some(8883);
        cfg.tls_use_os_certs = true;
        &url[8..]
    } else {
        return Err(Stop::Error("Error: Unsupported URL scheme.\n\n".into()));
    };
    let Some((authority, topic)) = rest.split_once('/') else {
        return Err(Stop::Error(
            "Error: Invalid URL for -L argument specified - topic missing.\n".into(),
        ));
    };
    add_topic(cfg, tool, topic, "-L topic")?;
    let host_port = match authority.split_once('@') {
        Some((credentials, host_port)) => {
            match credentials.split_once(':') {
                Some((user, password)) => {
                    cfg.username = Some(user.to_owned());
                    cfg.password = Some(password.to_owned());
                }
                None => cfg.username = Some(credentials.to_owned()),
            }
            host_port
        }
        None => authority,
    };
    match host_port.split_once(':') {
        Some((host, port)) => {
            cfg.host = Some(host.to_owned());
            cfg.port = Some(u16::try_from(atoi(port)).unwrap_or(0));
        }
        None => cfg.host = Some(host_port.to_owned()),
    }
    Ok(())
}

/// The checks Mosquitto makes once every flag is read.
fn check(cfg: &mut Config, tool: Tool) -> Result<(), Stop> {
    if cfg.will_payload.is_some() && cfg.will_topic.is_none() {
        return Err(Stop::Error(
            "Error: Will payload given, but no will topic given.\n".into(),
        ));
    }
    if cfg.will_retain && cfg.will_topic.is_none() {
        return Err(Stop::Error(
            "Error: Will retain given, but no will topic given.\n".into(),
        ));
    }
    if cfg.certfile.is_some() != cfg.keyfile.is_some() {
        return Err(Stop::Error(
            "Error: Both certfile and keyfile must be provided if one of them is set.\n".into(),
        ));
    }
    if cfg.keyform.is_some() && cfg.keyfile.is_none() {
        return Err(Stop::Error(
            "Error: If keyform is set, keyfile must be also specified.\n".into(),
        ));
    }
    if cfg.protocol == ProtocolVersion::V5 {
        if !cfg.clean_session && cfg.session_expiry == -1 {
            cfg.session_expiry = i64::from(u32::MAX);
        }
        if cfg.session_expiry > 0
            && cfg.session_expiry == i64::from(u32::MAX)
            && (cfg.id_prefix.is_some() || cfg.id.is_none())
        {
            return Err(Stop::Error(
                "Error: You must provide a client id if you are using an infinite session expiry interval.\n"
                    .into(),
            ));
        }
    } else if !cfg.clean_session && (cfg.id_prefix.is_some() || cfg.id.is_none()) {
        return Err(Stop::Error(
            "Error: You must provide a client id if you are using the -c option.\n".into(),
        ));
    }
    if tool == Tool::Sub && cfg.topics.is_empty() && cfg.unsub_topics.is_empty() {
        return Err(Stop::Error(
            "Error: You must specify a topic to subscribe to.\n".into(),
        ));
    }
    cfg.properties.check().map_err(Stop::Error)
}

/// `mosquitto_sub -F`: the format is checked before anything connects.
fn check_format(format: &str) -> Result<(), Stop> {
    let bytes = format.as_bytes();
    let incomplete = || Stop::Error("Error: Incomplete format specifier.\n".into());
    let len = bytes.len();
    let mut i = 0;
    while i < len {
        match bytes[i] {
            b'%' => {
                if i == len - 1 {
                    return Err(incomplete());
                }
                if matches!(bytes[i + 1], b'0' | b'-') {
                    i += 1;
                    if i == len - 1 {
                        return Err(incomplete());
                    }
                }
                while bytes[i + 1].is_ascii_digit() {
                    i += 1;
                    if i == len - 1 {
                        return Err(incomplete());
                    }
                }
                if bytes[i + 1] == b'.' {
                    i += 1;
                    if i == len - 1 {
                        return Err(incomplete());
                    }
                    while bytes[i + 1].is_ascii_digit() {
                        i += 1;
                        if i == len - 1 {
                            return Err(incomplete());
                        }
                    }
                }
                let spec = bytes[i + 1];
                if !b"%ACDEFIlmPpqRSrtjJUxX".contains(&spec) {
                    return Err(Stop::Error(format!(
                        "Error: Invalid format specifier '{}'.\n",
                        char::from(spec)
                    )));
                }
                i += 1;
            }
            b'@' => {
                if i == len - 1 {
                    return Err(incomplete());
                }
                i += 1;
            }
            b'\\' => {
                if i == len - 1 {
                    return Err(Stop::Error("Error: Incomplete escape specifier.\n".into()));
                }
                if !b"\\0aenrtv".contains(&bytes[i + 1]) {
                    return Err(Stop::Error(format!(
                        "Error: Invalid escape specifier '{}'.\n",
                        char::from(bytes[i + 1])
                    )));
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atol("12x"), 12);
        assert_eq!(atol("  -7"), -7);
        assert_eq!(atol("abc"), 0);
        assert_eq!(atoi("4294967297"), 1);
    }

    #[test]
    fn flags_in_any_order_and_d_implies_v5() {
        let cfg = parse(
            Tool::Pub,
            &args("-m hi -q 1 -t a/b -D publish user-property k v -r"),
        )
        .unwrap();
        assert_eq!(cfg.topic.as_deref(), Some("a/b"));
        assert_eq!(cfg.qos, QoS::AtLeastOnce);
        assert!(cfg.retain);
        assert_eq!(cfg.protocol, ProtocolVersion::V5);
        assert_eq!(cfg.properties.publish.user_properties.len(), 1);
    }

    #[test]
    fn tool_specific_flags_are_unknown_to_the_other_tool() {
        assert_eq!(
            parse(Tool::Pub, &args("-t a -v")).unwrap_err(),
            Stop::Error("Error: Unknown option '-v'.\n".into())
        );
        assert_eq!(
            parse(Tool::Sub, &args("-t a -m x")).unwrap_err(),
            Stop::Error("Error: Unknown option '-m'.\n".into())
        );
    }

    #[test]
    fn format_check_matches_mosquitto() {
        assert!(check_format("%t %p %-10.3x @Y \\n").is_ok());
        assert_eq!(
            check_format("%e").unwrap_err(),
            Stop::Error("Error: Invalid format specifier 'e'.\n".into())
        );
        assert_eq!(
            check_format("%0").unwrap_err(),
            Stop::Error("Error: Incomplete format specifier.\n".into())
        );
    }

    #[test]
    fn session_expiry_accepts_c_bases_and_infinity() {
        assert_eq!(parse_session_expiry("0x10").unwrap(), 16);
        assert_eq!(parse_session_expiry("-1").unwrap(), i64::from(u32::MAX));
        assert!(parse_session_expiry("12s").is_err());
    }
}
