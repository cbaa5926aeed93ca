//! docs/assembler.md against the real `--help` output, so the reference cannot drift from the
//! tool: the commands `sysext-assembler --help` lists are exactly the doc's `## sysext-assembler
//! COMMAND` sections; each section's `usage` block is the command's `Usage:` line; its options
//! table lists exactly the options of `COMMAND --help`, each with the same value name, the row of
//! an option with a `[default: ...]` states that default, and the row of a choice names each of
//! its `[possible values: ...]`.

use std::collections::BTreeMap;

use crate::markdown::{fenced_blocks, heading};

/// One option as `--help` or the doc's table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Opt {
    pub value: Option<String>,
    pub default: Option<String>,
    /// clap's `[possible values: ...]`, the names of a choice.
    pub possible: Vec<String>,
}

/// What the comparison needs of one command's `--help`.
#[derive(Debug)]
pub struct Help {
    pub usage: String,
    pub options: BTreeMap<String, Opt>,
}

/// The command names of the top-level help's `Commands:` list, without clap's `help`.
pub fn commands(top_help: &str) -> Vec<String> {
    let mut in_commands = false;
    let mut names = Vec::new();
    for line in top_help.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            // A description too long for one line continues on lines indented further.
            if line[2..].starts_with(' ') {
                continue;
            }
            let name = line.split_whitespace().next().unwrap_or("");
            if name != "help" {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Parses clap's long help. Option lines are indented by 2 (`-h, --help`) or 6 (`--name <NAME>`)
/// spaces, their descriptions by 10; the general `--help` and the flag `-V, --version` are left
/// out, since every command has them (`build`'s `--version <VERSION>` takes a value and stays).
pub fn parse_help(text: &str) -> Help {
    let usage = text
        .lines()
        .find_map(|line| line.strip_prefix("Usage: "))
        .expect("--help has a Usage: line")
        .trim()
        .to_string();
    let mut options = BTreeMap::new();
    let mut current: Option<(String, Opt)> = None;
    let mut in_options = false;
    let mut finish = |current: &mut Option<(String, Opt)>| {
        if let Some((name, opt)) = current.take() {
            let general = name == "--help" || (name == "--version" && opt.value.is_none());
            if !general {
                options.insert(name, opt);
            }
        }
    };
    for line in text.lines() {
        if line == "Options:" {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        if !line.is_empty() && !line.starts_with(' ') {
            // The next heading (`Example:`): its command lines are no options.
            break;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            finish(&mut current);
            let name = trimmed
                .split([' ', ','])
                .find(|word| word.starts_with("--"))
                .expect("an option line names a long option")
                .to_string();
            let value = trimmed
                .find('<')
                .map(|start| trimmed[start + 1..trimmed.rfind('>').unwrap()].to_string());
            current = Some((
                name,
                Opt {
                    value,
                    default: None,
                    possible: Vec::new(),
                },
            ));
        } else if let Some((_, opt)) = current.as_mut() {
            if let Some(start) = line.find("[default: ") {
                let rest = &line[start + "[default: ".len()..];
                opt.default = Some(rest[..rest.find(']').unwrap()].to_string());
            }
            if let Some(start) = line.find("[possible values: ") {
                let rest = &line[start + "[possible values: ".len()..];
                opt.possible = rest[..rest.find(']').unwrap()]
                    .split(", ")
                    .map(str::to_string)
                    .collect();
            }
        }
    }
    finish(&mut current);
    Help { usage, options }
}

/// One `## sysext-assembler COMMAND` section of the doc: its usage blocks and options table.
#[derive(Debug, Default)]
pub struct Section {
    pub usages: Vec<String>,
    pub options: BTreeMap<String, (Opt, String)>,
}

/// The doc's sections by command. A table row documents an option when its first cell starts
/// with a code span `--name` or `--name <VALUE>`; the rest of the row is its description.
pub fn parse_doc(doc: &str) -> BTreeMap<String, Section> {
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if line.starts_with("## ") {
            current = heading(line)
                .and_then(|h| h.strip_prefix("sysext-assembler "))
                .map(str::to_string);
        }
        if let Some(name) = &current {
            let text = sections.entry(name.clone()).or_default();
            text.push_str(line);
            text.push('\n');
        }
    }
    sections
        .into_iter()
        .map(|(name, text)| {
            let mut section = Section::default();
            for block in fenced_blocks(&text).expect("assembler.md's code blocks") {
                if block.kind.as_deref() == Some("usage") {
                    section.usages.push(block.body.trim().to_string());
                }
            }
            for line in text.lines() {
                let Some(row) = line.strip_prefix("| `-") else {
                    continue;
                };
                // Table cells escape `|` as `\|`, code spans included.
                let row = format!("`-{}", row.replace("\\|", "\u{0}"));
                let end = row[1..].find('`').expect("a closed code span") + 1;
                let span = row[1..end].replace('\u{0}', "|");
                let name = span.split(' ').next().unwrap().to_string();
                let value = span
                    .find('<')
                    .map(|start| span[start + 1..span.rfind('>').unwrap()].to_string());
                let description = row[end + 1..].replace('\u{0}', "|").replace('`', "");
                section.options.insert(
                    name,
                    (
                        Opt {
                            value,
                            default: None,
                            possible: Vec::new(),
                        },
                        description,
                    ),
                );
            }
            (name, section)
        })
        .collect()
}

/// Every disagreement between the doc and the help texts (`helps`: command name to its
/// `--help`); empty when they agree.
pub fn problems(doc: &str, commands: &[String], helps: &BTreeMap<String, String>) -> Vec<String> {
    let sections = parse_doc(doc);
    let mut problems = Vec::new();
    for command in commands {
        if !sections.contains_key(command) {
            problems.push(format!(
                "`sysext-assembler --help` lists {command}, which has no `## sysext-assembler {command}` section"
            ));
        }
    }
    for (command, section) in &sections {
        let Some(help_text) = helps.get(command) else {
            problems.push(format!(
                "the doc has a section for `sysext-assembler {command}`, which --help does not list"
            ));
            continue;
        };
        let help = parse_help(help_text);
        match section.usages.as_slice() {
            [usage] if *usage == help.usage => {}
            [usage] => problems.push(format!(
                "{command}: the doc's usage is {usage:?}, --help's is {:?}",
                help.usage
            )),
            other => problems.push(format!(
                "{command}: {} usage blocks, expected one: {:?}",
                other.len(),
                help.usage
            )),
        }
        for (name, opt) in &help.options {
            let Some((documented, description)) = section.options.get(name) else {
                problems.push(format!(
                    "{command}: `{name}` is in --help but not in the doc's options table"
                ));
                continue;
            };
            if documented.value != opt.value {
                problems.push(format!(
                    "{command}: `{name}` takes {:?} in --help, {:?} in the doc",
                    opt.value, documented.value
                ));
            }
            if let Some(default) = &opt.default {
                let stated = [format!("default {default}"), format!("default: {default}")];
                if !stated.iter().any(|s| description.contains(s.as_str())) {
                    problems.push(format!(
                        "{command}: `{name}` defaults to {default:?} (--help), which its row does not state as `default {default}`"
                    ));
                }
            }
            let words: Vec<&str> = description
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .collect();
            for value in &opt.possible {
                if !words.contains(&value.as_str()) {
                    problems.push(format!(
                        "{command}: `{name}` accepts {value:?} (--help's possible values), which its row does not name"
                    ));
                }
            }
        }
        for name in section.options.keys() {
            if !help.options.contains_key(name) {
                problems.push(format!(
                    "{command}: the doc lists `{name}`, which --help does not know"
                ));
            }
        }
    }
    problems
}
