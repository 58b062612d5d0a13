//! Bad input, fuzzed: a valid tiny GGUF with bytes changed, inserted and cut off; JSON
//! schemas of any shape; chat templates of any text. Each must load, compile or render, or
//! give an error, and never panic or hang. proptest drives the cases (cargo-fuzz needs a
//! nightly toolchain these machines lack); a case that ever failed is kept in
//! `proptest-regressions/` and in the tests below it.
//!
//! INKLING_FUZZ_CASES sets the number of cases per target (default 64 in the test run; CI
//! uses the default, a longer run sets thousands).

use inkling_engine::chat::{ChatMessage, ChatTemplate};
use inkling_engine::constraint::JsonGrammar;
use inkling_engine::gguf::GgufFile;
use inkling_engine::testing::TinyModel;
use inkling_engine::{Engine, EngineConfig};
use proptest::prelude::*;
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("INKLING_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// The tiny model's bytes, written once.
fn tiny() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        TinyModel { context: 64, ..TinyModel::default() }.write(&path).unwrap();
        std::fs::read(&path).unwrap()
    })
}

/// One change to a file: a byte set, a run of bytes inserted, or the rest cut off. Positions
/// are fractions of the length, weighted to the front where the header and tables are.
#[derive(Clone, Debug)]
enum Change {
    Set(f64, u8),
    Insert(f64, Vec<u8>),
    Truncate(f64),
}

fn change() -> impl Strategy<Value = Change> {
    let at = prop_oneof![3 => 0.0..0.02f64, 1 => 0.0..1.0f64];
    prop_oneof![
        6 => (at.clone(), any::<u8>()).prop_map(|(a, b)| Change::Set(a, b)),
        2 => (at.clone(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(a, b)| Change::Insert(a, b)),
        1 => at.prop_map(Change::Truncate),
    ]
}

fn apply(bytes: &[u8], changes: &[Change]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for c in changes {
        let pos = |f: f64, len: usize| ((f * len as f64) as usize).min(len.saturating_sub(1));
        match c {
            Change::Set(f, v) if !b.is_empty() => {
                let i = pos(*f, b.len());
                b[i] = *v;
            }
            Change::Insert(f, v) => {
                let i = pos(*f, b.len());
                b.splice(i..i, v.iter().copied());
            }
            Change::Truncate(f) => b.truncate(pos(*f, b.len())),
            _ => {}
        }
    }
    b
}

/// Opens and loads `bytes` as a model; any error is fine, a panic is not. Loading is given
/// a small context so a damaged size cannot ask for a huge cache.
fn load(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, bytes).unwrap();
    if GgufFile::open(&path).is_ok()
        && let Ok(engine) = Engine::load(&path, &EngineConfig { threads: Some(1), context: Some(32), ..Default::default() })
    {
        let _ = engine.logits(&[1, 2, 3]);
    }
}

/// JSON values of any shape, with the keywords a schema uses showing up often.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = prop_oneof![
        Just("type".to_string()),
        Just("properties".to_string()),
        Just("items".to_string()),
        Just("enum".to_string()),
        Just("required".to_string()),
        Just("maxLength".to_string()),
        Just("maxItems".to_string()),
        Just("minItems".to_string()),
        "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just("object"), Just("array"), Just("string"), Just("integer"), Just("number"), Just("boolean"), Just("null")].prop_map(|s| Value::String(s.to_string())),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Template text built from Jinja's pieces and noise.
fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{% for m in messages %}".to_string()),
        Just("{% endfor %}".to_string()),
        Just("{{ m.content }}".to_string()),
        Just("{{ m.role }}".to_string()),
        Just("{% if add_generation_prompt %}".to_string()),
        Just("{% endif %}".to_string()),
        Just("{{ messages[0]['content'] | trim }}".to_string()),
        Just("{{ raise_exception('no') }}".to_string()),
        Just("{% set x = messages | length %}{{ x * 1000000 }}".to_string()),
        Just("{{ bos_token }}".to_string()),
        Just("{{".to_string()),
        Just("%}".to_string()),
        ".{0,6}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_gguf_is_an_error_not_a_crash(changes in proptest::collection::vec(change(), 1..6)) {
        load(&apply(tiny(), &changes));
    }

    #[test]
    fn any_schema_compiles_or_is_refused(schema in json(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(g) = JsonGrammar::compile(&schema) {
            let _ = g.max_bytes();
            let mut m = g.matcher();
            for chunk in bytes.chunks(3) {
                if !m.advance(chunk) {
                    break;
                }
                let _ = m.min_bytes_to_complete();
            }
        }
    }

    #[test]
    fn any_chat_template_renders_or_is_refused(t in template(), content in ".{0,12}") {
        if let Ok(tpl) = ChatTemplate::new(Some(&t), "<s>", "</s>") {
            let _ = tpl.render(&[ChatMessage::new("system", "Be brief."), ChatMessage::new("user", &content)], true);
        }
    }
}

/// Found by the GGUF fuzzing: a damaged norm weight made a block of subnormal activations,
/// `127 / amax` overflowed to infinity and the codes' sum overflowed (a panic in a debug
/// build, garbage codes in a release one).
#[test]
fn a_subnormal_block_quantizes_within_range() {
    let x = [1e-39f32, -1e-39, 5e-40, 0.0];
    let mut qs = [0i8; 4];
    let (_, sum) = inkling_engine::kernels::quantize_block_i8(&x, &mut qs);
    assert!(qs.iter().all(|&q| q != i8::MIN) && sum == qs.iter().map(|&q| i32::from(q)).sum::<i32>(), "{qs:?} {sum}");
}

/// Found by the GGUF fuzzing: a damaged layer count made loading ask for 177 GB up front and
/// abort, instead of naming the first layer the file lacks.
#[test]
fn a_damaged_layer_count_is_an_error_not_an_abort() {
    let mut bytes = tiny().to_vec();
    let key = b"llama.block_count";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("the key is in the file") + key.len();
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 4, "a u32 value follows");
    bytes[at + 4..at + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let e = Engine::load(&path, &EngineConfig { threads: Some(1), ..Default::default() }).err().expect("refused");
    assert!(e.to_string().contains("blk.2"), "{e}");
}
