//! Fault intervals from a history's nemesis events: when each fault was in effect.
//!
//! The nemesis records an event when it starts a fault and another when it undoes it, with a
//! value saying what was done (`kill "n2"` ... `start "n2"`, `pause` ... `resume`,
//! `start-partition {grudge}` ... `stop-partition`). Events are read generically, so faults
//! added later draw without a change here: an event either undoes faults in effect (by a known
//! pairing of names) or starts one; the interval lasts until the event that undoes it, or to
//! the end of the history when nothing does.

use serde_json::Value;
use std::collections::BTreeSet;

use crate::digest::NemesisEvent;
use crate::escape::truncate;

/// One fault, from the event that started it to the one that undid it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultInterval {
    /// What kind of fault: the starting event's `f` without a `start-` prefix (`kill`,
    /// `pause`, `partition`, `bump`, ...). Plots colour by it.
    pub kind: String,
    /// The kind and what it was applied to: `kill n2`, `partition {"n1":["n2"]}`.
    pub label: String,
    /// On the digest's time axis.
    pub start: u64,
    /// `None`: nothing in the history undid it.
    pub end: Option<u64>,
    /// The `f` of the event that undid it.
    pub end_f: Option<String>,
    /// The index of the starting event.
    pub start_index: u64,
}

impl FaultInterval {
    /// The end, or `history_end` for a fault still in effect when the history ends.
    pub fn end_or(&self, history_end: u64) -> u64 {
        self.end.unwrap_or(history_end).max(self.start)
    }
}

/// Does an event named `undo` undo a fault started by an event named `start`?
fn undoes(undo: &str, start: &str) -> bool {
    match undo {
        "start" | "restart" => matches!(start, "kill" | "crash"),
        "resume" => start == "pause",
        // Jepsen's generic partitioner: `start` then `stop`.
        "stop" => start == "start",
        "reset" | "reset-clock" => is_clock_fault(start),
        "heal" => true,
        _ => undo
            .strip_prefix("stop-")
            .is_some_and(|kind| start.strip_prefix("start-") == Some(kind)),
    }
}

/// Names that only ever undo: with nothing in effect to undo they start nothing either.
fn is_only_an_undo(f: &str) -> bool {
    matches!(
        f,
        "resume" | "restart" | "stop" | "reset" | "reset-clock" | "heal"
    ) || f.starts_with("stop-")
}

fn is_clock_fault(f: &str) -> bool {
    matches!(
        f,
        "bump" | "strobe" | "bump-clock" | "strobe-clock" | "skew" | "clock-skew"
    ) || f.starts_with("start-clock")
}

