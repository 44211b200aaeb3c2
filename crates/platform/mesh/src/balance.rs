//! Choosing an instance for a call.
//!
//! - `round_robin`: each instance in turn.
//! - `weighted_round_robin`: smooth weighted round robin (as nginx): weights 5:1:1 give
//!   `a a b a c a a`, spread out rather than five `a` in a row.
//! - `least_connections`: the instance with the fewest calls in flight; ties in turn.
//! - `p2c` (the default): power of two choices: two instances at random, the one with fewer
//!   calls in flight. Nearly as good as least connections without every caller herding onto
//!   the same instance.
//!
//! Callers pass the instances that may be chosen (healthy, not ejected, not the one just
//! tried); the balancer only picks among them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalancerKind {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    #[default]
    P2c,
}

/// What the balancer knows of one candidate.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub weight: u32,
    /// Calls in flight to it.
    pub pending: u32,
}

#[derive(Debug, Default)]
pub struct Balancer {
    kind: BalancerKind,
    next: AtomicUsize,
    /// Smooth weighted round robin: the current weight of each instance.
    current: Mutex<HashMap<String, i64>>,
}

impl Balancer {
    pub fn new(kind: BalancerKind) -> Balancer {
        Balancer { kind, ..Balancer::default() }
    }

    pub fn kind(&self) -> BalancerKind {
        self.kind
    }

    /// The index of the chosen candidate; `None` only when there is none.
    pub fn pick(&self, candidates: &[Candidate<'_>]) -> Option<usize> {
        match candidates.len() {
            0 => return None,
            1 => return Some(0),
            _ => {}
        }
        Some(match self.kind {
            BalancerKind::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % candidates.len(),
            BalancerKind::WeightedRoundRobin => self.smooth_weighted(candidates),
            BalancerKind::LeastConnections => {
                let least = candidates.iter().map(|c| c.pending).min().unwrap_or(0);
                let tied: Vec<usize> = (0..candidates.len()).filter(|&i| candidates[i].pending == least).collect();
                tied[self.next.fetch_add(1, Ordering::Relaxed) % tied.len()]
            }
            BalancerKind::P2c => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..candidates.len());
                let mut b = rng.random_range(0..candidates.len() - 1);
                if b >= a {
                    b += 1;
                }
                if candidates[b].pending < candidates[a].pending { b } else { a }
            }
        })
    }

    fn smooth_weighted(&self, candidates: &[Candidate<'_>]) -> usize {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Running weights are kept for instances left out of one pick (the one a retry avoids),
        // so a retry does not skew the spread; the map only grows with instances ever seen, and
        // is cleared when it holds far more than the pool.
        if current.len() > 4 * candidates.len() + 16 {
            current.clear();
        }
        let total: i64 = candidates.iter().map(|c| i64::from(c.weight.max(1))).sum();
        let mut best = 0;
        let mut best_weight = i64::MIN;
        for (i, candidate) in candidates.iter().enumerate() {
            let step = i64::from(candidate.weight.max(1));
            let weight = match current.get_mut(candidate.id) {
                Some(weight) => {
                    *weight += step;
                    *weight
                }
                None => {
                    current.insert(candidate.id.to_owned(), step);
                    step
                }
            };
            if weight > best_weight {
                best_weight = weight;
                best = i;
            }
        }
        if let Some(weight) = current.get_mut(candidates[best].id) {
            *weight -= total;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates<'a>(ids: &'a [&'a str], weights: &[u32], pending: &[u32]) -> Vec<Candidate<'a>> {
        ids.iter().enumerate().map(|(i, id)| Candidate { id, weight: weights[i], pending: pending[i] }).collect()
    }

    fn counts(balancer: &Balancer, candidates: &[Candidate<'_>], picks: usize) -> Vec<usize> {
        let mut out = vec![0; candidates.len()];
        for _ in 0..picks {
            out[balancer.pick(candidates).expect("a candidate")] += 1;
        }
        out
    }

    #[test]
    fn round_robin_takes_each_in_turn() {
        let balancer = Balancer::new(BalancerKind::RoundRobin);
        let c = candidates(&["a", "b", "c"], &[1, 1, 1], &[0, 0, 0]);
        let order: Vec<usize> = (0..6).map(|_| balancer.pick(&c).unwrap()).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weights_5_1_1_give_5_1_1_spread_smoothly() {
        let balancer = Balancer::new(BalancerKind::WeightedRoundRobin);
        let c = candidates(&["a", "b", "c"], &[5, 1, 1], &[0, 0, 0]);
        let order: String = (0..7).map(|_| ["a", "b", "c"][balancer.pick(&c).unwrap()]).collect();
        assert_eq!(order, "aabacaa");
        assert_eq!(counts(&balancer, &c, 700), [500, 100, 100]);
    }

    #[test]
    fn weighted_round_robin_keeps_its_spread_when_a_pick_leaves_one_out() {
        let balancer = Balancer::new(BalancerKind::WeightedRoundRobin);
        let three = candidates(&["a", "b", "c"], &[1, 2, 3], &[0, 0, 0]);
        counts(&balancer, &three, 5);
        let two = candidates(&["a", "c"], &[1, 3], &[0, 0]);
        let picked = counts(&balancer, &two, 400);
        assert!((99..=101).contains(&picked[0]) && (299..=301).contains(&picked[1]), "{picked:?}");
        // Back to all three: over whole cycles the weights hold.
        let again = counts(&balancer, &three, 600);
        assert!(again.iter().zip([100, 200, 300]).all(|(got, want)| got.abs_diff(want) <= 3), "{again:?}");
    }

    #[test]
    fn least_connections_avoids_the_busy_instance() {
        let balancer = Balancer::new(BalancerKind::LeastConnections);
        let c = candidates(&["a", "b", "c"], &[1, 1, 1], &[7, 0, 0]);
        assert_eq!(counts(&balancer, &c, 100), [0, 50, 50]);
    }

    #[test]
    fn power_of_two_choices_never_takes_the_busiest_of_two_and_rarely_of_many() {
        let balancer = Balancer::new(BalancerKind::P2c);
        let two = candidates(&["a", "b"], &[1, 1], &[3, 1]);
        assert_eq!(counts(&balancer, &two, 1_000), [0, 1_000]);
        // With four, the busiest is chosen only when both draws... cannot both be it: never.
        let four = candidates(&["a", "b", "c", "d"], &[1, 1, 1, 1], &[9, 1, 2, 3]);
        let picked = counts(&balancer, &four, 6_000);
        assert_eq!(picked[0], 0, "{picked:?}");
        // b wins every pair it is in: half of all draws.
        assert!(picked[1] > 2_500 && picked[1] < 3_500, "{picked:?}");
    }

    #[test]
    fn one_or_no_candidate() {
        for kind in [
            BalancerKind::RoundRobin,
            BalancerKind::WeightedRoundRobin,
            BalancerKind::LeastConnections,
            BalancerKind::P2c,
        ] {
            let balancer = Balancer::new(kind);
            assert_eq!(balancer.pick(&[]), None);
            assert_eq!(balancer.pick(&candidates(&["a"], &[1], &[4])), Some(0));
        }
    }
}
