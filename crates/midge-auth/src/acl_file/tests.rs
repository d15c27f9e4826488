//! Unit tests for the ACL file: every line form, every rule kind, the decision order.

use super::*;

fn acl(text: &str) -> AclFile {
    AclFile::parse(text, "acl").unwrap()
}

fn error(text: &str) -> String {
    AclFile::parse(text, "/etc/mosquitto/acl")
        .unwrap_err()
        .to_string()
}

const ANON: ClientIdentity<'static> = ClientIdentity {
    client_id: "anon-client",
    username: None,
};

fn user(name: &'static str) -> ClientIdentity<'static> {
    ClientIdentity {
        client_id: "client-1",
        username: Some(name),
    }
}

fn can(file: &AclFile, who: ClientIdentity<'_>, topic: &str) -> (bool, bool) {
    (
        file.check(&who, topic, Access::Read),
        file.check(&who, topic, Access::Write),
    )
}

// ---- line forms ----

#[test]
fn comments_blank_lines_and_trailing_space_are_ignored() {
    let file = acl("# comment\n\n   \n\t\ntopic read a/b  \t\r\n# topic write x\n");
    assert_eq!(can(&file, ANON, "a/b"), (true, false));
    assert_eq!(can(&file, ANON, "x"), (false, false));
}

#[test]
fn access_words_give_what_they_say() {
    let file = acl("topic read r\ntopic write w\ntopic readwrite rw\ntopic bare\ntopic deny d\n");
    assert_eq!(can(&file, ANON, "r"), (true, false));
    assert_eq!(can(&file, ANON, "w"), (false, true));
    assert_eq!(can(&file, ANON, "rw"), (true, true));
    assert_eq!(can(&file, ANON, "bare"), (true, true));
    assert_eq!(can(&file, ANON, "d"), (false, false));
}

#[test]
fn a_single_word_is_the_topic_even_if_it_is_an_access_word() {
    let file = acl("topic read\n");
    assert_eq!(can(&file, ANON, "read"), (true, true));
}

#[test]
fn the_filter_is_the_rest_of_the_line_and_may_hold_spaces() {
    let file = acl("topic   read    my topic/with  spaces  \n");
    assert_eq!(can(&file, ANON, "my topic/with  spaces"), (true, false));
    assert_eq!(can(&file, ANON, "my"), (false, false));
}

#[test]
fn words_are_split_at_spaces_only() {
    // A tab does not separate words: "read\tx" is one word, hence the topic.
    let file = acl("topic read\tx\n");
    assert_eq!(can(&file, ANON, "read\tx"), (true, true));
    assert_eq!(
        error("topic\tread x\n"),
        "/etc/mosquitto/acl:1: unknown keyword \"topic\tread\" (expected topic, pattern or user)"
    );
}

#[test]
fn user_names_are_the_rest_of_the_line() {
    let file = acl("user  john smith  \ntopic a\n");
    assert_eq!(can(&file, user("john smith"), "a"), (true, true));
    assert_eq!(can(&file, user("john"), "a"), (false, false));
}

#[test]
fn bad_lines_name_file_line_and_problem() {
    let cases = [
        (
            "topic raed a/b\n",
            "/etc/mosquitto/acl:1: topic: unknown access \"raed\" (expected read, write, readwrite or deny)",
        ),
        (
            "# ok\n\npattern READ a/%c\n",
            "/etc/mosquitto/acl:3: pattern: unknown access \"READ\" (expected read, write, readwrite or deny)",
        ),
        ("topic\n", "/etc/mosquitto/acl:1: topic: missing topic"),
        ("topic   \n", "/etc/mosquitto/acl:1: topic: missing topic"),
        ("pattern\n", "/etc/mosquitto/acl:1: pattern: missing topic"),
        ("user\n", "/etc/mosquitto/acl:1: user: missing user name"),
        ("user  \t \n", "/etc/mosquitto/acl:1: user: missing user name"),
        (
            "topic read a/b#\n",
            "/etc/mosquitto/acl:1: topic: invalid topic filter \"a/b#\": '#' must be a whole topic level and the last one",
        ),
        (
            "topic read #/a\n",
            "/etc/mosquitto/acl:1: topic: invalid topic filter \"#/a\": '#' must be a whole topic level and the last one",
        ),
        (
            "pattern write a/%c+\n",
            "/etc/mosquitto/acl:1: pattern: invalid topic filter \"a/%c+\": '+' must be a whole topic level",
        ),
        (
            "topic a+\n",
            "/etc/mosquitto/acl:1: topic: invalid topic filter \"a+\": '+' must be a whole topic level",
        ),
        (
            "topics read a\n",
            "/etc/mosquitto/acl:1: unknown keyword \"topics\" (expected topic, pattern or user)",
        ),
        (
            "Topic read a\n",
            "/etc/mosquitto/acl:1: unknown keyword \"Topic\" (expected topic, pattern or user)",
        ),
        (
            "  # indented\n",
            "/etc/mosquitto/acl:1: a comment must start in the first column (Mosquitto refuses an indented `#`)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(text), expected, "{text:?}");
    }
    let err = AclFile::parse_bytes(b"topic read a\n\xff\n", "/etc/mosquitto/acl").unwrap_err();
    assert_eq!(err.to_string(), "/etc/mosquitto/acl:2: line is not valid UTF-8");
    let long = format!("topic {}\n", "a".repeat(65536));
    assert!(error(&long).ends_with("longer than 65535 bytes"));
}

#[test]
fn a_comment_that_is_not_utf8_is_still_a_comment() {
    let file = AclFile::parse_bytes(b"# caf\xe9\ntopic a\n", "acl").unwrap();
    assert_eq!(can(&file, ANON, "a"), (true, true));
}

#[test]
fn the_error_knows_its_location_and_problem() {
    let err = AclFile::parse("\n\nuser\n", "f").unwrap_err();
    assert_eq!(
        err.location(),
        Some(&Location {
            file: "f".into(),
            line: 3
        })
    );
    assert_eq!(err.problem(), Some(&Problem::MissingUsername));
}

#[test]
fn load_reads_a_file_and_names_one_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acl");
    fs::write(&path, "topic read a\nbogus\n").unwrap();
    let err = AclFile::load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: unknown keyword \"bogus\" (expected topic, pattern or user)",
            path.display()
        )
    );
    fs::write(&path, "topic read a\n").unwrap();
    assert_eq!(AclFile::load(&path).unwrap().origin(), path);
    let err = AclFile::load(dir.path().join("missing")).unwrap_err();
    assert!(
        err.to_string().contains("missing: cannot read ACL file: "),
        "{err}"
    );
}

