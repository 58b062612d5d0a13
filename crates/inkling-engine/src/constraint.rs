//! Constrained decoding: a JSON schema compiled to a byte-level recognizer that decides, before
//! each token is sampled, which tokens may come next. Output generated under it always parses
//! and always has the schema's shape.
//!
//! The supported subset is what structured writing tools need: objects (every declared
//! property required, in declared order), arrays of one item schema (`minItems`/`maxItems`),
//! strings (`minLength`/`maxLength` in characters, or `enum`), integers, booleans. An object
//! without `properties` is any object (OpenAI's JSON mode, `{"type": "object"}`): keys of up
//! to 64 characters, at most 16 members, values of any of those kinds and `null`, nested at
//! most 3 deep. Output is
//! compact JSON: no whitespace between tokens, no escapes inside strings (so a string can never
//! contain a quote or a newline). Bounded strings and arrays bound the output length, which
//! [`JsonGrammar::max_bytes`] reports so callers can budget tokens.

use crate::error::{EngineError, Result};
use serde_json::Value;

type NodeId = u32;

#[derive(Clone, Debug)]
enum Node {
    /// Literal pieces: `{"k1":` v1 `,"k2":` v2 ... `}`; `keys[i]` is the literal before value i.
    Object {
        keys: Vec<u32>,
        values: Vec<NodeId>,
        close: u32,
    },
    Array {
        item: NodeId,
        min: u32,
        max: u32,
    },
    String {
        min: u32,
        max: u32,
    },
    /// One of these literal JSON texts (strings from `enum`, `true`/`false`).
    Enum {
        options: Vec<u32>,
    },
    Integer,
    /// Any object: `{` then up to `max` members `key:value` apart by `,`, then `}`.
    FreeObject {
        key: NodeId,
        value: NodeId,
        colon: u32,
        max: u32,
    },
    /// Any value, told apart by its first byte; `object` and `array` are `None` at the
    /// deepest level.
    Any {
        object: Option<NodeId>,
        array: Option<NodeId>,
        string: NodeId,
        integer: NodeId,
        keyword: NodeId,
    },
}

/// A compiled schema. Cheap to share; each generation stream gets its own [`JsonMatcher`].
#[derive(Clone, Debug)]
pub struct JsonGrammar {
    nodes: Vec<Node>,
    literals: Vec<Vec<u8>>,
    root: NodeId,
}

const DEFAULT_MAX_STRING: u32 = 400;
const DEFAULT_MAX_ITEMS: u32 = 8;
const MAX_INT_DIGITS: u32 = 9;
/// Free-form objects: nesting, members and key length.
const FREE_DEPTH: u32 = 3;
const FREE_MEMBERS: u32 = 16;
const FREE_KEY_CHARS: u32 = 64;

impl JsonGrammar {
    /// Compiles `schema`; unsupported keywords and shapes are errors that name the place.
    pub fn compile(schema: &Value) -> Result<Self> {
        let mut g = JsonGrammar { nodes: Vec::new(), literals: Vec::new(), root: 0 };
        g.root = g.node(schema, "$")?;
        match g.nodes[g.root as usize] {
            Node::Object { .. } | Node::Array { .. } | Node::FreeObject { .. } => Ok(g),
            _ => Err(bad("$", "the top level must be an object or an array")),
        }
    }

    fn literal(&mut self, bytes: Vec<u8>) -> u32 {
        self.literals.push(bytes);
        (self.literals.len() - 1) as u32
    }

