//! The writer's toolbox: continue, brainstorm, outline, character and place profiles, draft,
//! describe, expand, tighten, rewrite, poem, summarize, business writing, first lines, titles
//! and a model's continuity check, plus rule-based proofreading.
//!
//! - [`recipe`]: each tool is data, a TOML recipe ([`toolbox`] holds the built-in ones and
//!   loads the writer's own).
//! - [`bans`]: the banned phrases a request gets (the built-in list, less what its prompt
//!   uses, plus the writer's own).
//! - [`context`]: the prompt under a token budget: story text nearest the cursor, story-bible
//!   entries triggered by it ([`lore`]), memory and the author's note; [`text`] knows where
//!   text may be cut.
//! - [`run`]: a tool on any [`inkling_engine::Backend`]; [`output`] cleans and parses the
//!   answers (talk about the edit cut, flags for what cannot be cut); [`carry_on`] asks again
//!   for the items a short list lacks; [`language`] keeps answers in the writer's language;
//!   [`diff`] shows what a rewrite changed; [`tokens`] shows an answer token by token with
//!   its alternatives; [`proofread`] lints with harper-core. Prose recipes (`output.voice`)
//!   rank their candidates by the writer's voice profile in `context.voice`
//!   ([`inkling_voice`]).
//! - [`pipeline`]: the story pipeline's stages (braindump → synopsis → outline → beats →
//!   chapter → summary), their lockable parts, and drafting a chapter beat by beat.
//!
//! Invariants: the writer's text is never altered by a tool, only proposed against (a diff or
//! an applicable finding); a JSON tool's answer always parses (it is decoded under the
//! recipe's schema); a prompt never exceeds the model's context; no tool talks to storage or
//! sockets.

pub mod bans;
pub mod carry_on;
pub mod context;
pub mod diff;
pub mod error;
pub mod language;
pub mod lore;
pub mod output;
pub mod pipeline;
pub mod proofread;
pub mod recipe;
pub mod run;
pub mod text;
pub mod tokens;
pub mod toolbox;

pub use context::{Assembled, ChapterSummary, Frame, Part, StoryContext};
pub use error::{CraftError, Result};
pub use language::Language;
pub use lore::{LoreEntry, LoreSettings, LoreState};
pub use recipe::Recipe;
pub use run::{Flag, ToolCandidate, ToolOutput, ToolRequest, run};
pub use toolbox::Toolbox;