#[test]
fn patterns_without_substitutions_warn() {
    let file = acl("pattern read a/b\npattern read a/%c\n");
    let warnings: Vec<String> = file.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["acl:1: pattern \"a/b\" contains neither %c nor %u; it applies to every client alike"]
    );
}

// ---- sections ----

#[test]
fn rules_before_any_user_line_are_for_anonymous_clients_only() {
    let file = acl("topic read general\nuser alice\ntopic read mine\n");
    assert_eq!(can(&file, ANON, "general"), (true, false));
    assert_eq!(can(&file, user("alice"), "general"), (false, false));
    assert_eq!(can(&file, user("alice"), "mine"), (true, false));
    assert_eq!(can(&file, ANON, "mine"), (false, false));
    assert_eq!(can(&file, user("bob"), "general"), (false, false));
}

#[test]
fn an_empty_user_name_is_not_anonymous() {
    let file = acl("topic read general\n");
    let empty = ClientIdentity {
        client_id: "c",
        username: Some(""),
    };
    assert_eq!(can(&file, empty, "general"), (false, false));
}

#[test]
fn sections_with_the_same_name_merge() {
    let file = acl("user alice\ntopic read a\nuser bob\ntopic read b\nuser alice\ntopic write c\n");
    assert_eq!(can(&file, user("alice"), "a"), (true, false));
    assert_eq!(can(&file, user("alice"), "c"), (false, true));
    assert_eq!(can(&file, user("alice"), "b"), (false, false));
    assert_eq!(can(&file, user("bob"), "c"), (false, false));
}

#[test]
fn user_names_are_case_sensitive() {
    let file = acl("user Alice\ntopic a\n");
    assert_eq!(can(&file, user("alice"), "a"), (false, false));
}

// ---- wildcards and $ topics ----

#[test]
fn rule_filters_match_like_subscriptions() {
    let file = acl("topic read sensors/+/temp\ntopic write cmd/#\n");
    assert_eq!(can(&file, ANON, "sensors/1/temp"), (true, false));
    assert_eq!(can(&file, ANON, "sensors/1/2/temp"), (false, false));
    assert_eq!(can(&file, ANON, "cmd"), (false, true));
    assert_eq!(can(&file, ANON, "cmd/a/b"), (false, true));
}