    fn node(&mut self, schema: &Value, at: &str) -> Result<NodeId> {
        let obj = schema.as_object().ok_or_else(|| bad(at, "a schema must be a JSON object"))?;
        let node = if let Some(options) = obj.get("enum") {
            let options = options.as_array().filter(|o| !o.is_empty() && o.len() <= 64).ok_or_else(|| bad(at, "`enum` must list 1 to 64 values"))?;
            let mut ids = Vec::new();
            for o in options {
                let s = o.as_str().ok_or_else(|| bad(at, "`enum` values must be strings"))?;
                if s.contains(['"', '\\']) || s.chars().any(char::is_control) {
                    return Err(bad(at, "`enum` values cannot contain quotes, backslashes or control characters"));
                }
                ids.push(self.literal(format!("\"{s}\"").into_bytes()));
            }
            Node::Enum { options: ids }
        } else {
            let ty = obj.get("type").and_then(Value::as_str).ok_or_else(|| bad(at, "needs a `type` (object, array, string, integer or boolean)"))?;
            let bound = |key: &str, default: u32| -> Result<u32> {
                match obj.get(key) {
                    None => Ok(default),
                    Some(v) => v.as_u64().filter(|&n| n <= 100_000).map(|n| n as u32).ok_or_else(|| bad(at, &format!("`{key}` must be a small non-negative integer"))),
                }
            };
            match ty {
                "object" => {
                    let Some(props) = obj.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty()) else {
                        return Ok(self.free_object(FREE_DEPTH));
                    };
                    let (mut keys, mut values) = (Vec::new(), Vec::new());
                    for (i, (name, sub)) in props.iter().enumerate() {
                        if name.contains(['"', '\\']) || name.chars().any(char::is_control) {
                            return Err(bad(at, &format!("property name {name:?} cannot be written without escapes")));
                        }
                        let lead = if i == 0 { "{" } else { "," };
                        keys.push(self.literal(format!("{lead}\"{name}\":").into_bytes()));
                        values.push(self.node(sub, &format!("{at}.{name}"))?);
                    }
                    let close = self.literal(b"}".to_vec());
                    Node::Object { keys, values, close }
                }
                "array" => {
                    let items = obj.get("items").ok_or_else(|| bad(at, "an array needs `items`"))?;
                    let item = self.node(items, &format!("{at}[]"))?;
                    let (min, max) = (bound("minItems", 0)?, bound("maxItems", DEFAULT_MAX_ITEMS)?);
                    if min > max || max == 0 {
                        return Err(bad(at, "needs 0 <= minItems <= maxItems and maxItems > 0"));
                    }
                    Node::Array { item, min, max }
                }
                "string" => {
                    let (min, max) = (bound("minLength", 1)?, bound("maxLength", DEFAULT_MAX_STRING)?);
                    if min > max || max == 0 {
                        return Err(bad(at, "needs minLength <= maxLength and maxLength > 0"));
                    }
                    Node::String { min, max }
                }
                "integer" => Node::Integer,
                "boolean" => {
                    let options = vec![self.literal(b"true".to_vec()), self.literal(b"false".to_vec())];
                    Node::Enum { options }
                }
                other => return Err(bad(at, &format!("type `{other}` is not supported; use object, array, string, integer or boolean"))),
            }
        };
        self.nodes.push(node);
        Ok((self.nodes.len() - 1) as NodeId)
    }

    /// Any object nested at most `depth` deep (values at the last level are not containers).
    fn free_object(&mut self, depth: u32) -> NodeId {
        let key = self.push(Node::String { min: 1, max: FREE_KEY_CHARS });
        let value = self.free_value(depth - 1);
        let colon = self.literal(b":".to_vec());
        self.push(Node::FreeObject { key, value, colon, max: FREE_MEMBERS })
    }

    fn free_value(&mut self, depth: u32) -> NodeId {
        let (object, array) = if depth == 0 {
            (None, None)
        } else {
            let object = self.free_object(depth);
            let item = self.free_value(depth - 1);
            (Some(object), Some(self.push(Node::Array { item, min: 0, max: FREE_MEMBERS })))
        };
        let string = self.push(Node::String { min: 0, max: DEFAULT_MAX_STRING });
        let integer = self.push(Node::Integer);
        let options = vec![self.literal(b"true".to_vec()), self.literal(b"false".to_vec()), self.literal(b"null".to_vec())];
        let keyword = self.push(Node::Enum { options });
        self.push(Node::Any { object, array, string, integer, keyword })
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    /// An upper bound on the bytes of any document this grammar accepts.
    pub fn max_bytes(&self) -> usize {
        self.node_max_bytes(self.root)
    }

    fn node_max_bytes(&self, id: NodeId) -> usize {
        match &self.nodes[id as usize] {
            Node::Object { keys, values, .. } => 1 + keys.iter().map(|&k| self.literals[k as usize].len()).sum::<usize>() + values.iter().map(|&v| self.node_max_bytes(v)).sum::<usize>(),
            Node::Array { item, max, .. } => 2 + *max as usize * (self.node_max_bytes(*item) + 1),
            Node::String { max, .. } => 2 + 4 * *max as usize,
            Node::Enum { options } => options.iter().map(|&o| self.literals[o as usize].len()).max().unwrap_or(0),
            Node::Integer => 1 + MAX_INT_DIGITS as usize,
            Node::FreeObject { key, value, max, .. } => 2 + *max as usize * (self.node_max_bytes(*key) + 1 + self.node_max_bytes(*value) + 1),
            Node::Any { object, array, string, integer, keyword } => {
                [*object, *array, Some(*string), Some(*integer), Some(*keyword)].into_iter().flatten().map(|n| self.node_max_bytes(n)).max().unwrap_or(0)
            }
        }
    }

    /// The fewest bytes of any document (what completing from the start needs).
    fn node_min_bytes(&self, id: NodeId) -> usize {
        match &self.nodes[id as usize] {
            Node::Object { keys, values, .. } => 1 + keys.iter().map(|&k| self.literals[k as usize].len()).sum::<usize>() + values.iter().map(|&v| self.node_min_bytes(v)).sum::<usize>(),
            Node::Array { item, min, .. } => 2 + *min as usize * (self.node_min_bytes(*item) + 1) - usize::from(*min > 0),
            Node::String { min, .. } => 2 + *min as usize,
            Node::Enum { options } => options.iter().map(|&o| self.literals[o as usize].len()).min().unwrap_or(0),
            Node::Integer => 1,
            Node::FreeObject { .. } => 2,
            Node::Any { integer, .. } => self.node_min_bytes(*integer),
        }
    }

    pub fn matcher(&self) -> JsonMatcher<'_> {
        JsonMatcher { grammar: self, stack: vec![Frame::Value(self.root)], scratch: Vec::new() }
    }
}

