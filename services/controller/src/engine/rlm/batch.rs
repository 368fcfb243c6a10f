//! `call_operator_batch` execution (spec 30 §8.4, §8.5): a fair ring over
//! the batch's operators with per-operator in-flight caps when batch mode is
//! on, index order one at a time when it is off.
//!
//! The call budget is checked only when a call is waiting to be dispatched,
//! so a batch that uses exactly `max_operator_calls` completes and its
//! results reach the bridge (decision 2: an exact fit is not a violation).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use pecr_errors::PecrError;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::protocol::{BatchCall, BatchEntry, is_allowlisted};
use super::{Flow, LoopState, Stop};
use crate::budget_gate::StopReason;
use crate::config::OperatorPolicy;
use crate::gateway_client::CallOutcome;

/// One operator's lane: its FIFO of call indices and its in-flight count.
#[derive(Debug)]
struct Lane {
    queue: VecDeque<usize>,
    cap: Option<u32>,
    in_flight: u32,
}

impl Lane {
    fn ready(&self) -> bool {
        !self.queue.is_empty() && self.cap.is_none_or(|cap| self.in_flight < cap)
    }
}

/// The dispatch order of one batch, free of I/O so it can be tested alone.
///
/// The fairness ring holds each operator `fairness_weight` times. It is
/// stored as runs of (lane, count): rotating one name from front to back
/// keeps the cyclic sequence, so the runs stay at most lanes + 1 however
/// large the weights are.
#[derive(Debug)]
pub struct FairQueue {
    lanes: Vec<Lane>,
    lane_of_call: Vec<usize>,
    ring: VecDeque<(usize, u64)>,
    ring_len: u64,
    pending: usize,
}

impl FairQueue {
    /// Lanes in order of first appearance; `names` are already trimmed.
    pub fn new<'n>(
        names: impl IntoIterator<Item = &'n str>,
        policies: &BTreeMap<String, OperatorPolicy>,
    ) -> Self {
        let mut lane_names: Vec<&str> = Vec::new();
        let mut queue = Self {
            lanes: Vec::new(),
            lane_of_call: Vec::new(),
            ring: VecDeque::new(),
            ring_len: 0,
            pending: 0,
        };
        for (index, name) in names.into_iter().enumerate() {
            let lane = match lane_names.iter().position(|known| *known == name) {
                Some(lane) => lane,
                None => {
                    let policy = policies.get(name).copied().unwrap_or_default();
                    let weight = u64::from(policy.fairness_weight.unwrap_or(1).max(1));
                    lane_names.push(name);
                    queue.lanes.push(Lane {
                        queue: VecDeque::new(),
                        cap: policy.max_in_flight,
                        in_flight: 0,
                    });
                    let lane = queue.lanes.len() - 1;
                    queue.ring.push_back((lane, weight));
                    queue.ring_len += weight;
                    lane
                }
            };
            queue.lanes[lane].queue.push_back(index);
            queue.lane_of_call.push(lane);
            queue.pending += 1;
        }
        queue
    }

    /// Calls not yet dispatched.
    pub fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// The next call to start, rotating the ring at most one revolution;
    /// None when every operator with work is at its cap.
    pub fn next(&mut self) -> Option<usize> {
        let mut tried = 0;
        while tried < self.ring_len {
            let (lane, count) = self.ring.pop_front()?;
            if self.lanes[lane].ready() {
                // Move one copy of the name to the back and take its head.
                if count > 1 {
                    self.ring.push_front((lane, count - 1));
                }
                self.push_back(lane, 1);
                let entry = &mut self.lanes[lane];
                entry.in_flight += 1;
                self.pending -= 1;
                return entry.queue.pop_front();
            }
            // Every copy in this run would be skipped the same way; move
            // them all at once, but never past one full revolution.
            let step = count.min(self.ring_len - tried);
            if step < count {
                self.ring.push_front((lane, count - step));
            }
            self.push_back(lane, step);
            tried += step;
        }
        None
    }

    /// A dispatched call has finished.
    pub fn completed(&mut self, call: usize) {
        if let Some(&lane) = self.lane_of_call.get(call) {
            let lane = &mut self.lanes[lane];
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
    }

    fn push_back(&mut self, lane: usize, count: u64) {
        match self.ring.back_mut() {
            Some((last, run)) if *last == lane => *run += count,
            _ => self.ring.push_back((lane, count)),
        }
    }
}

/// The trimmed names a batch runs under.
fn trimmed(calls: Vec<BatchCall>) -> Vec<BatchCall> {
    calls
        .into_iter()
        .map(|call| BatchCall {
            op_name: call.op_name.trim().to_owned(),
            params: call.params,
        })
        .collect()
}