#[test]
fn sys_topics_need_rules_that_start_with_a_dollar() {
    let file = acl("topic read #\ntopic read +/broker/#\n");
    assert_eq!(can(&file, ANON, "$SYS/broker/uptime"), (false, false));
    let file = acl("topic readwrite $SYS/#\n");
    assert_eq!(
        can(&file, ANON, "$SYS/broker/uptime"),
        (true, false),
        "no $SYS writes"
    );
    assert_eq!(
        can(&file, ANON, "$SYS/broker/connection/b1/state"),
        (true, true),
        "bridge state"
    );
    assert_eq!(can(&file, ANON, "$SYSTEM/x"), (false, false), "starts with $SYS");
}

#[test]
fn share_topics_cannot_be_read_or_written() {
    let file = acl("topic readwrite $share/#\ntopic readwrite #\n");
    assert_eq!(can(&file, ANON, "$share/g/t"), (false, false));
    assert_eq!(
        file.decide(&ANON, "$share/g/t", Access::Write),
        Decision::SharePrefix
    );
}

#[test]
fn other_dollar_topics_follow_the_rules() {
    let file = acl("topic readwrite $foo/#\n");
    assert_eq!(can(&file, ANON, "$foo/bar"), (true, true));
    assert_eq!(can(&file, ANON, "$bar"), (false, false));
}

#[test]
fn dollar_rules_apply_without_a_file() {
    assert!(!dollar_topic_allows("$SYS/broker/uptime", Access::Write));
    assert!(dollar_topic_allows("$SYS/broker/uptime", Access::Read));
    assert!(dollar_topic_allows(
        "$SYS/broker/connection/x/state",
        Access::Write
    ));
    assert!(!dollar_topic_allows(
        "$SYS/broker/connection/x/y/state",
        Access::Write
    ));
    assert!(!dollar_topic_allows("$share/g/t", Access::Read));
    assert!(dollar_topic_allows("$share/g/t", Access::Subscribe));
    assert!(dollar_topic_allows("a/b", Access::Write));
}

// ---- subscribe ----

#[test]
fn subscriptions_are_never_refused() {
    let file = acl("topic deny #\ntopic deny $SYS/#\n");
    for filter in ["#", "a/b", "$SYS/#", "$share/g/#", "+/+"] {
        assert!(file.check(&ANON, filter, Access::Subscribe), "{filter}");
        assert_eq!(
            file.decide(&ANON, filter, Access::Subscribe),
            Decision::SubscribeUnchecked
        );
    }
    assert!(
        AclFile::parse("", "acl")
            .unwrap()
            .check(&ANON, "a", Access::Subscribe)
    );
}

// ---- deny and precedence ----

#[test]
fn deny_beats_a_grant_in_the_same_section_whatever_the_order() {
    for text in [
        "topic readwrite a/#\ntopic deny a/secret\n",
        "topic deny a/secret\ntopic readwrite a/#\n",
    ] {
        let file = acl(text);
        assert_eq!(can(&file, ANON, "a/secret"), (false, false), "{text:?}");
        assert_eq!(can(&file, ANON, "a/public"), (true, true), "{text:?}");
    }
}

#[test]
fn a_grant_of_the_other_access_does_not_stop_the_search() {
    let file = acl("topic read a\ntopic write a\n");
    assert_eq!(can(&file, ANON, "a"), (true, true));
}

#[test]
fn a_users_grant_beats_a_deny_pattern() {
    let file = acl("pattern deny secret/#\nuser alice\ntopic read secret/a\n");
    assert_eq!(can(&file, user("alice"), "secret/a"), (true, false));
    assert_eq!(
        file.decide(&user("alice"), "secret/a", Access::Read),
        Decision::AllowedByTopic { line: 3 }
    );
    assert_eq!(
        file.decide(&user("alice"), "secret/a", Access::Write),
        Decision::DeniedByPattern { line: 1 }
    );
}

#[test]
fn a_users_deny_beats_a_granting_pattern() {
    let file = acl("pattern readwrite #\nuser alice\ntopic deny x\n");
    assert_eq!(can(&file, user("alice"), "x"), (false, false));
    assert_eq!(
        file.decide(&user("alice"), "x", Access::Read),
        Decision::DeniedByTopic { line: 3 }
    );
    assert_eq!(can(&file, user("alice"), "y"), (true, true));
}

#[test]
fn deny_pattern_beats_a_grant_pattern() {
    let file = acl("pattern readwrite %u/#\npattern deny %u/private\n");
    assert_eq!(can(&file, user("alice"), "alice/x"), (true, true));
    assert_eq!(can(&file, user("alice"), "alice/private"), (false, false));
}