fn bad(at: &str, why: &str) -> EngineError {
    EngineError::InvalidRequest(format!("JSON schema at {at}: {why}"))
}

/// Where the recognizer is; frames are `Copy` so a trial step copies the stack without allocating.
#[derive(Clone, Copy, Debug)]
enum Frame {
    /// A value of this node starts with the next byte.
    Value(NodeId),
    /// Inside a literal (object keys and braces).
    Literal {
        id: u32,
        pos: u32,
    },
    /// Inside an array after `count` items: `,` or `]` next (or the first item / `]`).
    Array {
        node: NodeId,
        count: u32,
    },
    String {
        node: NodeId,
        chars: u32,
        cont: u8,
    },
    /// Inside an enum literal: `alive` marks the options still matching `pos` bytes in.
    Enum {
        node: NodeId,
        pos: u32,
        alive: u64,
    },
    Integer {
        digits: u32,
        zero: bool,
    },
    /// Inside a free-form object with `count` members; `member`: the last byte ended one
    /// (`,` or `}` next), else it was the `{` (a key or `}` next).
    FreeObject {
        node: NodeId,
        count: u32,
        member: bool,
    },
}

/// The state of one stream under a [`JsonGrammar`].
pub struct JsonMatcher<'g> {
    grammar: &'g JsonGrammar,
    stack: Vec<Frame>,
    scratch: Vec<Frame>,
}

