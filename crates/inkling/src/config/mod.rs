//! Configuration, read in one place: the environment ([`Env`]), the folders it names
//! ([`Places`]) and the config file ([`ConfigFile`]), loaded once when the command starts.
//! Precedence is flags over environment over file over built-in; `inkling config show`
//! prints each setting with where it came from. Also the ban flags that generate, chat and
//! the tools share.

mod env;
mod file;
mod show;

pub use env::{Env, Places};
pub use file::ConfigFile;
pub use file::{HOST, MAX_TOKENS, MIN_P, PORT, REPEAT_PENALTY, TEMPERATURE, TOP_K, TOP_P};

use crate::ModelArgs;
use anyhow::Result;
use clap::{Args, Subcommand};
use inkling_api::BanList;

struct Loaded {
    env: Env,
    places: Places,
    file: ConfigFile,
}

static LOADED: std::sync::OnceLock<Loaded> = std::sync::OnceLock::new();

/// The environment and the folders it names, with the file's settings left at their defaults.
fn bare() -> Loaded {
    let env = Env::read();
    let places = Places::from_env(&env);
    Loaded { env, places, file: ConfigFile::default() }
}

fn read() -> Result<Loaded> {
    let mut loaded = bare();
    if let Some(p) = &loaded.places.config_file {
        loaded.file = ConfigFile::load_from(p, loaded.env.home.as_deref())?;
    }
    Ok(loaded)
}

/// Reads the environment and the config file; `main` calls it before any command, so a
/// broken file is named before anything runs.
pub fn init() -> Result<()> {
    let loaded = read()?;
    let _ = LOADED.set(loaded);
    Ok(())
}

fn loaded() -> &'static Loaded {
    // `init` ran first in `main`; without it (it failed and was reported) the environment
    // is still read, and the file's settings are left out.
    LOADED.get_or_init(bare)
}

pub fn env() -> &'static Env {
    &loaded().env
}

pub fn places() -> &'static Places {
    &loaded().places
}

/// The config file's settings (the defaults where there is none).
pub fn file() -> &'static ConfigFile {
    &loaded().file
}

/// The model flags the config file gives, under those of the command line and environment.
pub fn model_defaults() -> ModelArgs {
    let m = &file().model;
    ModelArgs {
        model: m.name.clone(),
        adapter: m.adapter.clone(),
        threads: m.threads,
        ctx: m.ctx,
        backend: m.backend.clone(),
        base_url: m.base_url.clone(),
        remote_model: m.remote_model.clone(),
        api_key_file: m.api_key_file.clone(),
    }
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

/// `inkling config`: `cli` are the global model flags as given (before the file's are
/// put under them), so each setting's source can be told.
pub fn run(cli: &ModelArgs, c: ConfigCommand) -> Result<()> {
    let path = places().config_file.clone();
    match c {
        ConfigCommand::Path => {
            let Some(p) = path else { anyhow::bail!("no config folder: set HOME, XDG_CONFIG_HOME or INKLING_CONFIG") };
            println!("{}", p.display());
        }
        ConfigCommand::Show { json } => show::show(cli, path.as_deref(), json)?,
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
        let base = file().bans.clone();
        let below = match project {
            Some(p) => p.over(&base),
            None => base,
        };
        Ok(self.level().over(&below))
    }
}