/// The nodes an event's value names, when it names nodes: a string, or a list of strings.
fn nodes_of(value: &Value) -> Option<BTreeSet<String>> {
    match value {
        Value::String(node) => Some(BTreeSet::from([node.clone()])),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

fn label_of(kind: &str, value: &Value) -> String {
    match (nodes_of(value), value) {
        (Some(nodes), _) => format!("{kind} {}", nodes.into_iter().collect::<Vec<_>>().join(",")),
        (None, Value::Null) => kind.to_string(),
        (None, other) => format!("{kind} {}", truncate(&other.to_string(), 40)),
    }
}

/// An interval still in effect, with the nodes not yet brought back.
struct Open {
    interval: FaultInterval,
    start_f: String,
    nodes: Option<BTreeSet<String>>,
}

/// The fault intervals of a history's nemesis events (in history order), in order of start.
///
/// # Correctness
/// An undo that names nodes ends a fault on those nodes only (`start n1` after `kill
/// [n1,n2]` leaves n2's fault in effect until `start n2`); an undo naming none (`null`, a
/// grudge) ends every fault of the kinds it undoes. An undo with nothing to undo is ignored.
pub fn fault_intervals(events: &[NemesisEvent]) -> Vec<FaultInterval> {
    let mut open: Vec<Open> = Vec::new();
    let mut done: Vec<FaultInterval> = Vec::new();
    for event in events {
        let undo_nodes = nodes_of(&event.value);
        let mut undid_any = false;
        for slot in open.iter_mut() {
            if !undoes(&event.f, &slot.start_f) {
                continue;
            }
            let finished = match (&mut slot.nodes, &undo_nodes) {
                (Some(nodes), Some(back)) => {
                    let before = nodes.len();
                    nodes.retain(|n| !back.contains(n));
                    if nodes.len() == before {
                        continue;
                    }
                    nodes.is_empty()
                }
                _ => true,
            };
            undid_any = true;
            if finished {
                slot.interval.end = Some(event.time);
                slot.interval.end_f = Some(event.f.clone());
            }
        }
        let (finished, still): (Vec<Open>, Vec<Open>) =
            open.into_iter().partition(|o| o.interval.end.is_some());
        done.extend(finished.into_iter().map(|o| o.interval));
        open = still;
        if undid_any || is_only_an_undo(&event.f) {
            continue;
        }
        let kind = event
            .f
            .strip_prefix("start-")
            .unwrap_or(&event.f)
            .to_string();
        open.push(Open {
            interval: FaultInterval {
                label: label_of(&kind, &event.value),
                kind,
                start: event.time,
                end: None,
                end_f: None,
                start_index: event.index,
            },
            start_f: event.f.clone(),
            nodes: undo_nodes,
        });
    }
    done.extend(open.into_iter().map(|o| o.interval));
    done.sort_by_key(|i| (i.start, i.start_index));
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events(list: &[(&str, Value)]) -> Vec<NemesisEvent> {
        list.iter()
            .enumerate()
            .map(|(i, (f, value))| NemesisEvent {
                index: i as u64,
                time: 10 * (i as u64 + 1),
                f: f.to_string(),
                value: value.clone(),
            })
            .collect()
    }

    fn spans(intervals: &[FaultInterval]) -> Vec<(String, u64, Option<u64>)> {
        intervals
            .iter()
            .map(|i| (i.label.clone(), i.start, i.end))
            .collect()
    }

    #[test]
    fn kill_and_pause_end_at_their_undo_on_the_same_node() {
        let intervals = fault_intervals(&events(&[
            ("kill", json!("n2")),
            ("start", json!("n2")),
            ("pause", json!("n3")),
            ("resume", json!("n3")),
        ]));
        assert_eq!(
            spans(&intervals),
            [
                ("kill n2".to_string(), 10, Some(20)),
                ("pause n3".to_string(), 30, Some(40))
            ]
        );
        assert_eq!(intervals[0].end_f.as_deref(), Some("start"));
        assert_eq!(intervals[0].kind, "kill");
    }

    #[test]
    fn an_undo_on_another_node_does_not_end_a_fault() {
        let intervals = fault_intervals(&events(&[
            ("pause", json!("n1")),
            ("pause", json!("n2")),
            ("resume", json!("n2")),
            ("resume", json!("n1")),
        ]));
        assert_eq!(
            spans(&intervals),
            [
                ("pause n1".to_string(), 10, Some(40)),
                ("pause n2".to_string(), 20, Some(30))
            ]
        );
    }

    #[test]
    fn a_fault_on_several_nodes_lasts_until_the_last_is_back() {
        let intervals = fault_intervals(&events(&[
            ("kill", json!(["n1", "n2"])),
            ("start", json!("n1")),
            ("start", json!("n2")),
        ]));
        assert_eq!(
            spans(&intervals),
            [("kill n1,n2".to_string(), 10, Some(30))]
        );
    }

    #[test]
    fn partitions_end_at_stop_whatever_its_value() {
        let intervals = fault_intervals(&events(&[
            ("start-partition", json!({"n1": ["n2", "n3"]})),
            ("stop-partition", json!(null)),
            ("start-partition", json!({"n4": ["n5"]})),
        ]));
        assert_eq!(intervals.len(), 2);
        assert_eq!(intervals[0].kind, "partition");
        assert_eq!(intervals[0].label, r#"partition {"n1":["n2","n3"]}"#);
        assert_eq!((intervals[0].start, intervals[0].end), (10, Some(20)));
        // Never healed in the history: in effect until its end.
        assert_eq!((intervals[1].start, intervals[1].end), (30, None));
        assert_eq!(intervals[1].end_or(100), 100);
    }

    #[test]
    fn clock_faults_end_at_reset_and_heal_ends_everything() {
        let intervals = fault_intervals(&events(&[
            ("bump", json!({"n1": 5000})),
            ("reset", json!(null)),
            ("kill", json!("n1")),
            ("start-partition", json!("majorities-ring")),
            ("heal", json!(null)),
        ]));
        assert_eq!(
            spans(&intervals),
            [
                (r#"bump {"n1":5000}"#.to_string(), 10, Some(20)),
                ("kill n1".to_string(), 30, Some(50)),
                (
                    "partition n1".replace("n1", "majorities-ring"),
                    40,
                    Some(50)
                )
            ]
        );
    }

    #[test]
    fn undo_with_nothing_in_effect_starts_nothing() {
        let intervals = fault_intervals(&events(&[
            ("resume", json!("n1")),
            ("stop-partition", json!(null)),
            ("start", json!("n1")),
            ("stop", json!(null)),
        ]));
        // Jepsen's generic `start` (with nothing killed) starts a fault that `stop` ends.
        assert_eq!(spans(&intervals), [("start n1".to_string(), 30, Some(40))]);
    }
}