impl LoopState<'_> {
    /// Batch mode on: every name is validated first, then calls start in
    /// fair-ring order within the width and caps, completions are taken in
    /// completion order. A stop abandons the calls still in flight.
    pub(super) async fn run_fair(&mut self, calls: Vec<BatchCall>) -> Flow<Vec<BatchEntry>> {
        let calls = trimmed(calls);
        if !calls.iter().all(|call| is_allowlisted(&call.op_name)) {
            return Ok(Err(StopReason::BridgeOperatorNotAllowlisted.into()));
        }
        let mut queue = FairQueue::new(
            calls.iter().map(|call| call.op_name.as_str()),
            &self.options.policies,
        );
        let mut entries: Vec<Option<BatchEntry>> = vec![None; calls.len()];
        let mut in_flight: JoinSet<(usize, Result<CallOutcome, PecrError>)> = JoinSet::new();
        loop {
            let width = self.gate.width(reserved(&in_flight));
            while in_flight.len() < width && queue.has_pending() {
                if let Err(reason) = self.gate.check_call(reserved(&in_flight)) {
                    return Ok(Err(reason.into()));
                }
                let Some(index) = queue.next() else {
                    break;
                };
                let remaining = match self.gate.check_wallclock() {
                    Ok(remaining) => remaining,
                    Err(reason) => return Ok(Err(reason.into())),
                };
                let call = &calls[index];
                let (op_name, params) = (call.op_name.clone(), call.params.clone());
                let (session, metrics) = (self.session.clone(), self.metrics.clone());
                let admitted = Instant::now();
                in_flight.spawn(
                    async move {
                        metrics
                            .operator_queue_wait
                            .observe(admitted.elapsed().as_secs_f64());
                        let _in_flight = metrics.in_flight();
                        (index, session.call(&op_name, &params, remaining).await)
                    }
                    .in_current_span(),
                );
            }
            let Some(joined) = in_flight.join_next().await else {
                return Ok(if queue.has_pending() {
                    // Nothing can start and nothing runs: the batch is stuck.
                    Err(StopReason::BridgeInvalidMessage.into())
                } else {
                    Ok(entries.into_iter().flatten().collect())
                });
            };
            let (index, outcome) =
                joined.map_err(|_| PecrError::internal("operator task failed"))?;
            let outcome = outcome?;
            queue.completed(index);
            match self.complete(&calls[index].op_name, outcome) {
                Ok(entry) => entries[index] = Some(entry),
                Err(stop) => return Ok(Err(stop)),
            }
        }
    }

    /// Batch mode off: index order, one call at a time.
    pub(super) async fn run_sequential(&mut self, calls: Vec<BatchCall>) -> Flow<Vec<BatchEntry>> {
        let mut entries = Vec::with_capacity(calls.len());
        for call in trimmed(calls) {
            if let Err(reason) = self.gate.check_call(0) {
                return Ok(Err(reason.into()));
            }
            if !is_allowlisted(&call.op_name) {
                return Ok(Err(StopReason::BridgeOperatorNotAllowlisted.into()));
            }
            let remaining = match self.gate.check_wallclock() {
                Ok(remaining) => remaining,
                Err(reason) => return Ok(Err(reason.into())),
            };
            let outcome = {
                let _in_flight = self.metrics.in_flight();
                self.session
                    .call(&call.op_name, &call.params, remaining)
                    .await?
            };
            match self.complete(&call.op_name, outcome) {
                Ok(entry) => entries.push(entry),
                Err(stop) => return Ok(Err(stop)),
            }
        }
        Ok(Ok(entries))
    }

    /// Counts a finished batch call, keeps its evidence, then checks bytes.
    fn complete(&mut self, op_name: &str, outcome: CallOutcome) -> Result<BatchEntry, Stop> {
        self.progress.call_settled(self.step, op_name, &outcome);
        self.gate.record_call(outcome.bytes_len);
        let result = match outcome.result {
            Some(result) if outcome.ok => result,
            _ => return Err(Stop::operator(outcome.terminal_mode)),
        };
        self.evidence.record(op_name, &result);
        self.gate.check_bytes()?;
        Ok(BatchEntry {
            ok: true,
            op_name: op_name.to_owned(),
            terminal_mode: outcome.terminal_mode,
            result,
            bytes_len: outcome.bytes_len,
        })
    }
}

