//! The manual and the shell completions, generated from the sources that cannot drift:
//!
//! - `midge(8)`: the clap definitions of [`crate::cli::command`] (the same as `--help`), with
//!   the signals, files and environment a service manager needs to know about;
//! - `midge.conf(5)`: `docs/configuration.md`, rendered to roff. That page lists every directive
//!   the parser knows with its status, and a test in midge-server checks it against the
//!   directive tables (`crates/midge-server/src/config/directives/`); a test here checks that
//!   every directive row reaches the man page.
//! - `midge completions bash|zsh|fish`: clap_complete over [`crate::cli::command`].
//!
//! `midge man DIR` writes both pages into DIR; the Debian package is built with it.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use roff::{Inline, Roff, bold, italic, line_break, roman};

/// The configuration reference, the source of `midge.conf(5)`.
const CONFIGURATION_MD: &str = include_str!("../../../docs/configuration.md");

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `midge completions SHELL`: prints the completion script.
pub(crate) fn completions_main(args: Vec<OsString>) -> ExitCode {
    let shell = match args.first().and_then(|a| a.to_str()) {
        Some("bash") => clap_complete::Shell::Bash,
        Some("zsh") => clap_complete::Shell::Zsh,
        Some("fish") => clap_complete::Shell::Fish,
        _ => {
            eprintln!("Usage: midge completions bash|zsh|fish");
            return ExitCode::FAILURE;
        }
    };
    let mut command = crate::cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "midge", &mut out);
    match std::io::stdout().lock().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `midge man DIR`: writes `DIR/midge.8` and `DIR/midge.conf.5`.
pub(crate) fn man_main(args: Vec<OsString>) -> ExitCode {
    let [dir] = args.as_slice() else {
        eprintln!("Usage: midge man DIR");
        return ExitCode::FAILURE;
    };
    let dir = Path::new(dir);
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join("midge.8"), midge_8()))
        .and_then(|()| std::fs::write(dir.join("midge.conf.5"), midge_conf_5()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: cannot write the man pages to {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `midge(8)`.
pub(crate) fn midge_8() -> String {
    let command = crate::cli::command();
    let man = clap_mangen::Man::new(command.clone())
        .title("MIDGE")
        .section("8")
        .source(format!("midge {VERSION}"))
        .manual("System Manager's Manual");
    // Each part comes with the apostrophe preamble; the page keeps the first. Writing into a
    // Vec cannot fail.
    let part = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut out = Vec::new();
        let _ = render(&mut out);
        strip_preamble(&String::from_utf8_lossy(&out))
    };
    let mut title = Vec::new();
    let _ = man.render_title(&mut title);
    let mut page = String::from_utf8_lossy(&title).into_owned();
    page.push_str(&part(&|out| man.render_name_section(out)));
    page.push_str(&part(&|out| man.render_synopsis_section(out)));

    let mut description = Roff::new();
    description.control("SH", ["DESCRIPTION"]);
    description.text([
        bold("midge"),
        roman(
            " is an MQTT 5.0, 3.1.1 and 3.1 broker that takes Mosquitto's command line and reads its \
             configuration file, mosquitto.conf (see ",
        ),
        bold("midge.conf"),
        roman("(5)). The client tools are built in as subcommands."),
    ]);
    if let Some(after) = command.get_after_help() {
        description.control("PP", []);
        description.text([roman(after.to_string())]);
    }
    page.push_str(&strip_preamble(&description.render()));
    page.push_str(&part(&|out| man.render_options_section(out)));

    let mut extra = Roff::new();
    extra.control("SH", ["SUBCOMMANDS"]);
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let args: Vec<String> = sub
            .get_arguments()
            .filter(|arg| arg.is_positional())
            .map(|arg| arg.get_id().to_string())
            .collect();
        extra.control("TP", []);
        let mut tag = vec![bold(format!("midge {}", sub.get_name()))];
        for arg in args {
            tag.push(roman(" "));
            tag.push(italic(arg));
        }
        extra.text(tag);
        extra.text([roman(
            sub.get_about().map(ToString::to_string).unwrap_or_default(),
        )]);
    }
    extra.control("SH", ["SIGNALS"]);
    item(
        &mut extra,
        "SIGHUP",
        "Closes and reopens the log_dest file (for logrotate), then re-reads the password and ACL \
         files and the TLS certificates, as Mosquitto does. A file that fails to load changes \
         nothing and is logged as an error. The rest of the configuration is read at start only.",
    );
    item(
        &mut extra,
        "SIGINT, SIGTERM",
        "Stops the broker cleanly: MQTT 5 clients get DISCONNECT 0x8B (server shutting down), the \
         pid file is removed.",
    );
    extra.control("SH", ["FILES"]);
    item(
        &mut extra,
        "/etc/midge/midge.conf",
        "The configuration of the packaged service; its include_dir is /etc/midge/conf.d.",
    );
    item(
        &mut extra,
        "/var/lib/midge",
        "The persistence directory of the packaged service, owned by the midge user.",
    );
    item(
        &mut extra,
        "/var/log/midge/midge.log",
        "The log of the packaged service, rotated by /etc/logrotate.d/midge.",
    );
    item(
        &mut extra,
        "/run/midge/midge.pid",
        "The pid file of the packaged service.",
    );
    extra.control("SH", ["ENVIRONMENT"]);
    item(
        &mut extra,
        "NOTIFY_SOCKET",
        "Set by systemd for Type=notify services: the broker reports READY=1 once its listeners \
         are open and it runs as its user, and STOPPING=1 when it shuts down.",
    );
    extra.control("SH", ["SEE ALSO"]);
    extra.text([
        bold("midge.conf"),
        roman("(5), "),
        bold("mosquitto"),
        roman("(8), "),
        bold("systemd.service"),
        roman("(5), and /usr/share/doc/midge/operations.md."),
    ]);
    page.push_str(&strip_preamble(&extra.render()));
    page
}

/// `midge.conf(5)`: docs/configuration.md as a man page.
pub(crate) fn midge_conf_5() -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "MIDGE.CONF",
            "5",
            "",
            &format!("midge {VERSION}"),
            "File Formats Manual",
        ],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "midge.conf - the configuration file of the Midge MQTT broker, in Mosquitto's mosquitto.conf format",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([bold("/etc/midge/midge.conf")]);
    markdown(CONFIGURATION_MD, &mut roff);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("midge"),
        roman("(8), "),
        bold("mosquitto.conf"),
        roman("(5)."),
    ]);
    roff.render()
}

