//! Acknowledgements of one file's batches. Batches are numbered as they are read; every
//! output that takes a batch completes it, in any order (several outputs, several requests in
//! flight); the offset that may be checkpointed advances only across the longest run of
//! completed batches from the oldest, so a later batch's ack never covers an earlier one that
//! was not delivered. A batch never completed (dropped at shutdown) holds the offset there.

use std::collections::VecDeque;

/// Identifies one batch of one file for its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The file generation the batch belongs to (see `Progress::generation`).
    pub generation: u32,
    /// The batch's number within the file, from 0, never reused.
    pub seq: u64,
}

/// One batch still waiting for some of its outputs.
#[derive(Debug, Clone)]
struct InFlight {
    /// Offset just past the batch, and the marker of the bytes before it.
    end_offset: u64,
    marker: u64,
    /// Outputs that have not completed it yet.
    waiting: u32,
}

/// The batches of one file not yet completed by every output, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    generation: u32,
    /// Number of the next batch registered.
    next_seq: u64,
    /// Number of `in_flight[0]`.
    first_seq: u64,
    in_flight: VecDeque<InFlight>,
}

impl Tracker {
    /// Numbers a batch of `generation` ending at `end_offset` (with `marker`), to be completed
    /// by `outputs` outputs. A new generation forgets the batches of the old one.
    pub fn register(
        &mut self,
        generation: u32,
        end_offset: u64,
        marker: u64,
        outputs: u32,
    ) -> Ticket {
        if generation != self.generation {
            self.generation = generation;
            self.in_flight.clear();
            self.first_seq = self.next_seq;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push_back(InFlight {
            end_offset,
            marker,
            waiting: outputs,
        });
        Ticket { generation, seq }
    }

    /// One output has delivered the batch. Returns the new checkpointable (offset, marker)
    /// when the run of completed batches from the oldest grew; None otherwise (an older batch
    /// still waits, another output still has to complete it, or the ticket is stale).
    pub fn complete(&mut self, ticket: Ticket) -> Option<(u64, u64)> {
        if ticket.generation != self.generation || ticket.seq < self.first_seq {
            return None;
        }
        let slot = self
            .in_flight
            .get_mut((ticket.seq - self.first_seq) as usize)?;
        slot.waiting = slot.waiting.checked_sub(1)?;
        let mut done = None;
        while self.in_flight.front().is_some_and(|b| b.waiting == 0) {
            if let Some(b) = self.in_flight.pop_front() {
                self.first_seq += 1;
                done = Some((b.end_offset, b.marker));
            }
        }
        done
    }

    /// Batches registered and not yet completed by every output.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(t: &mut Tracker, end: u64, outputs: u32) -> Ticket {
        t.register(0, end, end * 10, outputs)
    }

    #[test]
    fn in_order_with_one_output_advances_every_time() {
        let mut t = Tracker::default();
        let a = batch(&mut t, 10, 1);
        let b = batch(&mut t, 20, 1);
        assert_eq!(t.complete(a), Some((10, 100)));
        assert_eq!(t.complete(b), Some((20, 200)));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn out_of_order_completion_waits_for_the_oldest() {
        let mut t = Tracker::default();
        let a = batch(&mut t, 10, 1);
        let b = batch(&mut t, 20, 1);
        let c = batch(&mut t, 30, 1);
        assert_eq!(t.complete(c), None);
        assert_eq!(t.complete(b), None);
        assert_eq!(t.complete(a), Some((30, 300)), "all three now, at once");
    }

    #[test]
    fn two_outputs_both_have_to_complete() {
        let mut t = Tracker::default();
        let a = batch(&mut t, 10, 2);
        let b = batch(&mut t, 20, 2);
        assert_eq!(t.complete(a), None, "one output of two");
        assert_eq!(t.complete(b), None);
        assert_eq!(t.complete(b), None, "b done, a still waits for one");
        assert_eq!(t.complete(a), Some((20, 200)));
        assert_eq!(t.complete(a), None, "a third completion is ignored");
    }

    #[test]
    fn completions_of_an_old_generation_are_ignored() {
        let mut t = Tracker::default();
        let old = batch(&mut t, 10, 1);
        let new = t.register(1, 5, 50, 1);
        assert_eq!(t.complete(old), None);
        assert_eq!(t.complete(new), Some((5, 50)));
    }

    #[test]
    fn a_dropped_ticket_holds_the_offset_there() {
        let mut t = Tracker::default();
        let a = batch(&mut t, 10, 1);
        let _dropped = batch(&mut t, 20, 1);
        let c = batch(&mut t, 30, 1);
        assert_eq!(t.complete(a), Some((10, 100)));
        assert_eq!(t.complete(c), None, "never past the undelivered batch");
        assert_eq!(t.in_flight(), 2);
    }

    /// xorshift64*: a fixed, dependency-free source of interleavings.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    /// Random interleavings of register / complete (by 1-3 outputs, in any order, some
    /// tickets never completed) / generation change, against a model that recomputes the
    /// checkpointable offset from scratch: the end of the longest prefix of the current
    /// generation's batches that every output completed.
    #[test]
    fn model_based_random_interleavings() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let outputs = 1 + rng.below(3) as u32;
            let mut t = Tracker::default();
            let mut generation = 0u32;
            // Model: per batch of the current generation, (end, completions so far).
            let mut model: Vec<(u64, u32)> = Vec::new();
            let mut open: Vec<(Ticket, usize)> = Vec::new(); // one entry per pending completion
            let mut stale: Vec<Ticket> = Vec::new();
            let mut end = 0u64;
            let mut acked: Option<u64> = None;
            for _ in 0..400 {
                match rng.below(10) {
                    0..=3 => {
                        end += 1 + rng.below(100);
                        let tk = t.register(generation, end, end ^ 0xabc, outputs);
                        model.push((end, 0));
                        for _ in 0..outputs {
                            open.push((tk, model.len() - 1));
                        }
                    }
                    4..=8 if !open.is_empty() => {
                        let (tk, i) = open.swap_remove(rng.below(open.len() as u64) as usize);
                        // Some completions never happen (the batch dropped).
                        if rng.below(20) == 0 {
                            continue;
                        }
                        model[i].1 += 1;
                        let got = t.complete(tk);
                        let prefix = model.iter().take_while(|(_, n)| *n == outputs).count();
                        let want = prefix.checked_sub(1).map(|j| model[j].0);
                        if want != acked {
                            assert_eq!(got, want.map(|e| (e, e ^ 0xabc)), "seed {seed}");
                            acked = want;
                        } else {
                            assert_eq!(got, None, "seed {seed}: no progress expected");
                        }
                    }
                    9 => {
                        generation += 1;
                        stale.extend(open.drain(..).map(|(tk, _)| tk));
                        model.clear();
                        acked = None;
                        end = 0;
                        // The tracker learns of the new generation at its first batch.
                        end += 1 + rng.below(100);
                        let tk = t.register(generation, end, end ^ 0xabc, outputs);
                        model.push((end, 0));
                        for _ in 0..outputs {
                            open.push((tk, 0));
                        }
                        for s in stale.drain(..) {
                            assert_eq!(t.complete(s), None, "seed {seed}: stale ticket");
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
