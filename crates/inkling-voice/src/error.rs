use thiserror::Error;

#[derive(Debug, Error)]
pub enum VoiceError {
    #[error("a voice profile needs at least {needed} {unit} of your own writing and there are {have}; write more, or import pages you wrote (text the model wrote does not count)")]
    NotEnoughText { have: usize, needed: usize, unit: &'static str },
}

pub type Result<T> = std::result::Result<T, VoiceError>;
