//! The profile's mechanics on made-up writers: two styles told apart, the habits described in
//! the writer's language, too little text refused, and a profile surviving storage.

use inkling_voice::{Profile, Script, VoiceError, rank};

/// A tiny deterministic generator, so the texts are the same on every run.
struct Lcg(u64);
impl Lcg {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        xs[(self.0 >> 33) as usize % xs.len()]
    }
}

/// Short sentences and dialogue: "Come in," Mara said. She waited.
fn terse(seed: u64, sentences: usize) -> String {
    let mut r = Lcg(seed);
    let mut out = String::new();
    for i in 0..sentences {
        let s = match i % 3 {
            0 => format!("\"{} {},\" {} said.", r.pick(&["Come", "Stay", "Look", "Wait", "Run"]), r.pick(&["in", "here", "now", "back", "out"]), r.pick(&["Mara", "Tom", "she", "he"])),
            1 => format!("{} {}.", r.pick(&["She", "He", "Mara", "Tom"]), r.pick(&["waited", "smiled", "left", "nodded", "listened"])),
            _ => format!("The {} was {}.", r.pick(&["door", "room", "rain", "street"]), r.pick(&["cold", "open", "quiet", "dark"])),
        };
        out.push_str(&s);
        out.push(if i % 6 == 5 { '\n' } else { ' ' });
    }
    out
}

/// Long sentences with semicolons and no dialogue.
fn ornate(seed: u64, sentences: usize) -> String {
    let mut r = Lcg(seed);
    let mut out = String::new();
    for i in 0..sentences {
        out.push_str(&format!(
            "Beneath the {} of the {} hills, where the {} lingered upon every {} of the valley, the travellers {} their {} journey; and though the {} grew {}, none of them {} of turning back. ",
            r.pick(&["pale", "ancient", "silver", "heavy"]),
            r.pick(&["northern", "distant", "wooded", "barren"]),
            r.pick(&["mist", "evening", "memory", "silence"]),
            r.pick(&["fold", "corner", "stone", "bend"]),
            r.pick(&["resumed", "continued", "began", "pursued"]),
            r.pick(&["weary", "long", "solemn", "uncertain"]),
            r.pick(&["road", "wind", "hour", "light"]),
            r.pick(&["colder", "darker", "longer", "harder"]),
            r.pick(&["spoke", "thought", "dreamed", "complained"]),
        ));
        if i % 3 == 2 {
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_writers_style_ranks_first_and_the_ranking_says_why() {
    let profile = Profile::build(&[&terse(1, 300)]).expect("enough text");
    assert_eq!(profile.script, Script::Latin);
    let (mine, theirs) = (terse(99, 24), ornate(7, 4));
    let ranks = rank(&profile, &[(&theirs, None), (&mine, None)]);
    assert!(ranks[1].score < ranks[0].score, "{:?}", ranks.iter().map(|r| r.score).collect::<Vec<_>>());
    assert!(ranks[1].reason.starts_with("close to your voice"), "{}", ranks[1].reason);
    assert!(ranks[0].reason.contains("farthest in"), "{}", ranks[0].reason);
    // The model's likelihood counts when every candidate has one...
    let with = rank(&profile, &[(&theirs, Some(-0.5)), (&mine, Some(-2.5))]);
    for (w, r) in with.iter().zip(&ranks) {
        assert!((w.score - r.score - inkling_voice::rank::LIKELIHOOD_WEIGHT * -w.mean_logprob.unwrap()).abs() < 1e-9);
    }
    // ...and not at all when one is missing (a missing figure is not a good one).
    let without = rank(&profile, &[(&theirs, Some(-0.5)), (&mine, None)]);
    assert_eq!(without[0].score, ranks[0].score);
}

#[test]
fn the_profile_is_described_in_plain_words() {
    let profile = Profile::build(&[&terse(1, 300)]).unwrap();
    let lines = profile.describe();
    assert!(lines[1].starts_with("Your sentences average 3."), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("semicolons 0.0 (rarely)")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("Dialogue: ") && !l.starts_with("Dialogue: 0%")), "{lines:?}");
    let ornate = Profile::build(&[&ornate(3, 30)]).unwrap();
    assert!(ornate.describe().iter().any(|l| l.contains("semicolons 27.8 (very often)")), "{:?}", ornate.describe());
}

#[test]
fn too_little_text_is_refused_with_what_to_do() {
    let err = Profile::build(&["Only a few words of my own."]).unwrap_err();
    let VoiceError::NotEnoughText { have, needed, unit } = &err;
    assert_eq!((*have, *needed, *unit), (7, 480, "words"));
    assert!(err.to_string().contains("write more"), "{err}");
}

#[test]
fn a_chinese_profile_speaks_chinese_and_counts_particles() {
    let mut r = Lcg(5);
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!("{}{}{}", r.pick(&["他", "她", "我们", "老王"]), r.pick(&["走进了院子", "看着窗外的雨", "想起了小时候", "在门口站了一会儿"]), r.pick(&["。", "吗？", "吧。", "呢？"])));
        if i % 5 == 4 {
            text.push('\n');
        }
    }
    let profile = Profile::build(&[&text]).expect("enough characters");
    assert_eq!(profile.script, Script::Cjk);
    let lines = profile.describe();
    assert!(lines[1].starts_with("你的句子平均"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("句末语气词") && l.contains("吗")), "{lines:?}");
    let fit = profile.fit("他走进了院子。她看着窗外的雨吗？");
    assert!(profile.reason(&fit).contains("文风"), "{}", profile.reason(&fit));
    let err = Profile::build(&["今天天气很好，我想去公园散步。"]).unwrap_err();
    assert!(err.to_string().contains("characters"), "{err}");
}

#[test]
fn a_profile_survives_storage() {
    let profile = Profile::build(&[&terse(2, 300)]).unwrap();
    let back: Profile = serde_json::from_str(&serde_json::to_string(&profile).unwrap()).unwrap();
    let text = terse(3, 12);
    assert_eq!(back.pairs, profile.pairs);
    assert!((back.fit(&text).distance - profile.fit(&text).distance).abs() < 1e-9);
}
