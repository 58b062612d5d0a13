//! A profile and a fit in plain words, in the writer's language (the profile's script).

use crate::features::Group;
use crate::profile::{Fit, Profile};
use crate::text::Script;

impl Group {
    pub fn name(self, script: Script) -> &'static str {
        let (en, zh) = match self {
            Group::SentenceLength => ("sentence length", "句子长度"),
            Group::ParagraphLength => ("paragraph length", "段落长度"),
            Group::FunctionWords => ("function words", "虚词"),
            Group::Punctuation => ("punctuation", "标点"),
            Group::Dialogue => ("dialogue", "对话"),
            Group::Vocabulary => ("vocabulary", "用字"),
            Group::Particles => ("sentence-final particles", "句末语气词"),
            Group::CharacterPairs => ("character pairs", "常用字组"),
            Group::FavouriteWords => ("the words you use most", "常用词"),
        };
        if script == Script::Cjk { zh } else { en }
    }
}

/// How often a mark appears, per 1,000 units, in a word.
fn how_often(per_thousand: f64, script: Script) -> &'static str {
    let i = match per_thousand {
        x if x < 1.0 => 0,
        x if x < 5.0 => 1,
        x if x < 20.0 => 2,
        _ => 3,
    };
    match script {
        Script::Latin => ["rarely", "now and then", "often", "very often"][i],
        Script::Cjk => ["很少用", "偶尔用", "常用", "很常用"][i],
    }
}

impl Profile {
    /// The profile as lines a writer reads ("Your sentences average 14 words…").
    pub fn describe(&self) -> Vec<String> {
        let h = &self.habits;
        let (lo, hi) = h.sentence_range;
        let marks = |sep: &str| h.punctuation.iter().map(|(n, r)| format!("{n} {r:.1} ({})", how_often(*r, self.script))).collect::<Vec<_>>().join(sep);
        let words = |v: &[(String, f64)], sep: &str| v.iter().take(6).map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(sep);
        match self.script {
            Script::Latin => vec![
                format!("Built from {} words of your own (text the model wrote is left out).", self.units),
                format!("Your sentences average {:.1} words; most run {lo} to {hi}.", h.sentence_mean),
                format!("Your paragraphs average {:.1} sentences.", h.paragraph_mean),
                format!("Dialogue: {:.0}% of your words are inside quotation marks.", h.quoted * 100.0),
                format!("Vocabulary: {:.0} different words in every 50.", h.variety * 50.0),
                format!("Punctuation per 1,000 words: {}.", marks(", ")),
                format!("Your most frequent function words: {}.", words(&h.function_words, ", ")),
            ],
            Script::Cjk => {
                let mut lines = vec![
                    format!("根据你亲笔写的 {} 个字（模型写的文字不算在内）。", self.units),
                    format!("你的句子平均 {:.1} 个字，大多在 {lo} 到 {hi} 个字之间。", h.sentence_mean),
                    format!("你的段落平均 {:.1} 句。", h.paragraph_mean),
                    format!("对话：{:.0}% 的文字在引号里。", h.quoted * 100.0),
                    format!("用字：每 100 个字里有 {:.0} 个不同的字。", h.variety * 100.0),
                    format!("标点（每千字）：{}。", marks("，")),
                    format!("最常用的虚词：{}。", words(&h.function_words, "、")),
                ];
                let particles: Vec<String> = h.particles.iter().filter(|(_, r)| *r > 0.0).map(|(p, r)| format!("{p} {r:.1}")).collect();
                if !particles.is_empty() {
                    lines.push(format!("句末语气词（每百句）：{}。", particles.join("，")));
                }
                lines
            }
        }
    }

    /// Why a candidate ranked where it did: how close it is overall, the habit it keeps best
    /// and the one it strays from most.
    pub fn reason(&self, fit: &Fit) -> String {
        let s = self.script;
        // Two texts without dialogue are alike in it, which explains nothing.
        let silent = fit.quoted < 0.01 && self.habits.quoted < 0.01;
        let mut groups: Vec<_> = fit.groups.iter().filter(|g| !(silent && g.group == Group::Dialogue)).copied().collect();
        groups.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        // Own held-out passages of the test's two authors sit around 0 (-0.3 to 0.2), the
        // other author's around 0.3 (0.15 to 0.55).
        let overall = match (fit.distance, s) {
            (d, Script::Latin) if d < 0.15 => "close to your voice",
            (d, Script::Latin) if d < 0.35 => "somewhat like your voice",
            (_, Script::Latin) => "unlike your voice",
            (d, Script::Cjk) if d < 0.15 => "接近你的文风",
            (d, Script::Cjk) if d < 0.35 => "有几分像你的文风",
            (_, Script::Cjk) => "不像你的文风",
        };
        let (Some(best), Some(worst)) = (groups.first(), groups.last()) else {
            return overall.to_string();
        };
        let detail = match (worst.group, s) {
            (Group::SentenceLength, Script::Latin) => format!(" ({:.0} words a sentence; yours average {:.0})", fit.sentence_mean, self.habits.sentence_mean),
            (Group::SentenceLength, Script::Cjk) => format!("（每句 {:.0} 个字，你平均 {:.0} 个）", fit.sentence_mean, self.habits.sentence_mean),
            (Group::Dialogue, Script::Latin) => format!(" ({:.0}% in quotation marks; yours {:.0}%)", fit.quoted * 100.0, self.habits.quoted * 100.0),
            (Group::Dialogue, Script::Cjk) => format!("（{:.0}% 在引号里，你是 {:.0}%）", fit.quoted * 100.0, self.habits.quoted * 100.0),
            _ => String::new(),
        };
        match s {
            Script::Latin => format!("{overall} ({:.2}): nearest in {}, farthest in {}{detail}", fit.distance, best.group.name(s), worst.group.name(s)),
            Script::Cjk => format!("{overall}（{:.2}）：{}最像你，{}最不像{detail}", fit.distance, best.group.name(s), worst.group.name(s)),
        }
    }
}
