//! `docs/configuration.md` lists every directive Midge knows, with the status the parser gives
//! it, so the page cannot drift from the code.

use crate::config::directives::{self, Support};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/configuration.md"
));

/// The words the page uses for a status.
fn label(support: Support) -> String {
    match support {
        Support::Supported => "supported".to_owned(),
        Support::NotYet(area) => format!("not supported yet ({area})"),
        Support::NoEffect(_) => "no effect".to_owned(),
        Support::Never(_) => "refused".to_owned(),
    }
}

#[test]
fn every_directive_is_documented_with_its_status() {
    for (group, table) in directives::GROUPS {
        for directive in table {
            let row_start = format!("| `{}`", directive.name);
            let row = DOC
                .lines()
                .find(|line| line.starts_with(&row_start))
                .unwrap_or_else(|| {
                    panic!(
                        "{} ({group}) is missing from docs/configuration.md",
                        directive.name
                    )
                });
            let status = row
                .trim_end_matches('|')
                .rsplit('|')
                .next()
                .unwrap_or_default()
                .trim();
            assert_eq!(
                status,
                label(directive.support),
                "status of {} in docs/configuration.md",
                directive.name
            );
        }
    }
}

#[test]
fn every_documented_directive_is_known() {
    for line in DOC.lines().filter(|line| line.starts_with("| `")) {
        let name = line
            .trim_start_matches("| `")
            .split('`')
            .next()
            .unwrap_or_default();
        assert!(
            directives::all().any(|d| d.name == name),
            "docs/configuration.md lists unknown `{name}`"
        );
    }
}