#[test]
fn nothing_matching_is_refused() {
    let file = acl("topic a\n");
    assert_eq!(file.decide(&ANON, "b", Access::Read), Decision::NoMatchingRule);
    let empty = acl("");
    assert_eq!(can(&empty, ANON, "a"), (false, false));
    assert_eq!(can(&empty, user("alice"), "a"), (false, false));
}

// ---- patterns ----

#[test]
fn patterns_substitute_client_id_and_user_name() {
    let file = acl("pattern write devices/%c/out\npattern read users/%u/#\n");
    let alice = ClientIdentity {
        client_id: "dev-7",
        username: Some("alice"),
    };
    assert_eq!(can(&file, alice, "devices/dev-7/out"), (false, true));
    assert_eq!(can(&file, alice, "devices/dev-8/out"), (false, false));
    assert_eq!(can(&file, alice, "users/alice/inbox"), (true, false));
    assert_eq!(can(&file, alice, "users/bob/inbox"), (false, false));
}

#[test]
fn patterns_apply_to_every_client_wherever_they_appear() {
    let file = acl("user alice\ntopic read a\npattern read p/%c\n");
    let anon = ClientIdentity {
        client_id: "x",
        username: None,
    };
    assert_eq!(can(&file, anon, "p/x"), (true, false));
    assert_eq!(can(&file, user("bob"), "p/client-1"), (true, false));
    assert_eq!(can(&file, user("alice"), "p/client-1"), (true, false));
}

#[test]
fn a_pattern_with_user_name_is_skipped_for_anonymous_clients() {
    let file = acl("pattern readwrite %u/%c\npattern read open/%c\n");
    let anon = ClientIdentity {
        client_id: "c",
        username: None,
    };
    assert_eq!(can(&file, anon, "/c"), (false, false));
    assert_eq!(can(&file, anon, "open/c"), (true, false));
}

#[test]
fn substitution_can_fill_part_of_a_level_or_several_levels() {
    let file = acl("pattern read x/pre-%c-post\npattern read y/%c\npattern read z/%%c/%x\n");
    let slashy = ClientIdentity {
        client_id: "a/b",
        username: None,
    };
    assert_eq!(can(&file, slashy, "x/pre-a/b-post"), (true, false));
    assert_eq!(
        can(&file, slashy, "y/a/b"),
        (true, false),
        "a client id with / spans levels"
    );
    assert_eq!(
        can(&file, slashy, "z/%a/b/%x"),
        (true, false),
        "other % sequences are literal"
    );
}

#[test]
fn wildcards_in_identities_are_refused_when_there_are_patterns() {
    let file = acl("topic readwrite a\nuser bad+name\ntopic readwrite #\npattern readwrite open/#\n");
    let bad_user = ClientIdentity {
        client_id: "c",
        username: Some("bad+name"),
    };
    // The user's own rules come first and still grant...
    assert_eq!(can(&file, bad_user, "a"), (true, true));
    // ...but no pattern is consulted.
    let bad_id = ClientIdentity {
        client_id: "dev#1",
        username: Some("alice"),
    };
    assert_eq!(
        file.decide(&bad_id, "open/x", Access::Read),
        Decision::DangerousIdentity
    );
    // An anonymous client with a bad id still gets the anonymous section.
    let anon_bad = ClientIdentity {
        client_id: "a+b",
        username: None,
    };
    assert_eq!(can(&file, anon_bad, "a"), (true, true));
    assert_eq!(
        file.decide(&anon_bad, "open/x", Access::Read),
        Decision::DangerousIdentity
    );
    // Without patterns there is no such check.
    let file = acl("user bad+name\ntopic readwrite #\n");
    assert_eq!(can(&file, bad_user, "a"), (true, true));
}

#[test]
fn an_empty_substitution_matches_an_empty_level() {
    let file = acl("pattern read u/%u\n");
    let empty = ClientIdentity {
        client_id: "c",
        username: Some(""),
    };
    assert_eq!(can(&file, empty, "u/"), (true, false));
}

#[test]
fn a_filter_that_becomes_empty_matches_nothing() {
    let file = acl("pattern read %c\n");
    let nameless = ClientIdentity {
        client_id: "",
        username: None,
    };
    assert_eq!(can(&file, nameless, ""), (false, false));
}

#[test]
fn decisions_display_their_reason() {
    let file = acl("topic deny a\n");
    assert_eq!(
        file.decide(&ANON, "a", Access::Read).to_string(),
        "denied by the topic rule on line 1"
    );
    assert_eq!(
        file.decide(&ANON, "$SYS/x", Access::Write).to_string(),
        "denied: $SYS topics cannot be published to"
    );
}
