//! `midge pub`, `midge sub` and `midge rr` beside Debian's `mosquitto_pub`, `mosquitto_sub`
//! and `mosquitto_rr` 2.0.11: each case runs both with the same flags against the same
//! Mosquitto broker and compares stdout, stderr and the exit code (and, for publishers, what a
//! witness subscriber received).
//!
//! TLS cases talk to a broker with three TLS listeners (a server certificate for 127.0.0.1 and
//! localhost; the same requiring a client certificate; one for another host name), with
//! certificates the `openssl` command makes for the run. `rr` cases get their answers from a
//! responder on midge-client, which replies to every `…/req` message on its Response Topic.
//!
//! One line per case in [`CASES`]. Each run gets its own topic prefix (`{t}`), so the two
//! tools and all cases run side by side; outputs are compared after [`normalise`], which maps
//! the prefix, the tool names and version line, and — where a case asks — timestamps and
//! broker-assigned client identifiers. Differences that cannot be normalised away are listed in
//! docs/client-tools.md.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail by panicking")]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use midge_client::{Client, ClientOptions, Event};
use midge_codec::properties::PublishProperties;
use midge_codec::{ProtocolVersion, QoS};
use support::{Mosquitto, free_port, wait_for_port};

/// Which broker a case talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    /// Anonymous clients allowed.
    Open,
    /// A password file with alice:secret, no anonymous clients.
    Auth,
    /// The broker with the TLS listeners (`{port}` is its plain listener).
    Tls,
}

/// Extra normalisation for output that differs from run to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    /// Every run of digits becomes `N` (timestamps).
    Digits,
    /// `auto-<uuid>` and `mosq-<random>` client identifiers become `ID`.
    ClientIds,
    /// A TLS failure mosquitto reports from its loop reads as the one it reports while
    /// connecting ("Error: A TLS error occurred.", exit 8, as "Unable to connect (A TLS error
    /// occurred.).", exit 1; "Error: The connection was lost.", exit 7, as "Error: Protocol
    /// error", exit 1): which mosquitto prints depends on how far its non-blocking handshake
    /// got before its first read. Midge always finishes the handshake while connecting.
    TlsRace,
}

/// One comparison.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    tool: &'static str,
    broker: Broker,
    /// The flags, split on spaces; single quotes group. `{port}`, `{closed}` (a port nobody
    /// listens on), `{t}` (the run's topic prefix), `{id}` (a client identifier of the run's
    /// own, since both sides run at once), `{dir}` (a directory holding `payload.txt` and the
    /// certificates) and the TLS ports `{tls}`, `{mtls}` and `{elsewhere}` are replaced.
    args: &'static str,
    stdin: &'static str,
    /// mosquitto_pub runs before the tool starts (retained messages).
    before: &'static [&'static str],
    /// mosquitto_pub runs once the tool is up (live messages for a subscriber).
    live: &'static [&'static str],
    /// A mosquitto_sub run alongside a publisher, whose output is compared too.
    witness: &'static str,
    /// A mosquitto_sub run after the tool exits, whose output is compared too.
    after: &'static str,
    /// The tool's options file (`$XDG_CONFIG_HOME/mosquitto_pub`), expanded like `args`.
    options_file: &'static str,
    /// Send the tool SIGINT once it is up (and the live messages are out).
    interrupt: bool,
    norms: &'static [Norm],
}

const fn case(name: &'static str, tool: &'static str, args: &'static str) -> Case {
    Case {
        name,
        tool,
        broker: Broker::Open,
        args,
        stdin: "",
        before: &[],
        live: &[],
        witness: "",
        after: "",
        options_file: "",
        interrupt: false,
        norms: &[],
    }
}

impl Case {
    const fn auth(mut self) -> Self {
        self.broker = Broker::Auth;
        self
    }
    const fn tls(mut self) -> Self {
        self.broker = Broker::Tls;
        self
    }
    const fn stdin(mut self, stdin: &'static str) -> Self {
        self.stdin = stdin;
        self
    }
    const fn before(mut self, before: &'static [&'static str]) -> Self {
        self.before = before;
        self
    }
    const fn live(mut self, live: &'static [&'static str]) -> Self {
        self.live = live;
        self
    }
    const fn witness(mut self, witness: &'static str) -> Self {
        self.witness = witness;
        self
    }
    const fn after(mut self, after: &'static str) -> Self {
        self.after = after;
        self
    }
    const fn options_file(mut self, text: &'static str) -> Self {
        self.options_file = text;
        self
    }
    const fn interrupt(mut self) -> Self {
        self.interrupt = true;
        self
    }
    const fn norms(mut self, norms: &'static [Norm]) -> Self {
        self.norms = norms;
        self
    }
}