impl JsonMatcher<'_> {
    /// The document is complete: nothing more may follow.
    pub fn is_complete(&self) -> bool {
        self.stack.is_empty()
    }

    /// Would `bytes` be accepted next? (Empty byte strings, such as control tokens, are not.)
    pub fn accepts(&mut self, bytes: &[u8]) -> bool {
        self.accepts_within(bytes, usize::MAX)
    }

    /// Would `bytes` be accepted, leaving a document that `room` more bytes can still
    /// complete? With one token per byte at worst, `room` = tokens left keeps every answer
    /// finishable before the token limit.
    pub fn accepts_within(&mut self, bytes: &[u8], room: usize) -> bool {
        if bytes.is_empty() {
            return false;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.stack);
        bytes.iter().all(|&b| step(self.grammar, &mut self.scratch, b)) && min_bytes_to_complete(self.grammar, &self.scratch) <= room
    }

    /// The fewest bytes that complete the document from here.
    pub fn min_bytes_to_complete(&self) -> usize {
        min_bytes_to_complete(self.grammar, &self.stack)
    }

    /// Consumes `bytes`; returns false (and leaves the state unchanged) if they are not allowed.
    pub fn advance(&mut self, bytes: &[u8]) -> bool {
        if !self.accepts(bytes) {
            return false;
        }
        std::mem::swap(&mut self.stack, &mut self.scratch);
        true
    }
}

fn min_bytes_to_complete(g: &JsonGrammar, stack: &[Frame]) -> usize {
    stack
        .iter()
        .map(|f| match *f {
            Frame::Value(id) => g.node_min_bytes(id),
            Frame::Literal { id, pos } => g.literals[id as usize].len() - pos as usize,
            Frame::Array { node, count } => match g.nodes[node as usize] {
                // Each missing item with its comma (no comma before the first), then `]`.
                Node::Array { item, min, .. } => (min.saturating_sub(count)) as usize * (g.node_min_bytes(item) + 1) - usize::from(count == 0 && min > 0) + 1,
                _ => 0,
            },
            Frame::String { node, chars, cont } => match g.nodes[node as usize] {
                Node::String { min, .. } => cont as usize + min.saturating_sub(chars) as usize + 1,
                _ => 0,
            },
            Frame::Enum { node, pos, alive } => match &g.nodes[node as usize] {
                Node::Enum { options } => options.iter().enumerate().filter(|(i, _)| alive & (1 << i) != 0).map(|(_, &o)| g.literals[o as usize].len() - pos as usize).min().unwrap_or(0),
                _ => 0,
            },
            Frame::Integer { digits, .. } => usize::from(digits == 0),
            Frame::FreeObject { .. } => 1,
        })
        .sum()
}

