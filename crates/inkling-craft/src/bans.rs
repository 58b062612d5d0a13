//! The writer's banned phrases, as a request gets them: inkling's built-in list of overused
//! phrases (`data/banned.txt`), then the config file's, the project's and the request's own
//! ([`inkling_api::BanList`] levels, stacked by the caller), less what the writer allows.
//!
//! A built-in phrase that occurs in the prompt is left out for that request: the writer's
//! own text uses it (a character really named Elara), and an edit must be able to keep it.
//! Phrases the writer bans themselves always apply.

use inkling_api::BanList;

/// The built-in list, as shipped.
pub const BUILTIN: &str = include_str!("../data/banned.txt");

/// The built-in list's phrases and patterns (`/.../` lines).
pub fn builtin() -> (Vec<String>, Vec<String>) {
    let mut phrases = Vec::new();
    let mut patterns = Vec::new();
    for line in BUILTIN.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.strip_prefix('/').and_then(|l| l.strip_suffix('/')) {
            Some(p) if !p.is_empty() => patterns.push(p.to_string()),
            _ => phrases.push(line.to_string()),
        }
    }
    (phrases, patterns)
}

/// What one request bans, and the built-in phrases it leaves out because the prompt uses them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effective {
    pub phrases: Vec<String>,
    pub regex: Vec<String>,
    pub skipped: Vec<String>,
}

/// Resolves a stacked list against the prompt the model reads.
pub fn effective(list: &BanList, prompt: &str) -> Effective {
    let mut out = Effective::default();
    let allowed = |p: &str| list.allow.iter().any(|a| a.trim().to_lowercase() == p.trim().to_lowercase());
    if list.defaults.unwrap_or(true) {
        let lower = prompt.to_lowercase();
        let (phrases, patterns) = builtin();
        for p in phrases.into_iter().filter(|p| !allowed(p)) {
            // A plain containment test: it may skip a phrase the prompt only contains inside a
            // longer word, which errs on the side of the writer's text.
            if lower.contains(&p.to_lowercase()) { out.skipped.push(p) } else { out.phrases.push(p) }
        }
        out.regex.extend(patterns);
    }
    for p in &list.phrases {
        if !out.phrases.contains(p) && !allowed(p) {
            out.phrases.push(p.clone());
        }
    }
    for r in &list.regex {
        if !out.regex.contains(r) {
            out.regex.push(r.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(defaults: Option<bool>, phrases: &[&str], allow: &[&str]) -> BanList {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        BanList { defaults, phrases: s(phrases), regex: Vec::new(), allow: s(allow) }
    }

    #[test]
    fn the_builtin_list_compiles_and_names_the_issues_examples() {
        let (phrases, patterns) = builtin();
        for p in ["Elara", "Lyra", "Kael", "testament to", "shivers down", "tapestry", "barely above a whisper", "嘴角微微上扬"] {
            assert!(phrases.iter().any(|x| x == p), "{p}");
        }
        assert!(inkling_engine::bans::Bans::compile(&phrases, &patterns).unwrap().is_some());
    }

    #[test]
    fn levels_stack_and_the_prompt_keeps_its_own_words() {
        let config = list(None, &["suddenly"], &["Lyra"]);
        let project = list(None, &["Mara"], &[]);
        let request = list(None, &[], &[]);
        let e = effective(&request.over(&project.over(&config)), "The tale of Elara, who sailed.");
        assert!(e.phrases.contains(&"suddenly".to_string()) && e.phrases.contains(&"Mara".to_string()));
        assert!(e.phrases.contains(&"Kael".to_string()));
        assert!(!e.phrases.contains(&"Lyra".to_string()), "allowed in the config");
        assert!(!e.phrases.contains(&"Elara".to_string()) && e.skipped.contains(&"Elara".to_string()), "the prompt uses it");
        // A project that turns the built-in list off keeps its own phrases; a request may
        // turn it back on.
        let off = list(Some(false), &["Mara"], &[]);
        let e = effective(&request.over(&off.over(&config)), "");
        assert_eq!(e.phrases, vec!["suddenly".to_string(), "Mara".to_string()]);
        let on = list(Some(true), &[], &[]);
        assert!(effective(&on.over(&off), "").phrases.contains(&"Kael".to_string()));
    }
}