/// A witness that prints each message with its topic, QoS and retain flag.
const WITNESS: &str = "-t {t}/# -F '%t %q %r %p' -C 1 -W 5";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // midge pub: flags and their mistakes.
    case("pub_help", "pub", "--help"),
    case("pub_no_arguments", "pub", ""),
    case("pub_topic_without_message", "pub", "-p {port} -t {t}/a"),
    case("pub_unknown_option", "pub", "-p {port} -t {t}/a -m x --bogus"),
    case("pub_sub_only_option", "pub", "-p {port} -t {t}/a -m x -v"),
    case("pub_bad_qos", "pub", "-p {port} -t {t}/a -m x -q 3"),
    case("pub_bad_protocol_version", "pub", "-p {port} -t {t}/a -m x -V 6"),
    case("pub_bad_keepalive", "pub", "-p {port} -t {t}/a -m x -k 2"),
    case("pub_wildcard_topic", "pub", "-p {port} -t {t}/+ -m x"),
    case("pub_two_message_sources", "pub", "-p {port} -t {t}/a -m x -n"),
    case("pub_missing_flag_value", "pub", "-p {port} -t {t}/a -m"),
    case("pub_persistent_without_id", "pub", "-p {port} -t {t}/a -m x -c"),
    case("pub_will_payload_without_topic", "pub", "-p {port} -t {t}/a -m x --will-payload w"),
    case("pub_bad_property_command", "pub", "-p {port} -t {t}/a -m x -D foo user-property k v"),
    case("pub_bad_property_name", "pub", "-p {port} -t {t}/a -m x -D publish foo k v"),
    case("pub_property_not_allowed", "pub", "-p {port} -t {t}/a -m x -D connect topic-alias 3"),
    case("pub_property_short", "pub", "-p {port} -t {t}/a -m x -D publish user-property k"),
    case("pub_zero_receive_maximum", "pub", "-p {port} -t {t}/a -m x -D connect receive-maximum 0"),
    case("pub_v5_persistent_without_id", "pub", "-p {port} -t {t}/a -m x -V 5 -c"),
    case("pub_bad_port", "pub", "-p 70000 -t {t}/a -m x"),
    case("pub_id_and_prefix", "pub", "-p {port} -t {t}/a -m x -i a -I b"),
    case("pub_bad_repeat", "pub", "-p {port} -t {t}/a -m x --repeat 0"),
    case("pub_host_without_value", "pub", "-t {t}/a -m x -h"),
    case("pub_bad_session_expiry", "pub", "-p {port} -t {t}/a -m x -V 5 -x 12abc"),
    case("pub_version_without_value", "pub", "-p {port} -t {t}/a -m x -V"),
    case("pub_long_flag_without_value", "pub", "-p {port} -t {t}/a --message"),
    case("pub_missing_file", "pub", "-p {port} -t {t}/a -f {dir}/missing.txt"),
    // midge pub: connections that fail.
    case("pub_unreachable_broker", "pub", "-p {closed} -t {t}/a -m x"),
    case("pub_unknown_host", "pub", "-h nonexistent.invalid -t {t}/a -m x"),
    case("pub_bad_password_v311", "pub", "-p {port} -t {t}/a -m x -u alice -P wrong").auth(),
    case("pub_bad_password_v5", "pub", "-p {port} -t {t}/a -m x -u alice -P wrong -V 5").auth(),
    case("pub_anonymous_refused_quiet", "pub", "-p {port} -t {t}/a -m x --quiet").auth(),
    case("pub_good_password", "pub", "-p {port} -t {t}/a -m x -u alice -P secret -d").auth(),
    // midge pub: messages, as a witness sees them.
    case("pub_qos0_debug", "pub", "-p {port} -t {t}/a -m hello -d").witness(WITNESS),
    case("pub_qos1_debug", "pub", "-p {port} -t {t}/a -m hello -q 1 -d -i {id}").witness(WITNESS),
    case("pub_qos2_debug", "pub", "-p {port} -t {t}/a -m hello -q 2 -d -i {id}").witness(WITNESS),
    case("pub_v5_qos2_debug", "pub", "-p {port} -t {t}/a -m hello -q 2 -d -V 5").witness(WITNESS).norms(&[Norm::ClientIds]),
    case("pub_v31_debug", "pub", "-p {port} -t {t}/a -m hello -V 31 -d").witness(WITNESS).norms(&[Norm::ClientIds]),
    case("pub_retained", "pub", "-p {port} -t {t}/a -m kept -r -q 1").after("-t {t}/# -F '%t %q %r %p' -C 1 -W 5"),
    case("pub_null_message", "pub", "-p {port} -t {t}/a -n -d").witness("-t {t}/# -v -C 1 -W 5"),
    case("pub_file", "pub", "-p {port} -t {t}/a -f {dir}/payload.txt -q 1").witness(WITNESS),
    case("pub_stdin_whole", "pub", "-p {port} -t {t}/a -s").stdin("all\nof it\n").witness("-t {t}/# -F '%t [%p]' -C 1 -W 5"),
    // Not with -d: when the PUBACKs interleave with the lines depends on timing, in both tools.
    case("pub_stdin_lines", "pub", "-p {port} -t {t}/a -l -q 1").stdin("one\ntwo\n\nlast").witness("-t {t}/# -v -C 4 -W 5"),
    case("pub_repeat", "pub", "-p {port} -t {t}/a -m again --repeat 3 --repeat-delay 0.1 -d").witness("-t {t}/# -v -C 3 -W 5"),
    case("pub_v5_properties", "pub", "-p {port} -t {t}/a -m props -q 1 -D publish user-property k v -D publish user-property k2 v2 -D publish content-type text/plain").witness("-V 5 -t {t}/# -F '%t %p %P %C' -C 1 -W 5"),
    case("pub_v5_no_subscribers", "pub", "-p {port} -t {t}/nobody -m x -q 1 -V 5 -d -i {id}"),
    // midge sub: flags and their mistakes.
    case("sub_help", "sub", "--help"),
    case("sub_no_topic", "sub", "-p {port}"),
    case("sub_pub_only_option", "sub", "-p {port} -t {t}/a -r"),
    case("sub_bad_filter", "sub", "-p {port} -t {t}/#/b"),
    case("sub_bad_count", "sub", "-p {port} -t {t}/a -C 0"),
    case("sub_bad_timeout", "sub", "-p {port} -t {t}/a -W 0"),
    case("sub_bad_format_specifier", "sub", "-p {port} -t {t}/a -F %e"),
    case("sub_incomplete_format", "sub", "-p {port} -t {t}/a -F abc%"),
    case("sub_bad_escape", "sub", r"-p {port} -t {t}/a -F a\q"),
    case("sub_R_with_retained_only", "sub", "-p {port} -t {t}/a -R --retained-only"),
    case("sub_unreachable_broker", "sub", "-p {closed} -t {t}/a"),
    case("sub_bad_password", "sub", "-p {port} -t {t}/a -u alice -P wrong").auth(),
    case("sub_bad_password_v5", "sub", "-p {port} -t {t}/a -V 5").auth(),
    // midge sub: what it prints.
    case("sub_retained_verbose", "sub", "-p {port} -t {t}/# -v -C 2").before(&["-t {t}/r1 -m one -r", "-t {t}/r2 -m two -r -q 1"]),
    case("sub_live_qos", "sub", "-p {port} -t {t}/# -q 2 -C 3").live(&["-t {t}/a -m q0", "-t {t}/b -m q1 -q 1", "-t {t}/c -m q2 -q 2"]),
    // The QoS 2 message last: a message arriving during its PUBREC/PUBREL exchange could come
    // before or after PUBREL, in either tool, depending on timing.
    case("sub_debug_flows", "sub", "-p {port} -t {t}/# -q 2 -C 3 -d -i {id}").live(&["-t {t}/a -m q1 -q 1", "-t {t}/b -n", "-t {t}/c -m q2 -q 2"]),
    case("sub_debug_retained_v5", "sub", "-p {port} -t {t}/# -t {t}/x -q 1 -C 1 -d -V 5").before(&["-t {t}/r -m kept -r"]).norms(&[Norm::ClientIds]),
    case("sub_null_payloads", "sub", "-p {port} -t {t}/# -C 2").live(&["-t {t}/a -n", "-t {t}/b -m shown"]),
    case("sub_null_payloads_verbose", "sub", "-p {port} -t {t}/# -C 2 -v").live(&["-t {t}/a -n", "-t {t}/b -m shown"]),
    case("sub_no_newline", "sub", "-p {port} -t {t}/# -C 2 -N").live(&["-t {t}/a -m one", "-t {t}/b -m two"]),
    case("sub_format_basic", "sub", "-p {port} -t {t}/# -C 2 -q 1 -F '%t|%p|%q|%r|%l|%m|%%'").before(&["-t {t}/r -m kept -r"]).live(&["-t {t}/a -m live -q 1"]),
    case("sub_format_hex_width", "sub", r"-p {port} -t {t}/# -C 1 -F '[%x][%X][%10p][%-10p][%05l][%-5l|][%.3t][%20t][%4x]\t\\'").live(&["-t {t}/a -m hello"]),
    case("sub_format_time", "sub", "-p {port} -t {t}/# -C 1 -F '%I|%U|@Y-@m-@dT@H:@M:@S @@ @N @s|%p'").live(&["-t {t}/a -m timed"]).norms(&[Norm::Digits]),
    case("sub_format_json", "sub", "-p {port} -t {t}/# -C 2 -q 1 -F %j").live(&["-t {t}/a -m plain -q 1", "-t {t}/b -m 'tab\there'"]).norms(&[Norm::Digits]),
    case("sub_format_json_binary", "sub", "-p {port} -t {t}/# -C 1 -F '%j %x'").live(&["-t {t}/a -f {dir}/binary.bin"]).norms(&[Norm::Digits]),
    case("sub_format_json_payload", "sub", "-p {port} -t {t}/# -C 2 -F %J").live(&["-t {t}/a -m '{\"a\": [1, 2.50, true], \"b\": {\"c\": null}}'", "-t {t}/b -m notjson"]).norms(&[Norm::Digits]),
    case("sub_format_json_pretty", "sub", "-p {port} -t {t}/# -C 1 -F %J --pretty").live(&["-t {t}/a -m '{\"a\": [1, 2], \"b\": {}}'"]).norms(&[Norm::Digits]),
    case("sub_format_v5_properties", "sub", "-p {port} -t {t}/# -C 1 -V 5 -F '%P|%C|%E|%F|%R|%D|%S|%A|%05E|%-4F|'").live(&["-t {t}/a -m p -D publish user-property a b -D publish user-property c d -D publish content-type ct -D publish message-expiry-interval 100 -D publish payload-format-indicator 1 -D publish response-topic rt -D publish correlation-data cd"]),
    case("sub_format_v5_json", "sub", "-p {port} -t {t}/# -C 1 -V 5 -F %j").live(&["-t {t}/a -m p -D publish user-property a b -D publish user-property c d"]).norms(&[Norm::Digits]),
    case("sub_format_missing_properties", "sub", "-p {port} -t {t}/# -C 1 -F '%P|%C|%E|%F|%R|%D|%S|%A|%5E|'").live(&["-t {t}/a -m p"]),
    case("sub_count_with_filter_out", "sub", "-p {port} -t {t}/# -T {t}/skip/# -T {t}/+/x -C 2 -v").live(&["-t {t}/skip/a -m no", "-t {t}/b/x -m no", "-t {t}/keep -m yes", "-t {t}/skip -m yes"]),
    case("sub_no_retained", "sub", "-p {port} -t {t}/# -R -C 1 -v").before(&["-t {t}/r -m old -r"]).live(&["-t {t}/a -m new"]),
    case("sub_retained_only", "sub", "-p {port} -t {t}/# --retained-only -v").before(&["-t {t}/r1 -m old1 -r", "-t {t}/r2 -m old2 -r"]).live(&["-t {t}/a -m new"]),
    // Not with -C: mosquitto_sub 2.0.11 then never exits (docs/client-tools.md).
    case("sub_remove_retained", "sub", "-p {port} -t {t}/# --remove-retained -W 2 -v").before(&["-t {t}/r1 -m old1 -r", "-t {t}/r2 -m old2 -r"]).after("-t {t}/# -v -W 1"),
    case("sub_timeout", "sub", "-p {port} -t {t}/# -W 1"),
    case("sub_timeout_after_messages", "sub", "-p {port} -t {t}/# -W 2 -v").live(&["-t {t}/a -m before-timeout"]),
    case("sub_exit_after_subscribe", "sub", "-p {port} -t {t}/a -t {t}/b -q 1 -E -d -i {id}"),
    case("sub_unsubscribe", "sub", "-p {port} -t {t}/a -U {t}/b -E"),
    case("sub_v5_user_properties", "sub", "-p {port} -V 5 -t {t}/# -C 1 -v -D subscribe user-property s t").live(&["-t {t}/a -m v5 -D publish user-property k v"]),
    case("sub_v31", "sub", "-p {port} -V mqttv31 -t {t}/# -C 1 -v -q 1").live(&["-t {t}/a -m old-protocol -q 1"]),
    case("sub_options_file", "sub", "-t {t}/# -C 1").options_file("# defaults\n-p {port}\n-v\n-F %t=%p\n").live(&["-t {t}/a -m from-file"]),
    case("pub_options_file_bad_flag", "pub", "-t {t}/a -m x").options_file("-p {port}\n--bogus 1\n"),
    case("sub_interrupted", "sub", "-p {port} -t {t}/a -d -i {id} -V 5").interrupt(),
    case("sub_interrupted_v5_publishes_will", "sub", "-p {port} -t {t}/a -V 5 --will-topic {t}/will --will-payload gone").interrupt().witness("-t {t}/will -v -C 1 -W 3"),
    case("sub_interrupted_v311_keeps_will", "sub", "-p {port} -t {t}/a --will-topic {t}/will --will-payload gone").interrupt().witness("-t {t}/will -v -C 1 -W 2"),
    case("sub_timeout_v5_publishes_will", "sub", "-p {port} -t {t}/a -W 1 -V 5 --will-topic {t}/will --will-payload late").witness("-t {t}/will -v -C 1 -W 4"),
    case("sub_url", "sub", "-L mqtt://127.0.0.1:{port}/{t}/a -C 1 -v").live(&["-t {t}/a -m via-url"]),
    // TLS, mosquitto_pub's flags on a broker with TLS listeners.
    case("pub_tls_good_ca", "pub", "-p {tls} --cafile {dir}/ca.crt -t {t}/a -m secure -q 1 -d -i {id}").tls().witness(WITNESS),
    case("pub_tls_host_name", "pub", "-h localhost -p {tls} --cafile {dir}/ca.crt -t {t}/a -m by-name").tls().witness(WITNESS),
    case("pub_tls_capath", "pub", "-p {tls} --capath {dir}/cadir -t {t}/a -m by-dir -q 2").tls().witness(WITNESS),
    case("pub_tls_url", "pub", "-L mqtts://127.0.0.1:{tls}/{t}/a -m by-url --cafile {dir}/ca.crt").tls().witness(WITNESS),
    case("pub_tls_version_13", "pub", "-p {tls} --cafile {dir}/ca.crt --tls-version tlsv1.3 -t {t}/a -m v13").tls().witness(WITNESS),
    case("pub_tls_ciphers_alpn", "pub", "-p {tls} --cafile {dir}/ca.crt --ciphers ECDHE-RSA-AES128-GCM-SHA256:HIGH --tls-alpn mqtt -t {t}/a -m ciphers").tls().witness(WITNESS),
    case("pub_tls_wrong_ca", "pub", "-p {tls} --cafile {dir}/other.crt -t {t}/a -m x").tls().norms(&[Norm::TlsRace]),
    case("sub_tls_wrong_ca", "sub", "-p {tls} --cafile {dir}/other.crt -t {t}/a").tls().norms(&[Norm::TlsRace]),
    case("pub_tls_plain_server", "pub", "-p {port} --cafile {dir}/ca.crt -t {t}/a -m x").tls().norms(&[Norm::TlsRace]),
    case("pub_tls_client_cert_required", "pub", "-p {mtls} --cafile {dir}/ca.crt -t {t}/a -m x").tls().norms(&[Norm::TlsRace]),
    case("pub_tls_client_cert", "pub", "-p {mtls} --cafile {dir}/ca.crt --cert {dir}/client.crt --key {dir}/client.key -t {t}/a -m mutual -d").tls().witness(WITNESS),
    case("sub_tls_client_cert", "sub", "-p {mtls} --cafile {dir}/ca.crt --cert {dir}/client.crt --key {dir}/client.key --keyform pem -t {t}/# -C 1 -v").tls().live(&["-t {t}/a -m to-mutual"]),
    case("pub_tls_other_host", "pub", "-p {elsewhere} --cafile {dir}/ca.crt -t {t}/a -m x").tls().norms(&[Norm::TlsRace]),
    case("pub_tls_other_host_insecure", "pub", "-p {elsewhere} --cafile {dir}/ca.crt --insecure -t {t}/a -m anyway").tls().witness(WITNESS),
    case("sub_tls_other_host_insecure", "sub", "-p {elsewhere} --cafile {dir}/ca.crt --insecure -t {t}/# -C 1 -v").tls().live(&["-t {t}/a -m insecure"]),
    case("pub_tls_missing_cafile", "pub", "-p {tls} --cafile {dir}/missing.crt -t {t}/a -m x").tls(),
    case("pub_tls_missing_key", "pub", "-p {tls} --cafile {dir}/ca.crt --cert {dir}/client.crt --key {dir}/missing.key -t {t}/a -m x").tls(),
    case("pub_tls_cert_without_key", "pub", "-p {tls} --cafile {dir}/ca.crt --cert {dir}/client.crt -t {t}/a -m x").tls(),
    case("pub_tls_keyform_without_key", "pub", "-p {tls} --cafile {dir}/ca.crt --keyform pem -t {t}/a -m x").tls(),
    case("pub_tls_bad_version", "pub", "-p {tls} --cafile {dir}/ca.crt --tls-version tlsv9 -t {t}/a -m x").tls(),
    case("pub_tls_bad_ciphers", "pub", "-p {tls} --cafile {dir}/ca.crt --ciphers bogus -t {t}/a -m x").tls(),
    case("pub_tls_cafile_without_value", "pub", "-t {t}/a -m x --cafile"),
    case("pub_tls_cert_without_ca_is_plain", "pub", "-p {port} --cert {dir}/client.crt --key {dir}/client.key --insecure -t {t}/a -m plain").tls().witness(WITNESS),
    // midge rr: flags and their mistakes.
    case("rr_help", "rr", "--help"),
    case("rr_no_arguments", "rr", ""),
    case("rr_no_response_topic", "rr", "-p {port} -t {t}/req -m x"),
    case("rr_no_message", "rr", "-p {port} -t {t}/req -e {t}/resp"),
    case("rr_bad_response_topic", "rr", "-p {port} -t {t}/req -e {t}/# -m x"),
    case("rr_response_topic_without_value", "rr", "-p {port} -t {t}/req -m x -e"),
    case("rr_wildcard_request_topic", "rr", "-p {port} -t {t}/+ -e {t}/resp -m x"),
    case("rr_sub_only_option", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -C 1"),
    case("rr_pub_only_option", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -r"),
    case("rr_two_message_sources", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -n"),
    case("rr_duplicate_response_topic", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -D publish response-topic {t}/other"),
    case("rr_bad_timeout", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -W 0"),
    case("rr_persistent_without_id", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -c"),
    case("rr_bad_format", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -F %Z"),
    // midge rr: connections that fail.
    case("rr_unreachable_broker", "rr", "-p {closed} -t {t}/req -e {t}/resp -m x"),
    case("rr_refused_v5", "rr", "-p {port} -t {t}/req -e {t}/resp -m x").auth(),
    case("rr_refused_v311", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -V 311").auth(),
    case("rr_refused_quiet", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -u alice -P wrong --quiet").auth(),
    // midge rr: requests and responses.
    case("rr_response", "rr", "-p {port} -t {t}/req -e {t}/resp -m ping"),
    case("rr_response_verbose_debug", "rr", "-p {port} -t {t}/req -e {t}/resp -m ping -v -q 1 -d -i {id}"),
    case("rr_response_qos2_debug", "rr", "-p {port} -t {t}/req -e {t}/resp -m ping -q 2 -d -i {id}"),
    case("rr_response_v5_debug", "rr", "-p {port} -t {t}/req -e {t}/resp -m ping -d").norms(&[Norm::ClientIds]),
    case("rr_correlation_data_format", "rr", "-p {port} -t {t}/req -e {t}/resp -m ping -D publish correlation-data c-42 -D publish user-property k v -F '%t|%p|%D|%P|%q'"),
    case("rr_null_request_no_newline", "rr", "-p {port} -t {t}/req -e {t}/resp -n -N -v"),
    case("rr_timeout", "rr", "-p {port} -t {t}/unanswered -e {t}/resp -m x -W 1"),
    case("rr_timeout_v311_debug", "rr", "-p {port} -t {t}/req -e {t}/resp -m x -W 1 -V 311 -d -i {id}"),
    case("rr_leaves_without_disconnect", "rr", "-p {port} -t {t}/req -e {t}/resp -m bye --will-topic {t}/will --will-payload gone").witness("-t {t}/will -v -C 1 -W 3"),
    case("rr_tls", "rr", "-p {tls} --cafile {dir}/ca.crt -t {t}/req -e {t}/resp -m over-tls -v").tls(),
];

/// Brokers shared by every case.
struct Brokers {
    open: Mosquitto,
    auth: Mosquitto,
    tls: TlsBroker,
    closed_port: u16,
    dir: tempfile::TempDir,
}

/// A broker with a plain listener (for the witnesses and the responder) and three TLS ones.
struct TlsBroker {
    broker: Mosquitto,
    tls: u16,
    mtls: u16,
    elsewhere: u16,
}

impl TlsBroker {
    /// Certificates from `pki` (see [`make_pki`]).
    fn start(pki: &Path) -> Self {
        let (tls, mtls, elsewhere) = (free_port(), free_port(), free_port());
        let listener = |port: u16, cert: &str, extra: &str| {
            format!(
                "listener {port} 127.0.0.1\ncafile {0}/ca.crt\ncertfile {0}/{cert}.crt\nkeyfile {0}/{cert}.key\n{extra}",
                pki.display()
            )
        };
        let extra = format!(
            "allow_anonymous true\n{}{}{}",
            listener(tls, "server", ""),
            listener(mtls, "server", "require_certificate true\n"),
            listener(elsewhere, "elsewhere", "")
        );
        let broker = Mosquitto::start(&extra, |_| {});
        for port in [tls, mtls, elsewhere] {
            wait_for_port(port);
        }
        Self {
            broker,
            tls,
            mtls,
            elsewhere,
        }
    }
}

/// Runs `openssl` with `args` in `dir`, failing the test if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("these tests need the openssl command");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// X.509 v3 certificates made with the `openssl` command: CAs `ca` and `other`; `server` for
/// 127.0.0.1 and localhost and `elsewhere` for elsewhere.example (server authentication),
/// `client` (client authentication), all signed by `ca`; and `cadir/`, a hashed directory
/// holding `ca` for `--capath`.
#[rustfmt::skip]
fn make_pki(dir: &Path) {
    for ca in ["ca", "other"] {
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                "-keyout", &format!("{ca}.key"), "-out", &format!("{ca}.crt"),
                "-subj", &format!("/CN=Midge tools test {ca}"),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    for (name, san, usage) in [
        ("server", "IP:127.0.0.1,DNS:localhost", "serverAuth"),
        ("elsewhere", "DNS:elsewhere.example", "serverAuth"),
        ("client", "DNS:client.example", "clientAuth"),
    ] {
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &format!("{name}.key"),
                "-out", &format!("{name}.csr"), "-subj", &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("basicConstraints=CA:FALSE\nsubjectAltName={san}\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509", "-req", "-in", &format!("{name}.csr"), "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "3650", "-out", &format!("{name}.crt"),
                "-extfile", &format!("{name}.ext"),
            ],
        );
    }
    let cadir = dir.join("cadir");
    std::fs::create_dir(&cadir).unwrap();
    std::fs::copy(dir.join("ca.crt"), cadir.join("ca.crt")).unwrap();
    openssl(dir, &["rehash", "cadir"]);
}

/// Answers every request on `ct/+/+/req` (each case's `{t}/req`) on its Response Topic, with
/// `reply:` and the request's payload, the request's QoS and correlation data. Returns once
/// it is subscribed; runs until the broker goes.
fn start_responder(port: u16) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let options = ClientOptions::new("127.0.0.1", port)
                .protocol(ProtocolVersion::V5)
                .client_id(format!("responder-{port}"));
            let (client, mut events) = Client::connect(options).await.unwrap();
            client
                .subscribe_one("ct/+/+/req", QoS::ExactlyOnce)
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            while let Some(event) = events.recv().await {
                let Event::Publish(request) = event else {
                    continue;
                };
                let Some(response_topic) = request.properties.response_topic.clone() else {
                    continue;
                };
                let mut properties = PublishProperties::default();
                properties.correlation_data = request.properties.correlation_data.clone();
                let mut payload = b"reply:".to_vec();
                payload.extend_from_slice(&request.payload);
                let client = client.clone();
                tokio::spawn(async move {
                    let _ = client
                        .publish(response_topic.as_str(), payload, request.qos, false, properties)
                        .await;
                });
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the responder is subscribed");
}

/// Splits a case's flags on spaces; single quotes group (and are dropped).
fn split(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            _ => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    args
}

/// What one run of a tool produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    witness: String,
    after: String,
}

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Midge,
    Mosquitto,
}

/// A child process killed if the test panics before waiting for it.
struct Running(Option<Child>);

impl Running {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(command: &mut Command, stdin: &str) -> Running {
    // No options file from the machine running the tests: HOME points where none is.
    let mut child = command
        .env("HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    Running(Some(child))
}

/// Waits for a child with a deadline, killing it after; returns code, stdout, stderr.
fn finish(mut running: Running, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = running.0.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = out.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = err.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Some(-1);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (code, reader.join().unwrap(), err_reader.join().unwrap())
}

/// Runs mosquitto_pub with an expanded line of flags.
fn mosquitto_pub(port: u16, line: &str) {
    let args = split(line);
    let status = Command::new("mosquitto_pub")
        .arg("-p")
        .arg(port.to_string())
        .args(&args)
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_pub {line}");
}

fn run(case: &Case, side: Side, brokers: &Brokers) -> Outcome {
    let port = match case.broker {
        Broker::Open => brokers.open.port,
        Broker::Auth => brokers.auth.port,
        Broker::Tls => brokers.tls.broker.port,
    };
    let prefix = format!(
        "ct/{}/{}",
        match side {
            Side::Midge => "m",
            Side::Mosquitto => "q",
        },
        case.name
    );
    let id = prefix.replace('/', "-");
    let expand = |line: &str| {
        line.replace("{port}", &port.to_string())
            .replace("{id}", &id)
            .replace("{closed}", &brokers.closed_port.to_string())
            .replace("{tls}", &brokers.tls.tls.to_string())
            .replace("{mtls}", &brokers.tls.mtls.to_string())
            .replace("{elsewhere}", &brokers.tls.elsewhere.to_string())
            .replace("{t}", &prefix)
            .replace("{dir}", &brokers.dir.path().display().to_string())
    };
    for line in case.before {
        mosquitto_pub(port, &expand(line));
    }
    let witness = (!case.witness.is_empty()).then(|| {
        let child = spawn(
            Command::new("mosquitto_sub")
                .arg("-p")
                .arg(port.to_string())
                .args(split(&expand(case.witness))),
            "",
        );
        std::thread::sleep(Duration::from_millis(400));
        child
    });
    let args = split(&expand(case.args));
    let mut command = match side {
        Side::Midge => {
            let mut command = Command::new(env!("CARGO_BIN_EXE_midge"));
            command.arg(case.tool);
            command
        }
        Side::Mosquitto => Command::new(format!("mosquitto_{}", case.tool)),
    };
    if case.options_file.is_empty() {
        command.env_remove("XDG_CONFIG_HOME");
    } else {
        let config_home = brokers.dir.path().join(&id);
        std::fs::create_dir_all(&config_home).unwrap();
        let text = expand(case.options_file);
        std::fs::write(config_home.join(format!("mosquitto_{}", case.tool)), text).unwrap();
        command.env("XDG_CONFIG_HOME", &config_home);
    }
    let tool = spawn(command.args(&args), case.stdin);
    if !case.live.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
        for line in case.live {
            mosquitto_pub(port, &expand(line));
        }
    }
    if case.interrupt {
        std::thread::sleep(Duration::from_millis(500));
        let status = Command::new("kill")
            .arg("-INT")
            .arg(tool.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let (code, stdout, stderr) = finish(tool, Duration::from_secs(10));
    let witness = witness.map_or(String::new(), |w| finish(w, Duration::from_secs(10)).1);
    let after = if case.after.is_empty() {
        String::new()
    } else {
        let child = spawn(
            Command::new("mosquitto_sub")
                .arg("-p")
                .arg(port.to_string())
                .args(split(&expand(case.after))),
            "",
        );
        let (code, out, err) = finish(child, Duration::from_secs(10));
        format!("{code:?}|{out}|{err}")
    };
    let norm = |text: String| normalise(&text.replace(&id, "{id}"), &prefix, case, brokers);
    let (mut code, mut stderr) = (code, norm(stderr));
    if case.norms.contains(&Norm::TlsRace) {
        let early = match (code, stderr.as_str()) {
            (Some(8), "Error: A TLS error occurred.\n") => {
                Some("Unable to connect (A TLS error occurred.).\n")
            }
            (Some(7), "Error: The connection was lost.\n") => Some("Error: Protocol error\n"),
            _ => None,
        };
        if let Some(early) = early {
            code = Some(1);
            stderr = early.to_owned();
        }
    }
    Outcome {
        code,
        stdout: norm(stdout),
        stderr,
        witness: norm(witness),
        after: norm(after),
    }
}

/// Maps what legitimately differs between two runs to one spelling.
fn normalise(text: &str, prefix: &str, case: &Case, brokers: &Brokers) -> String {
    let mut text = text
        .replace(prefix, "{t}")
        .replace(&brokers.dir.path().display().to_string(), "{dir}")
        .replace("midge pub", "mosquitto_pub")
        .replace("midge sub", "mosquitto_sub")
        .replace("midge rr", "mosquitto_rr");
    text = text
        .lines()
        .map(|line| {
            if ["mosquitto_pub", "mosquitto_sub", "mosquitto_rr"]
                .iter()
                .any(|tool| line.starts_with(&format!("{tool} version ")))
            {
                "VERSION".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" };
    if case.norms.contains(&Norm::ClientIds) {
        text = replace_ids(&text, "auto-", 36);
        text = replace_ids(&text, "mosq-", 18);
    }
    if case.norms.contains(&Norm::Digits) {
        let mut out = String::new();
        let mut in_digits = false;
        for c in text.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('N');
                }
                in_digits = true;
            } else {
                in_digits = false;
                out.push(c);
            }
        }
        text = out;
    }
    text
}

/// Replaces `marker` and the `len` characters after it with `marker` + "ID".
fn replace_ids(text: &str, marker: &str, len: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        out.push_str("ID");
        let skip = rest[at + marker.len()..]
            .char_indices()
            .nth(len)
            .map_or(rest.len(), |(i, _)| at + marker.len() + i);
        rest = &rest[skip..];
    }
    out.push_str(rest);
    out
}

#[test]
fn midge_tools_print_what_mosquitto_tools_print() {
    assert!(CASES.len() >= 30);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payload.txt"), "from a file\n").unwrap();
    std::fs::write(dir.path().join("binary.bin"), b"a\xffb\x00c").unwrap();
    make_pki(dir.path());
    let brokers = Brokers {
        tls: TlsBroker::start(dir.path()),
        open: Mosquitto::start("allow_anonymous true\n", |_| {}),
        auth: Mosquitto::start("allow_anonymous false\npassword_file pw\n", |d| {
            let status = Command::new("mosquitto_passwd")
                .args(["-c", "-b"])
                .arg(d.join("pw"))
                .args(["alice", "secret"])
                .status()
                .expect("mosquitto_passwd");
            assert!(status.success());
        }),
        closed_port: free_port(),
        dir,
    };
    start_responder(brokers.open.port);
    start_responder(brokers.tls.broker.port);
    let only = std::env::var("CLIENT_TOOLS_CASE").ok();
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o)))
        .collect();
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(cases.into_iter());
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                loop {
                    let Some(case) = next.lock().unwrap().next() else {
                        break;
                    };
                    let (midge, mosquitto) = std::thread::scope(|inner| {
                        let midge = inner.spawn(|| run(case, Side::Midge, &brokers));
                        let mosquitto = inner.spawn(|| run(case, Side::Mosquitto, &brokers));
                        (midge.join().unwrap(), mosquitto.join().unwrap())
                    });
                    if midge != mosquitto {
                        failures.lock().unwrap().push(format!(
                            "== {}: midge {} {}\n-- midge:\n{midge:#?}\n-- mosquitto:\n{mosquitto:#?}",
                            case.name, case.tool, case.args
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn split_groups_single_quotes() {
    assert_eq!(split("-F '%t %p' -t a"), vec!["-F", "%t %p", "-t", "a"]);
    assert_eq!(split("-m ''"), vec!["-m", ""]);
}
