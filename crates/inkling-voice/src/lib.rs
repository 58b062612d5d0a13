//! The writer's voice: a stylometric profile of the text they wrote themselves, described in
//! plain words, and a ranking of the model's candidates by how close each is to it.
//!
//! Pure computation, no IO: the store hands over the runs of text its authorship ledger marks
//! as the writer's, and the craft layer ranks candidates with the result. Sentences and words
//! are cut by UAX #29 (the `unicode-segmentation` crate); English is counted in words,
//! Chinese in characters. See [`profile`] for the distance.

pub mod describe;
pub mod error;
pub mod features;
pub mod model;
pub mod profile;
pub mod rank;
pub mod text;

pub use error::{Result, VoiceError};
pub use features::Group;
pub use profile::{Fit, GroupFit, Profile};
pub use rank::{VoiceRank, rank};
pub use text::Script;