/// Feeds one byte; false when the byte is not allowed.
fn step(g: &JsonGrammar, stack: &mut Vec<Frame>, b: u8) -> bool {
    loop {
        let Some(top) = stack.last_mut() else { return false };
        match *top {
            Frame::Value(id) => {
                // Replace by the node's concrete frame, then let it see the byte.
                *top = match &g.nodes[id as usize] {
                    Node::Object { keys, values, close } => {
                        // The whole object, in reverse: key, value, key, value, ..., `}`.
                        stack.pop();
                        stack.push(Frame::Literal { id: *close, pos: 0 });
                        for (&k, &v) in keys.iter().zip(values).rev() {
                            stack.push(Frame::Value(v));
                            stack.push(Frame::Literal { id: k, pos: 0 });
                        }
                        continue;
                    }
                    Node::Array { .. } => {
                        if b != b'[' {
                            return false;
                        }
                        *top = Frame::Array { node: id, count: 0 };
                        return true;
                    }
                    Node::String { .. } => {
                        if b != b'"' {
                            return false;
                        }
                        *top = Frame::String { node: id, chars: 0, cont: 0 };
                        return true;
                    }
                    Node::Enum { options } => Frame::Enum { node: id, pos: 0, alive: if options.len() == 64 { u64::MAX } else { (1u64 << options.len()) - 1 } },
                    Node::Integer => {
                        if b == b'-' {
                            *top = Frame::Integer { digits: 0, zero: false };
                            return true;
                        }
                        Frame::Integer { digits: 0, zero: false }
                    }
                    Node::FreeObject { .. } => {
                        if b != b'{' {
                            return false;
                        }
                        *top = Frame::FreeObject { node: id, count: 0, member: false };
                        return true;
                    }
                    Node::Any { object, array, string, integer, keyword } => {
                        let next = match b {
                            b'{' => *object,
                            b'[' => *array,
                            b'"' => Some(*string),
                            b'-' | b'0'..=b'9' => Some(*integer),
                            b't' | b'f' | b'n' => Some(*keyword),
                            _ => None,
                        };
                        let Some(next) = next else { return false };
                        Frame::Value(next)
                    }
                };
            }
            Frame::Literal { id, pos } => {
                let lit = &g.literals[id as usize];
                if lit[pos as usize] != b {
                    return false;
                }
                if pos as usize + 1 == lit.len() {
                    stack.pop();
                } else {
                    *top = Frame::Literal { id, pos: pos + 1 };
                }
                return true;
            }
            Frame::Array { node, count } => {
                let Node::Array { item, min, max } = g.nodes[node as usize] else { return false };
                if b == b']' && count >= min {
                    stack.pop();
                    return true;
                }
                if count == 0 {
                    if max == 0 {
                        return false;
                    }
                    *top = Frame::Array { node, count: 1 };
                    stack.push(Frame::Value(item));
                    continue;
                }
                if b == b',' && count < max {
                    *top = Frame::Array { node, count: count + 1 };
                    stack.push(Frame::Value(item));
                    return true;
                }
                return false;
            }
            Frame::String { node, chars, cont } => {
                let Node::String { min, max } = g.nodes[node as usize] else { return false };
                // Only whole, valid UTF-8 characters: `cont` continuation bytes are still owed.
                if cont > 0 {
                    if !(0x80..0xc0).contains(&b) {
                        return false;
                    }
                    *top = Frame::String { node, chars, cont: cont - 1 };
                    return true;
                }
                let need = match b {
                    b'"' if chars >= min => {
                        stack.pop();
                        return true;
                    }
                    b'"' | b'\\' | 0..0x20 | 0x7f => return false,
                    0x20..0x7f => 0,
                    0xc2..0xe0 => 1,
                    0xe0..0xf0 => 2,
                    0xf0..0xf5 => 3,
                    _ => return false,
                };
                if chars >= max {
                    return false;
                }
                *top = Frame::String { node, chars: chars + 1, cont: need };
                return true;
            }
            Frame::Enum { node, pos, alive } => {
                let Node::Enum { options } = &g.nodes[node as usize] else { return false };
                let mut still = 0u64;
                let mut finished = false;
                for (i, &o) in options.iter().enumerate() {
                    if alive & (1 << i) != 0 {
                        let lit = &g.literals[o as usize];
                        if lit.get(pos as usize) == Some(&b) {
                            if pos as usize + 1 == lit.len() {
                                finished = true;
                            } else {
                                still |= 1 << i;
                            }
                        }
                    }
                }
                // Options are whole JSON strings or keywords, so none is a prefix of another
                // that is still alive once a closing quote matched.
                if finished {
                    stack.pop();
                    return true;
                }
                if still == 0 {
                    return false;
                }
                *top = Frame::Enum { node, pos: pos + 1, alive: still };
                return true;
            }
            Frame::Integer { digits, zero } => {
                if b.is_ascii_digit() {
                    // No leading zeros (JSON forbids them), bounded length.
                    if digits >= MAX_INT_DIGITS || zero {
                        return false;
                    }
                    *top = Frame::Integer { digits: digits + 1, zero: digits == 0 && b == b'0' };
                    return true;
                }
                if digits == 0 {
                    return false;
                }
                // The integer ended; the byte belongs to whatever follows.
                stack.pop();
                continue;
            }
            Frame::FreeObject { node, count, member } => {
                let Node::FreeObject { key, value, colon, max } = g.nodes[node as usize] else { return false };
                if b == b'}' {
                    stack.pop();
                    return true;
                }
                // The next member: after `{` its key starts with this byte; after a member,
                // this byte is the comma.
                let comma = member && b == b',';
                if count >= max || (member && !comma) {
                    return false;
                }
                *top = Frame::FreeObject { node, count: count + 1, member: true };
                stack.push(Frame::Value(value));
                stack.push(Frame::Literal { id: colon, pos: 0 });
                stack.push(Frame::Value(key));
                if comma {
                    return true;
                }
                continue;
            }
        }
    }
}

