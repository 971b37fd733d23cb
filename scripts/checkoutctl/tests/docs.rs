//! The guide and its docs hold together: every relative link in README.md
//! and docs/ reaches a file (and, with `#anchor`, one of its headings), the
//! page a missing secret's message names exists, and the product's text
//! speaks of the product (no issue numbers, no "next" promises).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every Markdown file under docs/.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// The targets of `[text](target)` links outside code, and of `[ref]: target`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code may show link syntax without being a link.
        let line: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            out.push(target.to_owned());
            rest = &after[end..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if let Some((_, target)) = trimmed.split_once("]: ") {
                out.push(target.trim().to_owned());
            }
        }
    }
    out
}

/// A heading's anchor as the forges make it.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(page)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// Why `target`, linked from `page`, does not resolve; `None` when it does.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("an empty link".into());
    }
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let path = if file.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap().join(file)
    };
    if !path.exists() {
        return Some(format!("no file {}", path.display()));
    }
    match anchor {
        Some(anchor) if path.extension().is_some_and(|e| e == "md") => (!anchors(&path)
            .contains(anchor))
        .then(|| format!("no heading #{anchor} in {}", path.display())),
        _ => None,
    }
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let pages = pages();
    assert!(pages.len() > 1, "docs/ holds no page");
    let mut failures = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for target in links(&text) {
            if let Some(why) = broken(page, &target) {
                failures.push(format!("{}: ({target}): {why}", page.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_page_a_missing_secret_names_exists() {
    let root = root().join("README.md");
    let target = platform::config::SECRETS_DOC;
    assert_eq!(broken(&root, target), None, "{target}");
}

#[test]
fn the_product_text_names_no_issue_and_promises_nothing_next() {
    let mut failures = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let issue = lower
                .match_indices("issue ")
                .any(|(i, _)| lower[i + 6..].starts_with(|c: char| c.is_ascii_digit()));
            if issue || lower.contains("(next)") || lower.contains("later issues") {
                failures.push(format!("{}:{}: {line}", page.display(), n + 1));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_readme_is_a_guide_of_about_three_hundred_lines() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines: details belong in docs/"
    );
}

#[test]
fn links_and_slugs_read_as_the_forges_read_them() {
    assert_eq!(
        links("see [a](docs/a.md#x) and `[b](not-a-link)`\n```\n[c](code)\n```\n[d]: ../e.md"),
        vec!["docs/a.md#x", "../e.md"]
    );
    assert_eq!(slug(" Secrets"), "secrets");
    assert_eq!(slug("The fault suite, short"), "the-fault-suite-short");
}
