//! `inkling voice build|show|clear --project P`: the writer's voice profile, built from the
//! text the authorship ledger marks as theirs, which prose tools rank their candidates by.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct VoiceArgs {
    /// The project whose manuscript the profile is of.
    #[arg(long, global = true)]
    project: Option<String>,
    /// The project database (default: inkling.db in the data folder, ~/.local/share/inkling on Linux).
    #[arg(long, env = "INKLING_DB", global = true)]
    db: Option<PathBuf>,
    /// Print the profile as JSON (its measures, not the character model).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: VoiceCommand,
}

#[derive(Subcommand, Debug)]
enum VoiceCommand {
    /// Build (or rebuild) the profile from the manuscript's writer-typed text and describe it.
    Build,
    /// Describe the profile built last, and when.
    Show,
    /// Forget the profile: candidates keep the model's order again.
    Clear,
}

pub fn run(args: VoiceArgs) -> Result<()> {
    let Some(name) = args.project.as_deref() else {
        anyhow::bail!("which project? pass --project NAME (`inkling project list` shows them)");
    };
    let mut store = inkling_store::Store::open(&crate::project::db_or_default(args.db.as_deref()))?;
    let project = store.project(name)?;
    let record = match args.command {
        VoiceCommand::Build => store.build_voice(&project)?,
        VoiceCommand::Show => match store.voice(&project)? {
            Some(r) => r,
            None => anyhow::bail!("project `{name}` has no voice profile yet; `inkling voice build --project {name}` makes one from your own writing"),
        },
        VoiceCommand::Clear => {
            store.clear_voice(&project)?;
            eprintln!("forgot the voice profile of {name}; candidates keep the model's order");
            return Ok(());
        }
    };
    let profile = &record.profile;
    if args.json {
        let v = serde_json::json!({ "built_at": record.built_at, "script": profile.script, "units": profile.units, "habits": profile.habits, "features": profile.features, "description": profile.describe() });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for line in profile.describe() {
        println!("{line}");
    }
    eprintln!("(prose tools run with --project {name} rank their candidates by this voice; --no-voice keeps the model's order)");
    Ok(())
}
