//! The environment, read once: every variable inkling reads outside clap's flag attributes
//! is named here, and nowhere else in the workspace (the library crates take their settings
//! from the binary). Variables that stand for a flag (`INKLING_MODEL`, `INKLING_DB`, ...)
//! are declared on the flag itself, so a flag overrides its variable.

use std::ffi::OsString;
use std::path::PathBuf;

/// The variables inkling reads, as they were when the command started.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `INKLING_HOME`: everything in one folder (models, adapters, projects, config), for
    /// portable setups and tests.
    pub inkling_home: Option<PathBuf>,
    /// `INKLING_CONFIG`: the config file itself.
    pub inkling_config: Option<PathBuf>,
    /// `INKLING_RECIPES`: the writer's own recipes folder.
    pub inkling_recipes: Option<PathBuf>,
    /// `INKLING_PYTHON`: the Python that runs pip for model fetches (default `python3`).
    pub inkling_python: Option<String>,
    pub xdg_cache_home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// `INKLING_API_KEY`, else `OPENAI_API_KEY`: the remote server's key.
    pub api_key: Option<(&'static str, String)>,
    /// `INKLING_SERVER_KEY`: the key `inkling serve` asks of its clients.
    pub server_key: Option<String>,
    /// `INKLING_KERNELS` (and the older `INKLING_PORTABLE_KERNELS=1`), `INKLING_PREFETCH`.
    pub kernels: Option<String>,
    pub portable_kernels: bool,
    pub prefetch: Option<String>,
}

fn non_empty(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn text(name: &str) -> Option<String> {
    non_empty(name).and_then(|v| v.into_string().ok()).filter(|v| !v.trim().is_empty())
}

impl Env {
    pub fn read() -> Self {
        let path = |name: &str| non_empty(name).map(PathBuf::from);
        Env {
            inkling_home: path("INKLING_HOME"),
            inkling_config: path("INKLING_CONFIG"),
            inkling_recipes: path("INKLING_RECIPES"),
            inkling_python: text("INKLING_PYTHON"),
            xdg_cache_home: path("XDG_CACHE_HOME"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
            home: path("HOME"),
            api_key: text("INKLING_API_KEY").map(|k| ("INKLING_API_KEY", k)).or_else(|| text("OPENAI_API_KEY").map(|k| ("OPENAI_API_KEY", k))),
            server_key: text("INKLING_SERVER_KEY"),
            kernels: text("INKLING_KERNELS"),
            portable_kernels: non_empty("INKLING_PORTABLE_KERNELS").is_some(),
            prefetch: text("INKLING_PREFETCH"),
        }
    }

    /// The variable a flag stands for, when it is set: `config show` tells a value from the
    /// environment from one given as a flag.
    pub fn flag_variable(name: &str) -> Option<String> {
        text(name)
    }
}

/// Where inkling keeps things, from [`Env`].
#[derive(Clone, Debug)]
pub struct Places {
    /// Models, adapters and other things that can be fetched or made again:
    /// `$INKLING_HOME`, else `$XDG_CACHE_HOME/inkling`, else `~/.cache/inkling`.
    pub cache: PathBuf,
    /// Manuscripts: `$INKLING_HOME`, else the platform's data folder
    /// (`$XDG_DATA_HOME/inkling`, `~/.local/share/inkling` on Linux). Never the cache
    /// folder, which cleaners empty.
    pub data: PathBuf,
    /// The config file: `$INKLING_CONFIG`, else `$INKLING_HOME/config.toml`, else
    /// `$XDG_CONFIG_HOME/inkling/config.toml`, else `~/.config/inkling/config.toml`.
    pub config_file: Option<PathBuf>,
    /// The writer's recipes: `$INKLING_RECIPES`, else `$INKLING_HOME/recipes`, else `recipes`
    /// in the config folder.
    pub recipes: Option<PathBuf>,
    pub python: String,
}

impl Places {
    pub fn from_env(env: &Env) -> Self {
        let cache = env
            .inkling_home
            .clone()
            .or_else(|| env.xdg_cache_home.as_ref().map(|x| x.join("inkling")))
            .unwrap_or_else(|| env.home.clone().unwrap_or_else(|| ".".into()).join(".cache").join("inkling"));
        let data = match &env.inkling_home {
            Some(h) => h.clone(),
            None => directories::BaseDirs::new().map(|d| d.data_dir().join("inkling")).unwrap_or_else(|| cache.clone()),
        };
        let config_dir = env.xdg_config_home.clone().or_else(|| env.home.as_ref().map(|h| h.join(".config"))).map(|d| d.join("inkling"));
        let config_file = env.inkling_config.clone().or_else(|| env.inkling_home.as_ref().map(|h| h.join("config.toml"))).or_else(|| config_dir.as_ref().map(|d| d.join("config.toml")));
        let recipes = env.inkling_recipes.clone().or_else(|| env.inkling_home.as_ref().map(|h| h.join("recipes"))).or_else(|| config_dir.map(|d| d.join("recipes")));
        Places { cache, data, config_file, recipes, python: env.inkling_python.clone().unwrap_or_else(|| "python3".into()) }
    }

    /// Catalog models are fetched here.
    pub fn models(&self) -> PathBuf {
        self.cache.join("models")
    }

    /// Feedback and pages adapters, by project.
    pub fn adapters(&self) -> PathBuf {
        self.cache.join("adapters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inkling_home_holds_everything_and_xdg_folders_are_followed_otherwise() {
        let home = Env { inkling_home: Some("/h".into()), home: Some("/root".into()), ..Env::default() };
        let p = Places::from_env(&home);
        assert_eq!((p.cache.as_path(), p.data.as_path(), p.config_file.as_deref()), (std::path::Path::new("/h"), std::path::Path::new("/h"), Some(std::path::Path::new("/h/config.toml"))));
        assert_eq!(p.models(), PathBuf::from("/h/models"));
        assert_eq!(p.recipes, Some(PathBuf::from("/h/recipes")), "the writer's recipes too");
        let xdg = Env { xdg_cache_home: Some("/c".into()), xdg_config_home: Some("/cfg".into()), home: Some("/root".into()), ..Env::default() };
        let p = Places::from_env(&xdg);
        assert_eq!(p.cache, PathBuf::from("/c/inkling"));
        assert_eq!(p.config_file, Some(PathBuf::from("/cfg/inkling/config.toml")));
        assert_eq!(p.recipes, Some(PathBuf::from("/cfg/inkling/recipes")));
        assert_eq!(p.python, "python3");
        let plain = Places::from_env(&Env { home: Some("/root".into()), inkling_config: Some("/etc/ink.toml".into()), ..Env::default() });
        assert_eq!(plain.cache, PathBuf::from("/root/.cache/inkling"));
        assert_eq!(plain.config_file, Some(PathBuf::from("/etc/ink.toml")));
    }
}
