//! Tokenizer round trips and splitting on the tiny vocabularies.

use inkling_engine::Tokenizer;
use inkling_engine::gguf::GgufFile;
use inkling_engine::testing::{TinyModel, TinyVocab};
use proptest::prelude::*;

fn tokenizer(vocab: TinyVocab) -> Tokenizer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    TinyModel { vocab, arch: if vocab == TinyVocab::Spm { "gemma3" } else { "llama" }, ..TinyModel::default() }.write(&path).unwrap();
    Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap()
}

const SAMPLES: &[&str] = &[
    "Once upon a time, the cat and the hat.",
    "今天天气很好，我想去公园散步。",
    "emoji 🐉🔥 and ZWJ 👩‍👩‍👧 sequences",
    "  leading spaces\n\n\ttabs   and    gaps  \n",
    "digits 1234567 and 'quotes' don't",
    "",
];

#[test]
fn exact_round_trip_on_samples() {
    for vocab in [TinyVocab::Bpe, TinyVocab::Spm] {
        let t = tokenizer(vocab);
        for s in SAMPLES {
            assert_eq!(t.decode(&t.encode(s, false)), *s, "{vocab:?}");
        }
    }
}

#[test]
fn merges_apply_and_digits_split_individually() {
    let t = tokenizer(TinyVocab::Bpe);
    let ids = t.encode(" the", false);
    assert_eq!(ids.len(), 1, "\" the\" merges to one token");
    assert_eq!(t.encode("1234", false).len(), 4, "smollm splits digits one by one");
    let s = tokenizer(TinyVocab::Spm);
    assert_eq!(s.encode(" and", false).len(), 1, "\"▁and\" is one piece");
}

#[test]
fn control_tokens_only_parse_when_asked() {
    let t = tokenizer(TinyVocab::Bpe);
    let end = t.token_id("<|im_end|>").unwrap();
    assert_eq!(t.encode("hi<|im_end|>", true).last(), Some(&end));
    assert!(!t.encode("hi<|im_end|>", false).contains(&end));
    assert!(t.is_end_of_generation(end));
    assert_eq!(t.decode(&[end]), "", "control tokens show no text");
}

#[test]
fn spm_adds_bos() {
    let s = tokenizer(TinyVocab::Spm);
    assert!(s.add_bos);
    assert_eq!(s.encode_prompt("the", false)[0], s.bos.unwrap());
}

proptest! {
    #[test]
    fn any_text_round_trips(text in "\\PC{0,60}") {
        for vocab in [TinyVocab::Bpe, TinyVocab::Spm] {
            let t = tokenizer(vocab);
            prop_assert_eq!(t.decode(&t.encode(&text, false)), text.clone());
        }
    }
}
