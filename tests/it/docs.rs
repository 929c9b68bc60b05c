//! The README and the pages under `docs/` link to each other: every relative link between them
//! must lead to a file that exists and, when it names a `#fragment`, to a heading of that file.
//! The README links to each page of `docs/`, one page per topic.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The pages of `docs/`, one per topic, each linked from the README.
const PAGES: [&str; 10] = [
    "configuration.md",
    "api.md",
    "tokens-and-keys.md",
    "forward-auth.md",
    "oidc.md",
    "recovery.md",
    "administration.md",
    "operations.md",
    "performance.md",
    "development.md",
];

/// A link found in a Markdown file: where it is, and what it points to.
struct Link {
    /// The file the link is written in.
    file: PathBuf,
    /// Its line in that file, counted from 1.
    line: usize,
    /// The target as written, e.g. `configuration.md#settings` or `#throttling`.
    target: String,
}

/// The project's folder, which holds `README.md` and `docs/`.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every `docs/*.md`, the pages in name order.
fn markdown_files() -> Vec<PathBuf> {
    let docs = root().join("docs");
    let entries = fs::read_dir(&docs).unwrap_or_else(|e| panic!("{}: {e}", docs.display()));
    let mut pages: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", docs.display())).path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    pages.sort();
    let mut files = vec![root().join("README.md")];
    files.extend(pages);
    files
}

/// The text of a file, or a panic that names it.
fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of a Markdown text outside fenced code blocks (from a line that starts with three
/// backticks to the next), each with its line number.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// Every `[text](target)` link of a Markdown file, outside fenced code blocks and inline code
/// (a code span may run over several lines).
fn links_in(file: &Path) -> Vec<Link> {
    let text = read(file);
    let mut links = Vec::new();
    let mut in_code = false;
    for (line_number, line) in prose_lines(&text) {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '`' {
                in_code = !in_code;
            } else if !in_code && chars[i] == ']' && chars.get(i + 1) == Some(&'(') {
                let target: String =
                    chars[i + 2..].iter().take_while(|c| **c != ')' && !c.is_whitespace()).collect();
                i += 1 + target.chars().count();
                links.push(Link { file: file.to_path_buf(), line: line_number, target });
            }
            i += 1;
        }
    }
    links
}

/// Whether a link leaves the project (a web address or a mail address).
fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"].iter().any(|scheme| target.starts_with(scheme))
}

/// A path with its `.` and `..` parts resolved, without asking the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// The file a relative link leads to: its path resolved against the folder of the file the
/// link is written in, or that file itself for a link to one of its own headings (`#x`).
fn resolve(link: &Link) -> PathBuf {
    let path = link.target.split('#').next().unwrap_or_default();
    if path.is_empty() {
        link.file.clone()
    } else {
        let folder = link.file.parent().expect("a Markdown file is in a folder");
        normalize(&folder.join(path))
    }
}

/// GitHub's anchor for a heading: the text lower-cased, every character but letters, digits,
/// spaces, hyphens and underscores removed, and each space turned into a hyphen
/// (`## Tokens and keys` is `#tokens-and-keys`).
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (`#` to `######`, outside code blocks). As on
/// GitHub, a heading whose anchor is taken already gets `-1`, `-2`, … after it.
fn anchors(file: &Path) -> Vec<String> {
    let text = read(file);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = Vec::new();
    for (_, line) in prose_lines(&text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        let Some(heading) = line[hashes..].strip_prefix(' ') else { continue };
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let base = anchor(heading.trim().trim_end_matches('#').trim());
        let count = seen.entry(base.clone()).or_insert(0);
        anchors.push(if *count == 0 { base } else { format!("{base}-{count}") });
        *count += 1;
    }
    anchors
}

/// What is wrong with a relative link, if anything: a file that does not exist, or a fragment
/// that names no heading of its file.
fn problem(link: &Link) -> Option<String> {
    let target = resolve(link);
    if !target.is_file() {
        return Some(format!("{} does not exist", shown(&target)));
    }
    let fragment = link.target.split_once('#').map(|(_, fragment)| fragment)?;
    if target.extension().is_none_or(|extension| extension != "md") {
        return Some(format!("#{fragment}, but {} is not a Markdown file", shown(&target)));
    }
    if anchors(&target).iter().any(|anchor| anchor == fragment) {
        None
    } else {
        Some(format!("{} has no heading #{fragment}", shown(&target)))
    }
}

/// A file's path from the project's folder, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

#[test]
fn every_link_between_the_readme_and_the_docs_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        for link in links_in(&file).iter().filter(|link| !is_external(&link.target)) {
            if let Some(problem) = problem(link) {
                broken.push(format!("{}:{}: ({}) {problem}", shown(&link.file), link.line, link.target));
            }
        }
    }
    assert!(broken.is_empty(), "{} broken links:\n{}", broken.len(), broken.join("\n"));
}

#[test]
fn the_docs_have_a_page_per_topic() {
    let readme = root().join("README.md");
    let linked: Vec<PathBuf> =
        links_in(&readme).iter().filter(|link| !is_external(&link.target)).map(resolve).collect();
    let mut missing = Vec::new();
    for page in PAGES {
        let path = root().join("docs").join(page);
        if !path.is_file() {
            missing.push(format!("docs/{page} does not exist"));
        }
        if !linked.contains(&path) {
            missing.push(format!("README.md does not link to docs/{page}"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
