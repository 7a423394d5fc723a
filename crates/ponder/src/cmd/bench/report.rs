//! The one report writer of `ponder bench`: every measurement goes, as JSON with a
//! Markdown table beside it, into the directory the user names with `--out`, and
//! optionally into its section of a Markdown file (`--markdown BENCHMARKS.md`); the table
//! is printed and every file written is named.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

/// Where a benchmark's results go.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Directory for NAME.json (the measurements) and NAME.md (their table), NAME being the
    /// benchmark (engine, search, serve, verify); created if missing
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also rewrite the NAME section (between `<!-- bench:NAME -->` markers, appended if
    /// missing) of this Markdown file, e.g. BENCHMARKS.md
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

impl ReportArgs {
    /// Writes `value` and `table` for benchmark `name`, prints the table and what was
    /// written.
    pub fn write(&self, name: &str, value: &impl Serialize, table: &str) -> Result<()> {
        std::fs::create_dir_all(&self.out).with_context(|| format!("creating {}", self.out.display()))?;
        let json = self.out.join(format!("{name}.json"));
        write(&json, &(serde_json::to_string_pretty(value)? + "\n"))?;
        let md = self.out.join(format!("{name}.md"));
        write(&md, table)?;
        println!("{table}");
        let mut written = format!("wrote {} and {}", json.display(), md.display());
        if let Some(path) = &self.markdown {
            update_markdown(path, name, table)?;
            written.push_str(&format!(", and the {name} section of {}", path.display()));
        }
        println!("{written}");
        Ok(())
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, appending
/// the section if it is missing.
fn update_markdown(path: &Path, name: &str, body: &str) -> Result<()> {
    let (open, close) = (format!("<!-- bench:{name} -->"), format!("<!-- /bench:{name} -->"));
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let section = format!("{open}\n{body}{close}");
    let new = match (old.find(&open), old.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &old[..a], section, &old[b + close.len()..]),
        _ => format!("{old}\n{section}\n"),
    };
    write(path, &new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("B.md");
        std::fs::write(&md, "# Title\n<!-- bench:a -->\nold\n<!-- /bench:a -->\ntail\n").unwrap();
        update_markdown(&md, "a", "new\n").unwrap();
        update_markdown(&md, "b", "other\n").unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        assert_eq!(text, "# Title\n<!-- bench:a -->\nnew\n<!-- /bench:a -->\ntail\n\n<!-- bench:b -->\nother\n<!-- /bench:b -->\n");
    }

    #[test]
    fn results_go_into_the_chosen_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("results/today");
        let args = ReportArgs { out: out.clone(), markdown: None };
        args.write("engine", &serde_json::json!({ "rows": [1, 2] }), "| a |\n").unwrap();
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("engine.json")).unwrap()).unwrap();
        assert_eq!(json["rows"][1], 2);
        assert_eq!(std::fs::read_to_string(out.join("engine.md")).unwrap(), "| a |\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing written beside the directory");
    }
}
