//! Where the ponder model cache and the Hugging Face hub cache live, from the environment.
//!
//! The lookups take the environment as a function so tests can pass their own values:
//! environment variables are process-global and tests run in parallel.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::Error;

/// `$PONDER_HOME/models`, else `$XDG_CACHE_HOME/ponder/models`, else `$HOME/.cache/ponder/models`.
pub fn cache_dir() -> Result<PathBuf, Error> {
    cache_dir_with(|k| std::env::var_os(k))
}

/// The Hugging Face hub cache, as `huggingface_hub` finds it: `$HF_HUB_CACHE`, else the legacy
/// `$HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
/// `$HOME/.cache/huggingface/hub`.
pub fn hf_cache_dir() -> Option<PathBuf> {
    hf_cache_dir_with(|k| std::env::var_os(k))
}

/// A variable's value, with empty values counted as unset (as `FOO= cmd` is meant).
fn non_empty(var: &impl Fn(&str) -> Option<OsString>, key: &str) -> Option<OsString> {
    var(key).filter(|v| !v.is_empty())
}

pub(crate) fn cache_dir_with(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, Error> {
    if let Some(home) = non_empty(&var, "PONDER_HOME") {
        return Ok(PathBuf::from(home).join("models"));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(xdg) = non_empty(&var, "XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(xdg.join("ponder").join("models"));
    }
    match non_empty(&var, "HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("ponder").join("models")),
        None => Err(Error::NoCacheDir),
    }
}

pub(crate) fn hf_cache_dir_with(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let home = non_empty(&var, "HOME").map(PathBuf::from);
    // huggingface_hub runs expanduser on these, so `HF_HOME='~/hf'` works there and should here.
    let expand = |v: OsString| -> PathBuf {
        let p = PathBuf::from(v);
        match (p.strip_prefix("~"), &home) {
            (Ok(rest), Some(h)) => h.join(rest),
            _ => p,
        }
    };
    if let Some(v) = non_empty(&var, "HF_HUB_CACHE").or_else(|| non_empty(&var, "HUGGINGFACE_HUB_CACHE")) {
        return Some(expand(v));
    }
    if let Some(v) = non_empty(&var, "HF_HOME") {
        return Some(expand(v).join("hub"));
    }
    if let Some(v) = non_empty(&var, "XDG_CACHE_HOME") {
        return Some(expand(v).join("huggingface").join("hub"));
    }
    home.map(|h| h.join(".cache").join("huggingface").join("hub"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| pairs.iter().find(|(name, _)| *name == k).map(|(_, v)| OsString::from(v))
    }

    fn check_cache(pairs: &[(&str, &str)], expected: &str) {
        assert_eq!(cache_dir_with(env(pairs)).ok(), Some(PathBuf::from(expected)), "{pairs:?}");
    }

    fn check_hf(pairs: &[(&str, &str)], expected: Option<&str>) {
        assert_eq!(hf_cache_dir_with(env(pairs)), expected.map(PathBuf::from), "{pairs:?}");
    }

    #[test]
    fn cache_dir_precedence() {
        let all = [("PONDER_HOME", "/p"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")];
        check_cache(&all, "/p/models");
        check_cache(&all[1..], "/x/ponder/models");
        check_cache(&all[2..], "/h/.cache/ponder/models");
        check_cache(&[("PONDER_HOME", ""), ("XDG_CACHE_HOME", ""), ("HOME", "/h")], "/h/.cache/ponder/models");
        check_cache(&[("XDG_CACHE_HOME", "relative/cache"), ("HOME", "/h")], "/h/.cache/ponder/models");
        check_cache(&[("PONDER_HOME", "rel")], "rel/models");
        assert!(matches!(cache_dir_with(env(&[])), Err(Error::NoCacheDir)));
        assert!(matches!(cache_dir_with(env(&[("XDG_CACHE_HOME", "rel")])), Err(Error::NoCacheDir)));
    }

    #[test]
    fn hf_cache_dir_precedence() {
        let all = [
            ("HF_HUB_CACHE", "/c"),
            ("HUGGINGFACE_HUB_CACHE", "/legacy"),
            ("HF_HOME", "/hf"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        check_hf(&all, Some("/c"));
        check_hf(&all[1..], Some("/legacy"));
        check_hf(&all[2..], Some("/hf/hub"));
        check_hf(&all[3..], Some("/x/huggingface/hub"));
        check_hf(&all[4..], Some("/h/.cache/huggingface/hub"));
        check_hf(&[("HF_HOME", "~/hf"), ("HOME", "/h")], Some("/h/hf/hub"));
        check_hf(&[("HF_HUB_CACHE", ""), ("HOME", "/h")], Some("/h/.cache/huggingface/hub"));
        check_hf(&[], None);
    }

    #[test]
    fn real_environment_agrees_with_the_helper() {
        // Read-only: compares the public functions with the helpers on this process's environment.
        let var = |k: &str| std::env::var_os(k);
        assert_eq!(cache_dir().ok(), cache_dir_with(var).ok());
        assert_eq!(hf_cache_dir(), hf_cache_dir_with(var));
    }
}