fn reserved<T: 'static>(in_flight: &JoinSet<T>) -> u32 {
    u32::try_from(in_flight.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(entries: &[(&str, Option<u32>, Option<u32>)]) -> BTreeMap<String, OperatorPolicy> {
        entries
            .iter()
            .map(|(name, max_in_flight, fairness_weight)| {
                (
                    (*name).to_owned(),
                    OperatorPolicy {
                        max_in_flight: *max_in_flight,
                        fairness_weight: *fairness_weight,
                    },
                )
            })
            .collect()
    }

    /// Drives a queue at a fixed width, completing the oldest call first;
    /// returns the start order and the peak in flight per operator.
    fn simulate(
        names: &[&str],
        policy: &BTreeMap<String, OperatorPolicy>,
        width: usize,
    ) -> (Vec<usize>, BTreeMap<String, usize>) {
        let mut queue = FairQueue::new(names.iter().copied(), policy);
        let mut started = Vec::new();
        let mut running: VecDeque<usize> = VecDeque::new();
        let mut peak: BTreeMap<String, usize> = BTreeMap::new();
        loop {
            while running.len() < width && queue.has_pending() {
                let Some(index) = queue.next() else { break };
                started.push(index);
                running.push_back(index);
                let name = names[index];
                let now = running.iter().filter(|&&call| names[call] == name).count();
                let slot = peak.entry(name.to_owned()).or_default();
                *slot = (*slot).max(now);
            }
            let Some(done) = running.pop_front() else {
                assert!(!queue.has_pending(), "stuck with work pending");
                return (started, peak);
            };
            queue.completed(done);
        }
    }

    #[test]
    fn scenario_25_fair_ring_order() {
        let names = ["search", "search", "search", "fetch_span", "fetch_span"];
        let (started, _) = simulate(&names, &policies(&[("fetch_span", None, Some(2))]), 1);
        let order: Vec<&str> = started.iter().map(|&index| names[index]).collect();
        assert_eq!(
            order,
            ["search", "fetch_span", "fetch_span", "search", "search"]
        );
        assert_eq!(started, [0, 3, 4, 1, 2], "each operator keeps FIFO order");
    }

    #[test]
    fn scenario_26_per_operator_caps() {
        let names = [
            "search",
            "search",
            "search",
            "fetch_span",
            "fetch_span",
            "fetch_span",
        ];
        let caps = policies(&[("search", Some(1), None), ("fetch_span", Some(1), None)]);
        let (started, peak) = simulate(&names, &caps, 4);
        assert_eq!(started.len(), 6, "every call runs");
        assert_eq!(peak.get("search"), Some(&1));
        assert_eq!(peak.get("fetch_span"), Some(&1));

        let mut queue = FairQueue::new(names.iter().copied(), &caps);
        assert_eq!(queue.next(), Some(0));
        assert_eq!(queue.next(), Some(3));
        assert_eq!(queue.next(), None, "both operators at their cap");
        queue.completed(3);
        assert_eq!(queue.next(), Some(4));
    }

    #[test]
    fn no_policies_round_robin_in_first_appearance_order() {
        let names = ["fetch_span", "search", "fetch_span", "search", "diff"];
        let (started, peak) = simulate(&names, &BTreeMap::new(), 8);
        assert_eq!(started, [0, 1, 4, 2, 3]);
        assert_eq!(peak.get("fetch_span"), Some(&2), "no cap by default");
    }

    #[test]
    fn a_failed_revolution_leaves_the_ring_as_it_was() {
        // Ring S, F, F, S, S, S (S weight 4 split by rotation), all blocked.
        let names = ["search", "fetch_span", "search"];
        let weights = policies(&[
            ("search", Some(1), Some(4)),
            ("fetch_span", Some(1), Some(2)),
        ]);
        let mut queue = FairQueue::new(names.iter().copied(), &weights);
        assert_eq!(queue.next(), Some(0));
        assert_eq!(queue.next(), Some(1));
        let before: Vec<_> = queue.ring.iter().copied().collect();
        assert_eq!(queue.next(), None);
        let expand = |runs: &[(usize, u64)]| -> Vec<usize> {
            runs.iter()
                .flat_map(|&(lane, count)| std::iter::repeat_n(lane, count as usize))
                .collect()
        };
        let after: Vec<_> = queue.ring.iter().copied().collect();
        assert_eq!(expand(&after), expand(&before));
    }

    #[test]
    fn huge_weights_stay_cheap() {
        let names = ["search", "fetch_span", "search"];
        let heavy = policies(&[
            ("search", Some(1), Some(u32::MAX)),
            ("fetch_span", None, Some(u32::MAX)),
        ]);
        let mut queue = FairQueue::new(names.iter().copied(), &heavy);
        assert_eq!(queue.next(), Some(0));
        // search is capped: a whole revolution must not walk 2^33 names.
        assert_eq!(queue.next(), Some(1));
        assert_eq!(queue.next(), None);
        assert!(queue.ring.len() <= 3);
        assert_eq!(
            queue.ring.iter().map(|(_, count)| count).sum::<u64>(),
            queue.ring_len
        );
        queue.completed(0);
        assert_eq!(queue.next(), Some(2));
        assert!(!queue.has_pending());
    }
}