/// A `.TP` entry: `tag` in bold, then `text`.
fn item(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(tag)]);
    roff.text([roman(text)]);
}

/// A rendered fragment without the apostrophe preamble `Roff::render` starts every page with
/// (it is already at the top of the page).
fn strip_preamble(rendered: &str) -> String {
    rendered
        .lines()
        .skip_while(|line| line.starts_with(".ie \\n(.g") || line.starts_with(".el .ds Aq"))
        .flat_map(|line| [line, "\n"])
        .collect()
}

/// Renders Markdown (the subset docs/ uses: headings, paragraphs, nested lists, tables, code,
/// emphasis, links) as man(7) roff. The top heading is left out (the page has its NAME);
/// second-level headings become sections, third-level ones subsections, and each table row a
/// `.TP` entry: its first cell as the tag, the other cells as `Header: value` lines.
fn markdown(source: &str, roff: &mut Roff) {
    let mut out = Writer::default();
    for event in Parser::new_ext(source, Options::ENABLE_TABLES) {
        out.event(event, roff);
    }
    out.flush(roff);
}

/// The state of [`markdown`].
#[derive(Debug, Default)]
struct Writer {
    /// The text of the block being read.
    inlines: Vec<Inline>,
    /// The same text, plain, for headings and table headers.
    plain: String,
    bold: usize,
    italic: usize,
    lists: usize,
    /// True from the start of a list item until its first text is written.
    fresh_item: bool,
    /// The table's column names.
    headers: Vec<String>,
    in_head: bool,
    /// The cells of the table row being read.
    cells: Vec<Vec<Inline>>,
}

impl Writer {
    fn event(&mut self, event: Event<'_>, roff: &mut Roff) {
        match event {
            Event::Start(tag) => self.start(tag, roff),
            Event::End(tag) => self.end(tag, roff),
            Event::Text(text) => self.text(&text),
            Event::Code(code) => {
                self.bold += 1;
                self.text(&code);
                self.bold -= 1;
            }
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.inlines.push(line_break()),
            Event::Rule => {
                self.flush(roff);
                roff.control("PP", []);
            }
            _ => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>, roff: &mut Roff) {
        match tag {
            Tag::Heading { .. } => self.flush(roff),
            Tag::Paragraph => {
                self.flush(roff);
                if self.lists == 0 {
                    roff.control("PP", []);
                } else if !self.fresh_item {
                    roff.control("sp", []);
                }
            }
            Tag::List(_) => {
                self.flush(roff);
                if self.lists > 0 {
                    roff.control("RS", ["2"]);
                }
                self.lists += 1;
            }
            Tag::Item => {
                self.flush(roff);
                roff.control("IP", ["\\(bu", "2"]);
                self.fresh_item = true;
            }
            Tag::CodeBlock(_) => {
                self.flush(roff);
                roff.control("PP", []);
                roff.control("RS", ["4"]);
                roff.control("nf", []);
            }
            Tag::Table(_) => {
                self.flush(roff);
                self.headers.clear();
            }
            Tag::TableHead => self.in_head = true,
            Tag::TableRow => self.cells.clear(),
            Tag::TableCell => {
                self.inlines.clear();
                self.plain.clear();
            }
            Tag::Emphasis => self.italic += 1,
            Tag::Strong => self.bold += 1,
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd, roff: &mut Roff) {
        match tag {
            TagEnd::Heading(level) => {
                let title = std::mem::take(&mut self.plain);
                self.inlines.clear();
                match level {
                    HeadingLevel::H1 => {}
                    HeadingLevel::H2 => {
                        roff.control("SH", [title.to_uppercase().as_str()]);
                    }
                    _ => {
                        roff.control("SS", [title.as_str()]);
                    }
                }
            }
            TagEnd::Paragraph | TagEnd::Item => self.flush(roff),
            TagEnd::List(_) => {
                self.flush(roff);
                self.lists = self.lists.saturating_sub(1);
                if self.lists > 0 {
                    roff.control("RE", []);
                }
            }
            TagEnd::CodeBlock => {
                self.flush(roff);
                roff.control("fi", []);
                roff.control("RE", []);
            }
            TagEnd::TableCell => {
                if self.in_head {
                    self.headers.push(std::mem::take(&mut self.plain));
                } else {
                    self.cells.push(std::mem::take(&mut self.inlines));
                }
                self.inlines.clear();
                self.plain.clear();
            }
            TagEnd::TableHead => self.in_head = false,
            TagEnd::TableRow => self.row(roff),
            TagEnd::Emphasis => self.italic = self.italic.saturating_sub(1),
            TagEnd::Strong => self.bold = self.bold.saturating_sub(1),
            _ => {}
        }
    }

    /// One table row as a `.TP` entry.
    fn row(&mut self, roff: &mut Roff) {
        let mut cells = std::mem::take(&mut self.cells).into_iter();
        let Some(tag) = cells.next() else { return };
        roff.control("TP", []);
        roff.text(tag);
        let mut body = Vec::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                body.push(line_break());
            }
            if let Some(header) = self.headers.get(i + 1) {
                body.push(roman(format!("{header}: ")));
            }
            body.extend(cell);
        }
        if !body.is_empty() {
            roff.text(body);
        }
    }

