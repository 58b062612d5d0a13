//! The writer's choices as preference pairs, read from the generation tree and the ledger:
//! what learning from feedback trains on.
//!
//! - **Chosen over its siblings.** Candidates of one run (same parent, document, tool, seed
//!   and request) were shown together; the one accepted is preferred to each of the others,
//!   rejected or passed over.
//! - **Edited after accepting.** A suggestion the writer accepted and then changed: their
//!   version (the text now where the suggestion went, by the ledger) is preferred to the
//!   model's.
//!
//! The prompt of a pair is the writer's text the tool was given (the story before, for a
//! continuation), after the `before` context of a selection tool.

use crate::error::Result;
use crate::generations::{GenerationNode, Status};
use crate::ledger::Author;
use crate::store::{Project, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Why a pair exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairKind {
    AcceptedOverSibling,
    EditedAfterAccept,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackPair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    pub kind: PairKind,
    /// The generation the chosen (or, for an edit, the edited) answer came from.
    pub generation: i64,
}

/// What makes candidates one run: the same parent, document, tool, seed and request.
type RunKey<'a> = (Option<i64>, Option<i64>, &'a str, u64, String);

fn run_key(n: &GenerationNode) -> RunKey<'_> {
    let g = &n.generation;
    (g.parent_id, g.document_id, g.recipe.as_str(), g.seed, g.request.to_string())
}

fn prompt_of(g: &GenerationNode) -> String {
    let field = |k: &str| g.generation.request.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let (before, text) = (field("before"), field("text"));
    if before.trim().is_empty() { text } else { format!("{before}\n\n{text}") }
}

impl Store {
    /// Every preference the project's history holds, oldest first.
    pub fn feedback_pairs(&self, project: &Project) -> Result<Vec<FeedbackPair>> {
        let nodes = self.generation_tree(project, None)?;
        let mut runs: HashMap<RunKey<'_>, Vec<&GenerationNode>> = HashMap::new();
        for n in &nodes {
            runs.entry(run_key(n)).or_default().push(n);
        }
        let mut pairs = Vec::new();
        for n in nodes.iter().filter(|n| matches!(n.status, Status::Accepted | Status::Edited)) {
            let g = &n.generation;
            let run = &runs[&run_key(n)];
            for other in run.iter().filter(|o| o.id != n.id && !matches!(o.status, Status::Accepted | Status::Edited)) {
                pairs.push(FeedbackPair { prompt: prompt_of(n), chosen: g.text.clone(), rejected: other.generation.text.clone(), kind: PairKind::AcceptedOverSibling, generation: n.id });
            }
        }
        let by_id: HashMap<i64, &GenerationNode> = nodes.iter().map(|n| (n.id, n)).collect();
        for doc in self.documents(project)? {
            let head = self.head(&doc)?;
            let chars: Vec<char> = head.text.chars().collect();
            // Where each accepted generation's characters lie now, and whether any were edited.
            let mut regions: Vec<(i64, usize, usize, bool)> = Vec::new();
            for s in head.ledger.spans() {
                let (g, edited) = match s.author {
                    Author::Model { generation: Some(g) } => (g, false),
                    Author::ModelEdited { generation: Some(g) } => (g, true),
                    _ => continue,
                };
                match regions.iter_mut().find(|r| r.0 == g) {
                    Some(r) => {
                        r.2 = s.end;
                        r.3 |= edited;
                    }
                    None => regions.push((g, s.start, s.end, edited)),
                }
            }
            for (g, start, end, edited) in regions {
                let Some(node) = by_id.get(&g).filter(|_| edited) else { continue };
                let now: String = chars[start.min(chars.len())..end.min(chars.len())].iter().collect();
                if now.trim() != node.generation.text.trim() && !now.trim().is_empty() {
                    pairs.push(FeedbackPair { prompt: prompt_of(node), chosen: now, rejected: node.generation.text.clone(), kind: PairKind::EditedAfterAccept, generation: g });
                }
            }
        }
        Ok(pairs)
    }
}
