//! A progress bar on stderr while the model reads a long prompt: a 4,000-token chapter
//! takes tens of seconds before the first word appears, and a writer should see it move.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inkling_engine::Event;

/// Prompts with fewer tokens left to read than this finish before a bar would help.
const MIN_TOKENS: usize = 300;

/// Follows a generation's `Event::Prefill`s; shows nothing for short prompts, or when
/// stderr is not a terminal.
#[derive(Default)]
pub struct PrefillBar {
    bar: Option<ProgressBar>,
}

impl PrefillBar {
    pub fn event(&mut self, e: &Event<'_>) {
        match *e {
            Event::Prefill { cached, processed, total } => {
                if self.bar.is_none() && total - cached >= MIN_TOKENS && processed < total {
                    let bar = ProgressBar::with_draw_target(Some((total - cached) as u64), ProgressDrawTarget::stderr());
                    bar.set_style(ProgressStyle::with_template("reading the prompt [{bar:30}] {pos}/{len} tokens ({eta})").unwrap_or_else(|_| ProgressStyle::default_bar()));
                    self.bar = Some(bar);
                }
                if let Some(bar) = &self.bar {
                    bar.set_position((processed - cached) as u64);
                    if processed >= total {
                        bar.finish_and_clear();
                    }
                }
            }
            _ => self.clear(),
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for PrefillBar {
    fn drop(&mut self) {
        self.clear();
    }
}