/// Which tokens may come next: `mask[t]` for every token, given each token's bytes, such
/// that the document can still be completed within `tokens_after` more tokens.
pub fn allowed_tokens(matcher: &mut JsonMatcher<'_>, vocab: &[Vec<u8>], tokens_after: usize, mask: &mut Vec<bool>) {
    mask.clear();
    mask.extend(vocab.iter().map(|bytes| matcher.accepts_within(bytes, tokens_after)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile() -> JsonGrammar {
        JsonGrammar::compile(&json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 20},
                "role": {"enum": ["hero", "villain"]},
                "age": {"type": "integer"},
                "alive": {"type": "boolean"},
                "fears": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2}
            }
        }))
        .unwrap()
    }

    fn accepts_all(g: &JsonGrammar, text: &str) -> (bool, bool) {
        let mut m = g.matcher();
        let ok = text.bytes().all(|b| m.advance(&[b]));
        (ok, m.is_complete())
    }

    #[test]
    fn accepts_documents_of_the_schema_and_nothing_else() {
        let g = profile();
        let good = r#"{"name":"Mara Vell","role":"villain","age":-42,"alive":true,"fears":["the sea","being forgotten"]}"#;
        assert_eq!(accepts_all(&g, good), (true, true));
        assert!(serde_json::from_str::<Value>(good).is_ok());
        let cjk = r#"{"name":"林黛玉","role":"hero","age":17,"alive":false,"fears":["离别"]}"#;
        assert_eq!(accepts_all(&g, cjk), (true, true));
        for bad in [
            r#"{"role":"hero"}"#,                                                      // wrong order / missing
            r#"{"name":"","role":"hero""#,                                             // empty string (minLength 1)
            r#"{"name":"A","role":"king""#,                                            // not in enum
            r#"{"name":"A","role":"hero","age":1x"#,                                   // not an integer
            r#"{"name":"A","role":"hero","age":07"#,                                   // leading zero
            r#"{"name":"A","role":"hero","age":1,"alive":true,"fears":[]"#,            // minItems
            r#"{"name":"A","role":"hero","age":1,"alive":true,"fears":["a","b","c"]"#, // maxItems
            r#"{"name":"a\"b""#,                                                       // escapes
            r#"{ "name""#,                                                             // whitespace
            r#"{"name":"abcdefghijklmnopqrstu""#,                                      // maxLength 20
        ] {
            assert!(!accepts_all(&g, bad).0, "accepted {bad}");
        }
        // A prefix is accepted but not complete.
        assert_eq!(accepts_all(&g, r#"{"name":"Mar"#), (true, false));
    }

    #[test]
    fn multi_byte_tokens_and_trial_steps_leave_state_alone() {
        let g = profile();
        let mut m = g.matcher();
        assert!(m.advance(br#"{"name":""#));
        assert!(!m.accepts(b"\n"));
        assert!(!m.accepts(b""));
        assert!(m.accepts("Ana\"".as_bytes()));
        assert!(m.advance(b"Ana"));
        assert!(!m.advance(b"\"}"));
        assert!(m.advance(b"\",\"role\":\"he"));
        assert!(m.advance(b"ro\""));
        assert!(!m.is_complete());
    }

    #[test]
    fn max_bytes_bounds_every_document() {
        let g = profile();
        let longest = format!(r#"{{"name":"{}","role":"villain","age":-123456789,"alive":false,"fears":["{}","{}"]}}"#, "é".repeat(20), "x".repeat(400), "字".repeat(400));
        assert_eq!(accepts_all(&g, &longest), (true, true));
        assert!(g.max_bytes() >= longest.len());
    }

    #[test]
    fn a_tight_token_budget_steers_towards_the_shortest_completion() {
        let g = profile();
        let mut m = g.matcher();
        let shortest = r#"{"name":"A","role":"hero","age":1,"alive":true,"fears":["x"]}"#;
        assert_eq!(m.min_bytes_to_complete(), shortest.len());
        assert!(m.advance(br#"{"name":"Ab"#));
        // Room for exactly the rest: closing the name is fine, another letter is not.
        let rest = m.min_bytes_to_complete();
        assert!(m.accepts_within(b"\"", rest - 1));
        assert!(!m.accepts_within(b"c", rest - 1));
        assert!(m.accepts_within(b"c", rest));
        assert!(!m.accepts(&[0x80]), "a stray continuation byte is not UTF-8");
    }

    #[test]
    fn unsupported_schemas_say_where_and_why() {
        let e = JsonGrammar::compile(&json!({"type":"object","properties":{"x":{"type":"number"}}})).unwrap_err().to_string();
        assert!(e.contains("$.x") && e.contains("number"), "{e}");
        assert!(JsonGrammar::compile(&json!({"type":"string"})).is_err());
        assert!(JsonGrammar::compile(&json!([1])).is_err());
    }

    #[test]
    fn an_object_without_properties_is_any_json_object() {
        for schema in [json!({"type": "object"}), json!({"type": "object", "properties": {}})] {
            let g = JsonGrammar::compile(&schema).unwrap();
            for good in [
                "{}",
                r#"{"a":1}"#,
                r#"{"name":"Mara","age":-3,"alive":true,"ship":null,"fears":["the sea",[],{}],"home":{"town":"灯塔","rooms":[1,2]}}"#,
                r#"{"a":{"b":{"c":1}},"d":[[1],"x",false]}"#,
            ] {
                assert_eq!(accepts_all(&g, good), (true, true), "{good}");
                assert!(serde_json::from_str::<serde_json::Map<String, Value>>(good).is_ok());
                assert!(g.max_bytes() >= good.len());
            }
            for bad in [
                "[]",                           // JSON mode answers an object
                r#"{"a"}"#,                     // a key without a value
                r#"{"a":1,}"#,                  // a trailing comma
                r#"{,"a":1}"#,                  // a leading one
                r#"{"":1}"#,                    // an empty key
                r#"{"a":1.5}"#,                 // integers only
                r#"{"a":tru}"#,                 // not a keyword
                r#"{"a":{"b":{"c":{"d":1}}}}"#, // deeper than 3
                r#"{"a":[[[1]]]}"#,             // so are arrays
                r#"{"a":[[[1]]]}"#,             // so are arrays
                r#"{"a":1} "#,                  // nothing after the end
            ] {
                assert_ne!(accepts_all(&g, bad), (true, true), "{bad}");
            }
            let seventeen = format!("{{{}}}", (0..17).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>().join(","));
            assert!(!accepts_all(&g, &seventeen).0, "at most 16 members");
            // Closing is always in reach: from inside a nested value, the fewest bytes left.
            let mut m = g.matcher();
            assert!(m.advance(br#"{"a":{"b":["x"#));
            assert_eq!(m.min_bytes_to_complete(), r#""]}}"#.len());
        }
    }
}
