//! Which language a writer's text is in, as far as the catalog tells its models apart, and
//! the note for a writer whose model cannot write it.

use std::path::Path;

/// The language of a writer's text as far as [`language_note`] tells them apart: `"zh"`
/// when at least a fifth of its letters are CJK ideographs (Chinese prose mixes in Latin
/// names and numbers), else `"en"`.
pub fn text_language(text: &str) -> &'static str {
    let (mut letters, mut han) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F) {
            han += 1;
        }
    }
    if han > 0 && han * 5 >= letters { "zh" } else { "en" }
}

/// A note for a writer whose text is in a language the catalog model in `file` does not
/// write (SmolLM2 turns Chinese into invented characters), naming the catalog models that
/// do, best first; `None` when the model writes it or is not in the catalog.
pub fn language_note(file: &Path, text: &str) -> Option<String> {
    let name = file.file_name()?.to_str()?;
    let model = crate::models().iter().find(|m| m.file_name.eq_ignore_ascii_case(name))?;
    let lang = text_language(text);
    if model.writes(lang) {
        return None;
    }
    let language = if lang == "zh" { "Chinese" } else { "English" };
    let better: Vec<&str> = crate::models().iter().rev().filter(|m| m.writes(lang) && m.name.contains("instruct")).map(|m| m.name.as_str()).collect();
    let first = better.first()?;
    Some(format!("note: {} does not write {language}; its answer will not be usable. Use --model {} (or INKLING_MODEL={first})", model.name, better.join(" or --model "),))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_in_a_language_the_model_cannot_write_gets_a_note_naming_one_that_can() {
        assert_eq!(text_language("今天天气很好，我想去公园散步。"), "zh");
        assert_eq!(text_language("李白在 Chang'an 写诗，一共 3 首。"), "zh");
        assert_eq!(text_language("The letter said 你好 at the end of a long English page."), "en");
        assert_eq!(text_language("Once upon a time"), "en");
        let smol = Path::new("/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let note = language_note(smol, "今天天气很好，我想去公园散步。").expect("SmolLM2 cannot write Chinese");
        assert!(note.contains("smollm2-135m-instruct does not write Chinese"), "{note}");
        assert!(note.contains("--model qwen2.5-coder-1.5b-instruct or --model qwen2.5-coder-0.5b-instruct"), "{note}");
        assert!(note.ends_with("(or INKLING_MODEL=qwen2.5-coder-1.5b-instruct)"), "{note}");
        assert_eq!(language_note(smol, "Once upon a time"), None);
        assert_eq!(language_note(Path::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"), "今天天气很好"), None);
        assert_eq!(language_note(Path::new("my-own-model.gguf"), "今天天气很好"), None, "only catalog models are known");
    }
}