    fn text(&mut self, text: &str) {
        self.plain.push_str(text);
        let inline = if self.bold > 0 {
            bold(text)
        } else if self.italic > 0 {
            italic(text)
        } else {
            roman(text)
        };
        self.inlines.push(inline);
    }

    fn flush(&mut self, roff: &mut Roff) {
        if !self.inlines.is_empty() {
            roff.text(std::mem::take(&mut self.inlines));
            self.fresh_item = false;
        }
        self.plain.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directive rows of docs/configuration.md: name and status.
    fn documented_directives() -> Vec<(String, String)> {
        CONFIGURATION_MD
            .lines()
            .filter(|line| line.starts_with("| `"))
            .filter_map(|line| {
                let name = line.trim_start_matches("| `").split('`').next()?.to_owned();
                let status = line.trim_end_matches('|').rsplit('|').next()?.trim().to_owned();
                Some((name, status))
            })
            .collect()
    }

    /// The page reads as man(7) expects, and every directive of the reference (which a test in
    /// midge-server holds to the parser's tables) is an entry with its status.
    #[test]
    fn midge_conf_5_has_every_directive_with_its_status() {
        let page = midge_conf_5();
        assert!(page.contains(".TH MIDGE.CONF 5"), "{page}");
        assert!(page.contains(".SH DIRECTIVES"), "{page}");
        assert!(page.contains(".SS General"), "{page}");
        let directives = documented_directives();
        assert!(directives.len() > 100, "{}", directives.len());
        for (name, status) in directives {
            let tag = format!(".TP\n\\fB{}\\fR", name.replace('-', "\\-"));
            let at = page
                .find(&tag)
                .unwrap_or_else(|| panic!("{name} is not an entry of midge.conf(5)"));
            let entry = &page[at + tag.len()..];
            let entry = &entry[..entry.find(".TP").unwrap_or(entry.len())];
            assert!(
                entry.contains(&format!("Midge: {}", status.replace('-', "\\-"))),
                "{name}: {entry}"
            );
        }
    }

    #[test]
    fn midge_8_documents_the_flags_and_the_service() {
        let page = midge_8();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble only");
        for needle in [
            ".TH MIDGE 8",
            "\\-c",
            "\\-\\-config\\-file",
            "\\-d",
            "\\-p",
            "\\-v",
            "Read the broker configuration from this mosquitto.conf file",
            "midge pub",
            "midge completions",
            ".SH SIGNALS",
            "SIGHUP",
            ".SH FILES",
            "/etc/midge/midge.conf",
            "NOTIFY_SOCKET",
        ] {
            assert!(page.contains(needle), "{needle} missing:\n{page}");
        }
        // `man` is for packagers: not in the page.
        assert!(!page.contains("midge man"), "{page}");
    }

    #[test]
    fn markdown_blocks_become_roff() {
        let mut roff = Roff::new();
        markdown(
            "# Title\n\nSome *words* and `code-x`.\n\n## Part one\n\n- a\n- b\n  - c\n\n### Sub\n\n\
             | Name | Default |\n|---|---|\n| `x` | 1 |\n",
            &mut roff,
        );
        let page = roff.to_roff();
        assert_eq!(
            page,
            ".PP\nSome \\fIwords\\fR and \\fBcode\\-x\\fR.\n.SH \"PART ONE\"\n.IP \\(bu 2\na\n.IP \\(bu 2\nb\n\
             .RS 2\n.IP \\(bu 2\nc\n.RE\n.SS Sub\n.TP\n\\fBx\\fR\nDefault: 1\n"
        );
    }
}
