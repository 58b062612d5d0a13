//! inkling's store: every word a writer keeps, in one local SQLite database.
//!
//! - [`store`]: projects, documents in the writer's order, revisions (every save and every
//!   accepted suggestion, with its origin), undo/redo/restore that never delete anything.
//! - [`ledger`]: who wrote which characters (writer, model, model text the writer edited).
//! - [`generations`]: the generation tree and the writer's feedback on each node.
//! - [`preferences`]: the writer's choices as preference pairs (accepted over its siblings,
//!   their edit over the model's text) for learning from feedback.
//! - [`bible`]: story-bible entries; memory and the author's note live on the project.
//! - [`import`] / [`export`]: .txt/.md in; Markdown, text, EPUB and DOCX out.
//! - [`pipeline`]: the story pipeline's documents (stages, a chapter's beats and summary),
//!   what each was generated from, locks, and chapters marked done.
//! - [`voice`]: the writer's voice profile, built from the text the ledger marks as theirs.
//! - [`schema`]: migrations by `PRAGMA user_version`.
//! - [`backup`]: `Store::backup` and `Store::restore_backup`, taken while others write.
//! - [`relocate`]: moving the database to a new place (copied with the online backup API,
//!   checked, the old file kept beside a note).
//!
//! Invariants: a save is one transaction (all or nothing, durable once `save` returns);
//! revisions are never deleted or rewritten; a database from a newer inkling is refused
//! before it is touched; this crate never calls a model.

pub mod backup;
pub mod bible;
pub mod error;
pub mod export;
pub mod generations;
pub mod import;
pub mod ledger;
pub mod pipeline;
pub mod preferences;
pub mod relocate;
pub mod schema;
pub mod store;
pub mod voice;

pub use bible::BibleEntry;
pub use error::{Result, StoreError};
pub use ledger::{Author, Ledger, Share};
pub use pipeline::Locks;
pub use relocate::{Relocation, relocate};
pub use store::{Document, Origin, Project, Report, Revision, RevisionInfo, Store};
pub use voice::VoiceRecord;
