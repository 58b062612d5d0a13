//! Reading answers back, on scripted answers: what a writer gets is the text itself, in their
//! language, with as many list items as they asked for. The prompt side runs on a tiny
//! random-weight model (its tokenizer and chat template); the answers are written here, so
//! each test knows exactly what the model "said".

use inkling_craft::{Flag, ToolOutput, ToolRequest, Toolbox, run};
use inkling_engine::testing::ScriptedBackend as Scripted;
use inkling_engine::{GenerateRequest, Prompt};

fn tool(backend: &Scripted, request: ToolRequest) -> ToolOutput {
    run(&Toolbox::builtin().unwrap(), backend, &request, &mut |_| true).unwrap()
}

fn ask(tool: &str, text: &str, n: usize) -> ToolRequest {
    ToolRequest { tool: tool.into(), text: text.into(), n, seed: Some(1), ..ToolRequest::default() }
}

fn user_message(r: &GenerateRequest) -> String {
    match &r.prompt {
        Prompt::Chat(m) => m.last().unwrap().content.clone(),
        Prompt::Text(t) => t.clone(),
    }
}

#[test]
fn a_short_list_is_carried_on_to_the_count_asked() {
    let b = Scripted::new(&[&[" Alpha\n2. Beta", " One\n2. Two\n3. Three\n4. Four\n5. Five\n6. Six"], &[" Gamma\n4. Delta\n5. Epsilon\n6. Zeta"]]).unwrap();
    let out = tool(&b, ask("brainstorm", "a heist in a floating market", 2));
    let reqs = b.requests();
    assert_eq!(reqs.len(), 2, "one carry-on for the one short list");
    assert!(user_message(&reqs[0]).contains("Brainstorm 6 plot ideas"), "{}", user_message(&reqs[0]));
    // The model is handed its own answer and the next number, in the same turn.
    assert_eq!(reqs[1].prefill, "1. Alpha\n2. Beta\n3.");
    assert_eq!((reqs[1].n, user_message(&reqs[1])), (1, user_message(&reqs[0])));
    let alpha = out.candidates.iter().find(|c| c.items[0] == "Alpha").unwrap();
    assert_eq!(alpha.items, ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"]);
    assert!(out.candidates.iter().all(|c| c.items.len() == 6 && c.flags.is_empty()), "{:?}", out.candidates);
    assert_eq!(alpha.completion_tokens, 20, "both rounds' tokens are counted");
}

#[test]
fn the_writers_count_replaces_the_recipes_and_a_stalled_list_is_flagged() {
    // The model adds nothing when asked again: one retry, then the list stays as it is.
    let b = Scripted::new(&[&[" Alpha\n2. Beta"], &[""]]).unwrap();
    let out = tool(&b, ToolRequest { count: Some(3), ..ask("titles", "a lighthouse keeper's last winter", 1) });
    let reqs = b.requests();
    assert!(user_message(&reqs[0]).contains("Suggest 3 titles"), "{}", user_message(&reqs[0]));
    assert_eq!(reqs.len(), 2);
    assert_eq!(out.candidates[0].items, ["Alpha", "Beta"]);
    assert_eq!(out.candidates[0].flags, [Flag::ShortList]);
}

#[test]
fn a_list_without_room_left_is_not_carried_on() {
    // 10 tokens used of 20 leaves less than an item's room.
    let b = Scripted::new(&[&[" Alpha\n2. Beta"]]).unwrap();
    let out = tool(&b, ToolRequest { max_tokens: Some(20), ..ask("first-lines", "a ghost ship", 1) });
    assert_eq!(b.requests().len(), 1);
    assert_eq!(out.candidates[0].flags, [Flag::ShortList]);
}

#[test]
fn an_outline_synopsis_has_no_set_length_but_chapters_do() {
    let b = Scripted::new(&[&[" Two keepers, one ghost ship, and a truce that costs them both."]]).unwrap();
    let out = tool(&b, ask("outline", "Two rival lighthouse keepers must cooperate.", 1));
    assert_eq!(b.requests().len(), 1, "a one-paragraph synopsis is not a short list");
    assert!(out.candidates[0].flags.is_empty());
    let b = Scripted::new(&[&[" The Light\n2. The Ship"], &[" The Truce"]]).unwrap();
    let req = ToolRequest { options: [("level".into(), "chapters".into())].into(), ..ask("outline", "Two keepers and a ghost ship.", 1) };
    tool(&b, req);
    let reqs = b.requests();
    assert!(user_message(&reqs[0]).contains("into 8 chapters"), "{}", user_message(&reqs[0]));
    assert!(reqs.len() >= 2 && reqs[1].prefill.ends_with("2. The Ship\n3."));
}

#[test]
fn talk_about_the_edit_is_cut_and_talk_alone_ranks_last() {
    let wordy = "In my personal opinion, I really do think that it is quite possible that the meeting might possibly be postponed.";
    let b = Scripted::new(&[&["I have removed the redundant words for you.", "The meeting may be postponed.\n\nI removed redundant words and simplified the sentence."]]).unwrap();
    let out = tool(&b, ask("tighten", wordy, 2));
    assert_eq!(out.candidates[0].text, "The meeting may be postponed.");
    assert!(out.candidates[0].flags.is_empty());
    assert_eq!(out.candidates[1].flags, [Flag::Commentary]);

    let b = Scripted::new(&[&["The report will be late: the printer broke.\n\nThis reworked text aims to maintain the original tone while being formal."]]).unwrap();
    let out = tool(&b, ToolRequest { options: [("style".into(), "formal".into())].into(), ..ask("rewrite", "yo the report's gonna be late, printer died lol", 1) });
    assert_eq!(out.candidates[0].text, "The report will be late: the printer broke.");
}

#[test]
fn answers_come_in_the_language_of_the_writers_text() {
    let zh = "秋天的风吹过稻田，农民们在夕阳下收割，孩子们在田埂上奔跑。";
    let b = Scripted::new(&[&["The autumn wind blows across the rice fields while the farmers harvest.", "秋风吹稻田，农人夕阳收，孩子田埂跑。"]]).unwrap();
    let out = tool(&b, ToolRequest { options: [("style".into(), "poem".into())].into(), ..ask("rewrite", zh, 2) });
    // The English prompt asks, in Chinese, for a Chinese answer.
    assert!(user_message(&b.requests()[0]).ends_with("请用中文回答。"), "{}", user_message(&b.requests()[0]));
    assert_eq!(out.language, "Chinese");
    assert_eq!(out.candidates[0].text, "秋风吹稻田，农人夕阳收，孩子田埂跑。");
    assert_eq!(out.candidates[1].flags, [Flag::WrongLanguage]);

    // English text: no directive, unless the writer names a language.
    let b = Scripted::new(&[&["Le rapport sera en retard."], &["The report will be late."]]).unwrap();
    tool(&b, ask("rewrite", "the report is gonna be late", 1));
    tool(&b, ToolRequest { language: Some("French".into()), ..ask("rewrite", "the report is gonna be late", 1) });
    let reqs = b.requests();
    assert!(!user_message(&reqs[0]).contains("Write the answer in"), "{}", user_message(&reqs[0]));
    assert!(user_message(&reqs[1]).ends_with("Write the answer in French."), "{}", user_message(&reqs[1]));
}

#[test]
fn profiles_are_judged_by_their_values() {
    let good = r#"{"name":"张三","role":"退休京剧演员","wants":"把修车铺开下去","fears":"嗓子再也唱不出声","voice":"洪亮，带着戏腔","appearance":"瘦高，手上总有油污","backstory":"唱了三十年老生，退休后开了一家自行车修理铺。"}"#;
    let bad = r#"{"name":"李明","role":"京剧演员","wants":":[","fears":"修理铺里脏乱","voice":"低沉","appearance":"中年男性","backstory":"退休后开了修车铺。"}"#;
    let english = r#"{"name":"Tina","role":"retired singer","wants":"quiet","fears":"silence","voice":"warm","appearance":"tall","backstory":"Sang for thirty years."}"#;
    let b = Scripted::new(&[&[bad, english, good]]).unwrap();
    let out = tool(&b, ask("character", "一位退休的京剧演员，现在开了一家自行车修理铺", 3));
    let user = user_message(&b.requests()[0]);
    assert!(user.ends_with("JSON 的键名保持英文，所有的值都用中文写。"), "{user}");
    assert_eq!(out.candidates[0].json.as_ref().unwrap()["name"], "张三");
    let flags: Vec<&[Flag]> = out.candidates.iter().map(|c| c.flags.as_slice()).collect();
    assert!(flags.contains(&[Flag::UnusableField].as_slice()), "{flags:?}");
    // The English one is in the wrong language, and keeps none of the description either.
    assert!(flags.contains(&[Flag::WrongLanguage, Flag::IgnoresInput].as_slice()), "{flags:?}");
}
