//! The lorebook (story bible, codex): entries about characters, places, items and style
//! that enter a prompt when the story calls for them.
//!
//! - [`entry`]: an entry and its rules (keys, secondary keys and their logic, placement,
//!   order, timing, chance, the chapter it starts in and its progressions).
//! - [`keys`]: whether a key occurs in a text (whole words, capitals, CJK, patterns).
//! - [`scan`]: which entries fire for one prompt, through recursion, and why the others did not.
//! - [`timing`]: sticky and cooldown across generations, and seeded chance.
//! - [`world_info`]: import and export of SillyTavern and KoboldAI world info.
//!
//! The token budget and where fired entries land are [`crate::context`]'s: it alone counts
//! tokens.
//!
//! Invariant: an entry or progression that starts at chapter N is never in a prompt for an
//! earlier chapter, or for one whose chapter is not known.

pub mod entry;
pub mod keys;
pub mod scan;
pub mod timing;
pub mod world_info;

pub use entry::{Logic, LoreEntry, Position, Progression};
pub use scan::{Activation, Fired, Held, LoreSettings, Scan, activate};
pub use timing::LoreState;
