//! `inkling config`, the config file loaded once for every command, and the ban flags that
//! generate, chat and the tools share.

use anyhow::Result;
use clap::{Args, Subcommand};
use inkling_api::BanList;
use inkling_craft::config::Config;

/// The config file, read on first use.
pub fn config() -> Result<&'static Config> {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let c = Config::load()?;
    Ok(CONFIG.get_or_init(|| c))
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Where the config file is looked for, and what it sets (with the built-in banned list).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Print the config file's path.
    Path,
}

pub fn run(c: ConfigCommand) -> Result<()> {
    let path = inkling_craft::config::config_path();
    match c {
        ConfigCommand::Path => {
            let Some(p) = path else { anyhow::bail!("no config folder: set HOME, XDG_CONFIG_HOME or INKLING_CONFIG") };
            println!("{}", p.display());
        }
        ConfigCommand::Show { json } => {
            let config = config()?;
            let (phrases, patterns) = inkling_craft::bans::builtin();
            if json {
                let v = serde_json::json!({"path": path, "exists": path.as_ref().is_some_and(|p| p.is_file()), "config": config, "builtin_bans": {"phrases": phrases, "regex": patterns}});
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            match &path {
                Some(p) if p.is_file() => println!("# {}", p.display()),
                Some(p) => println!("# {} (not there: the defaults)", p.display()),
                None => println!("# no config folder (set HOME, XDG_CONFIG_HOME or INKLING_CONFIG): the defaults"),
            }
            print!("{}", config.to_toml());
            let on = config.bans.defaults.unwrap_or(true);
            println!("\n# built-in banned phrases ({}): {}", if on { "on" } else { "off" }, phrases.join(", "));
        }
    }
    Ok(())
}

/// Banned phrases for one request, over the config file's and a project's.
#[derive(Args, Debug, Clone, Default)]
pub struct BanArgs {
    /// A phrase that must never appear in the answer (repeatable). Case-insensitive; the
    /// model takes back the words that began it and writes something else.
    #[arg(long, value_name = "PHRASE")]
    pub ban: Vec<String>,
    /// A regular expression banned the same way (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub ban_regex: Vec<String>,
    /// Leave out inkling's built-in list of overused phrases (Elara, "a testament to", ...;
    /// `inkling config show` lists them).
    #[arg(long)]
    pub no_default_bans: bool,
}

impl BanArgs {
    /// This request's level of the list.
    pub fn level(&self) -> BanList {
        BanList { defaults: self.no_default_bans.then_some(false), phrases: self.ban.clone(), regex: self.ban_regex.clone(), allow: Vec::new() }
    }

    /// This request's list over the config file's (and a project's, when given).
    pub fn stacked(&self, project: Option<&BanList>) -> Result<BanList> {
        let base = config()?.bans.clone();
        let below = match project {
            Some(p) => p.over(&base),
            None => base,
        };
        Ok(self.level().over(&below))
    }
}
