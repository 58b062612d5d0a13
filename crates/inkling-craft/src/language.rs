//! Which language a tool answers in: the writer's text's own (detected with `whatlang`), or the
//! one the writer asks for. Chat prompts are written in English, and a small model answers an
//! English instruction in English even when the text it works on is Chinese, so a text in any
//! other language gets a directive in that language appended to the instruction. Answers are
//! checked afterwards, and one in the wrong language ranks last.

use whatlang::{Lang, Script};

/// The language of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Language {
    /// One `whatlang` knows, so answers can be checked against it.
    Known(Lang),
    /// A writer's own name for it ("Old Norse"), told to the model as given and not checked.
    Named(String),
}

impl Language {
    /// The language of `text`. Short or ambiguous Latin-script text counts as English, the
    /// language the prompts are written in; other scripts are told apart reliably by script.
    pub fn of(text: &str) -> Language {
        match whatlang::detect(text) {
            Some(info) if info.script() != Script::Latin || info.is_reliable() => Language::Known(info.lang()),
            _ => Language::Known(Lang::Eng),
        }
    }

    /// A language the writer named: an English or native name ("French", "中文", "Deutsch"),
    /// or an ISO 639-1/639-3 code ("zh", "fra"). Anything else is taken as a name as given.
    pub fn named(name: &str) -> Language {
        let n = name.trim();
        let lower = n.to_lowercase();
        let alias = match lower.as_str() {
            "zh" | "chinese" | "中文" | "汉语" | "漢語" | "普通话" | "简体中文" | "繁體中文" | "mandarin" => Some(Lang::Cmn),
            "en" | "english" => Some(Lang::Eng),
            "ja" | "japanese" | "日本語" => Some(Lang::Jpn),
            "ko" | "korean" | "한국어" => Some(Lang::Kor),
            "fr" => Some(Lang::Fra),
            "de" => Some(Lang::Deu),
            "es" => Some(Lang::Spa),
            "it" => Some(Lang::Ita),
            "pt" => Some(Lang::Por),
            "ru" => Some(Lang::Rus),
            _ => None,
        };
        let found = alias.or_else(|| Lang::from_code(lower.as_str())).or_else(|| Lang::all().iter().copied().find(|l| l.eng_name().eq_ignore_ascii_case(n) || l.name() == n));
        match found {
            Some(l) => Language::Known(l),
            None => Language::Named(n.to_string()),
        }
    }

    /// Its name in English, as the prompts' `language` variable.
    pub fn name(&self) -> String {
        match self {
            Language::Known(Lang::Cmn) => "Chinese".into(),
            Language::Known(l) => l.eng_name().into(),
            Language::Named(n) => n.clone(),
        }
    }

    pub fn is_english(&self) -> bool {
        *self == Language::Known(Lang::Eng)
    }

    /// The instruction appended to a chat prompt, written in the language itself where we
    /// can (models follow that far more often). `json` answers keep their English keys.
    pub fn directive(&self, json: bool) -> String {
        match (self, json) {
            (Language::Known(Lang::Cmn), false) => "请用中文回答。".into(),
            (Language::Known(Lang::Cmn), true) => "JSON 的键名保持英文，所有的值都用中文写。".into(),
            (Language::Known(Lang::Jpn), false) => "日本語で答えてください。".into(),
            (Language::Known(Lang::Jpn), true) => "JSONのキーは英語のまま、値はすべて日本語で書いてください。".into(),
            (_, false) => format!("Write the answer in {}.", self.name()),
            (_, true) => format!("Keep the JSON keys in English; write every value in {}.", self.name()),
        }
    }

    /// Whether `answer` is written in this language. Han, kana and hangul are told by script;
    /// Latin-script languages only when the detector is sure, so a short answer passes.
    pub fn matches(&self, answer: &str) -> bool {
        let Language::Known(want) = self else { return true };
        let letters: Vec<char> = answer.chars().filter(|c| c.is_alphabetic()).collect();
        if letters.len() < 4 {
            return true;
        }
        let cjk = letters.iter().filter(|c| crate::text::is_cjk(**c)).count();
        let cjk_share = cjk as f64 / letters.len() as f64;
        match want {
            Lang::Cmn | Lang::Jpn | Lang::Kor => cjk_share >= 0.3,
            _ if cjk_share >= 0.3 => false,
            _ => match whatlang::detect(answer) {
                Some(info) if info.is_reliable() => info.lang() == *want,
                _ => true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_says_its_language() {
        assert_eq!(Language::of("今天天气很好，我想去公园散步。"), Language::Known(Lang::Cmn));
        assert_eq!(Language::of("a heist story set in a floating market"), Language::Known(Lang::Eng));
        assert_eq!(Language::of("ok"), Language::Known(Lang::Eng));
        assert_eq!(Language::of("Il était une fois, dans un petit village au bord de la mer, une vieille femme qui vendait des poissons."), Language::Known(Lang::Fra));
        // A Chinese sentence with an English name in it is still Chinese.
        assert_eq!(Language::of("Mara 推开了灯塔的门，里面一片漆黑。"), Language::Known(Lang::Cmn));
    }

    #[test]
    fn writers_name_languages_their_own_way() {
        for n in ["zh", "Chinese", "中文", "cmn"] {
            assert_eq!(Language::named(n), Language::Known(Lang::Cmn), "{n}");
        }
        assert_eq!(Language::named("French"), Language::Known(Lang::Fra));
        assert_eq!(Language::named("Deutsch"), Language::Known(Lang::Deu));
        assert_eq!(Language::named("Old Norse"), Language::Named("Old Norse".into()));
        assert_eq!(Language::named("Old Norse").directive(false), "Write the answer in Old Norse.");
        assert_eq!(Language::named("zh").name(), "Chinese");
    }

    #[test]
    fn answers_are_checked_against_the_language() {
        let zh = Language::Known(Lang::Cmn);
        assert!(zh.matches("秋风吹稻田，农人夕阳收，孩子田埂跑。"));
        assert!(!zh.matches("The winds whispering through the fields, the farmers in golden hues."));
        let en = Language::Known(Lang::Eng);
        assert!(en.matches("The meeting may be postponed."));
        assert!(!en.matches("会议可能会推迟到以后的某个日期。"));
        assert!(en.matches("Mara."), "too short to judge");
        assert!(Language::Named("Klingon".into()).matches("anything at all"));
    }
}
