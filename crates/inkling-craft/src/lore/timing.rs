//! What a lorebook remembers between generations: which entries are sticky, which are
//! cooling down, and the count that seeds each probability roll.
//!
//! Generation `g` is the g-th prompt assembled with the state (the first is 1). An entry that
//! fires at `g` with `sticky: s` and `cooldown: c` stays in through `g + s` whatever the text
//! says, then cannot fire through `g + s + c`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoreState {
    /// Generations assembled so far.
    #[serde(default)]
    pub generation: u64,
    /// Entry name → its timer; entries with nothing pending are not kept.
    #[serde(default)]
    pub timers: BTreeMap<String, Timer>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The last generation it stays in without its keys.
    pub sticky_through: u64,
    /// The last generation it cannot fire in.
    pub cooldown_through: u64,
}

/// Where an entry stands at generation `g`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Free,
    /// In without its keys, for this many generations more after this one.
    Sticky {
        left: u64,
    },
    /// Cannot fire, for this many generations more after this one.
    Cooling {
        left: u64,
    },
}

impl LoreState {
    pub fn standing(&self, name: &str, g: u64) -> Standing {
        match self.timers.get(name) {
            Some(t) if g <= t.sticky_through => Standing::Sticky { left: t.sticky_through - g },
            Some(t) if g <= t.cooldown_through => Standing::Cooling { left: t.cooldown_through - g },
            _ => Standing::Free,
        }
    }

    /// Records that `name` fired on its own (keys, recursion) at `g`.
    pub fn fired(&mut self, name: &str, g: u64, sticky: u32, cooldown: u32) {
        if sticky == 0 && cooldown == 0 {
            self.timers.remove(name);
            return;
        }
        let sticky_through = g + u64::from(sticky);
        self.timers.insert(name.to_string(), Timer { sticky_through, cooldown_through: sticky_through + u64::from(cooldown) });
    }

    /// Drops timers that have run out by `g`, so the stored state stays small.
    pub fn forget_before(&mut self, g: u64) {
        self.timers.retain(|_, t| t.cooldown_through >= g);
    }
}

/// Whether an entry with `percent` chance goes in at generation `g`: the same seed, entry and
/// generation give the same answer, so a prompt can be rebuilt exactly.
pub fn roll(seed: u64, name: &str, g: u64, percent: u8) -> bool {
    if percent >= 100 {
        return true;
    }
    // FNV-1a over the name, then one splitmix64 step: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h ^ g.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z % 100 < u64::from(percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_then_cooldown_then_free() {
        let mut s = LoreState::default();
        s.fired("Mara", 5, 2, 3);
        let seen: Vec<Standing> = (5..=11).map(|g| s.standing("Mara", g)).collect();
        use Standing::*;
        assert_eq!(seen, [Sticky { left: 2 }, Sticky { left: 1 }, Sticky { left: 0 }, Cooling { left: 2 }, Cooling { left: 1 }, Cooling { left: 0 }, Free]);
        s.forget_before(11);
        assert!(s.timers.is_empty());
    }

    #[test]
    fn rolls_are_seeded_and_near_their_rate() {
        let hits = (1..=2000).filter(|&g| roll(7, "Elder God", g, 25)).count();
        assert!((400..600).contains(&hits), "{hits} of 2000 at 25%");
        let a: Vec<bool> = (1..50).map(|g| roll(7, "x", g, 50)).collect();
        assert_eq!(a, (1..50).map(|g| roll(7, "x", g, 50)).collect::<Vec<_>>());
        assert_ne!(a, (1..50).map(|g| roll(8, "x", g, 50)).collect::<Vec<_>>(), "another seed, other rolls");
        assert!((1..100).all(|g| roll(1, "x", g, 100)) && !(1..100).any(|g| roll(1, "x", g, 0)));
    }
}
