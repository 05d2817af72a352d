//! The dependency graph: transactions as `u32` vertices, edges in compressed sparse rows, each
//! edge labelled with the set of relations (ww, wr, rw, process, real time) it stands for.
//!
//! Written by hand rather than with a graph crate: the graphs reach a million vertices and tens
//! of millions of edges, and everything here is a flat array, built in parallel, walked
//! iteratively (no recursion: components and paths can be as long as the history).

use rayon::prelude::*;

/// Edge relations, as bits: one edge may stand for several (two transactions that both wrote
/// and read each other's keys).
pub mod rel {
    /// Write-write: a later version of a key.
    pub const WW: u16 = 1;
    /// Write-read: a read observed the write.
    pub const WR: u16 = 1 << 1;
    /// Read-write (anti-dependency): a read missed the write.
    pub const RW: u16 = 1 << 2;
    /// Same process, one after the other.
    pub const PROCESS: u16 = 1 << 3;
    /// One completed before the other was invoked.
    pub const REALTIME: u16 = 1 << 4;
    /// ww and rw edges whose version order was inferred from process order (rw-register under
    /// a strong-session model): they hold only where sessions are sequential.
    pub const WW_PROCESS: u16 = 1 << 5;
    pub const RW_PROCESS: u16 = 1 << 6;
    /// ww and rw edges whose version order was inferred from real time (rw-register under a
    /// strong model): they hold only where keys are linearizable.
    pub const WW_REALTIME: u16 = 1 << 7;
    pub const RW_REALTIME: u16 = 1 << 8;

    pub const ALL_WW: u16 = WW | WW_PROCESS | WW_REALTIME;
    pub const ALL_RW: u16 = RW | RW_PROCESS | RW_REALTIME;
    /// Relations that count as a process edge when classifying a cycle.
    pub const ANY_PROCESS: u16 = PROCESS | WW_PROCESS | RW_PROCESS;
    /// Relations that count as a real-time edge when classifying a cycle.
    pub const ANY_REALTIME: u16 = REALTIME | WW_REALTIME | RW_REALTIME;
    /// Data dependencies only (Adya's DSG).
    pub const DATA: u16 = WW | WR | RW;

    /// The short name of one relation bit.
    pub fn name(bit: u16) -> &'static str {
        match bit {
            WW => "ww",
            WR => "wr",
            RW => "rw",
            PROCESS => "process",
            REALTIME => "realtime",
            WW_PROCESS => "ww",
            RW_PROCESS => "rw",
            WW_REALTIME => "ww",
            RW_REALTIME => "rw",
            _ => "?",
        }
    }

    /// The bits of a set, lowest first.
    pub fn bits(set: u16) -> impl Iterator<Item = u16> {
        (0..16).map(|i| 1u16 << i).filter(move |b| set & b != 0)
    }
}

/// One edge before the graph is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from: u32,
    pub to: u32,
    pub rel: u16,
}

impl Edge {
    pub fn new(from: u32, to: u32, rel: u16) -> Edge {
        debug_assert_ne!(from, to, "dependency graphs have no self-edges");
        Edge { from, to, rel }
    }
}

/// A directed graph in compressed sparse rows; parallel edges merged (their relations or-ed).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub offsets: Vec<usize>,
    pub targets: Vec<u32>,
    pub rels: Vec<u16>,
}

impl Graph {
    pub fn vertex_count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }

    /// Heap bytes the graph holds.
    pub fn heap_bytes(&self) -> usize {
        self.offsets.len() * 8 + self.targets.len() * 4 + self.rels.len() * 2
    }

    pub fn out(&self, v: u32) -> (&[u32], &[u16]) {
        let (a, b) = (self.offsets[v as usize], self.offsets[v as usize + 1]);
        (&self.targets[a..b], &self.rels[a..b])
    }

    /// The relations of the edge `from -> to`, or 0 when there is none.
    pub fn rel_between(&self, from: u32, to: u32) -> u16 {
        let (targets, rels) = self.out(from);
        targets
            .binary_search(&to)
            .map(|i| rels[i])
            .unwrap_or_default()
    }

    /// Builds the graph on `n` vertices from edge lists (any number, from parallel builders).
    /// Each vertex's targets end up sorted, with parallel edges merged.
    pub fn build(n: usize, edge_lists: Vec<Vec<Edge>>) -> Graph {
        assert!(n < u32::MAX as usize, "vertex ids are u32");
        // Counting sort by source: degrees, offsets, then every edge packed as
        // (target << 16 | relations) in its source's slot.
        let mut offsets = vec![0usize; n + 1];
        for list in &edge_lists {
            for e in list {
                offsets[e.from as usize + 1] += 1;
            }
        }
        for v in 0..n {
            offsets[v + 1] += offsets[v];
        }
        let total = offsets[n];
        let mut packed = vec![0u64; total];
        let mut cursor = offsets.clone();
        for list in edge_lists {
            for e in list {
                let slot = &mut cursor[e.from as usize];
                packed[*slot] = ((e.to as u64) << 16) | e.rel as u64;
                *slot += 1;
            }
        }
        drop(cursor);

        // Sort and merge each vertex's slice, in parallel over ranges of vertices holding
        // about the same number of edges.
        let threads = rayon::current_num_threads().max(1);
        let per_range = (total / (threads * 8)).max(1 << 14);
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && offsets[end] - offsets[start] < per_range {
                end += 1;
            }
            ranges.push((start, end));
            start = end;
        }
        let mut slices: Vec<(usize, &mut [u64])> = Vec::with_capacity(ranges.len());
        let mut rest: &mut [u64] = &mut packed;
        for &(a, b) in &ranges {
            let (head, tail) = rest.split_at_mut(offsets[b] - offsets[a]);
            slices.push((a, head));
            rest = tail;
        }
        let merged: Vec<(Vec<u32>, Vec<u16>, Vec<u32>)> = slices
            .into_par_iter()
            .zip(ranges.par_iter())
            .map(|((first, slice), &(a, b))| {
                let mut targets = Vec::with_capacity(slice.len());
                let mut rels = Vec::with_capacity(slice.len());
                let mut degrees = Vec::with_capacity(b - a);
                let base = offsets[first];
                for v in a..b {
                    let part = &mut slice[offsets[v] - base..offsets[v + 1] - base];
                    part.sort_unstable();
                    let before = targets.len();
                    for &p in part.iter() {
                        let (to, rel) = ((p >> 16) as u32, (p & 0xffff) as u16);
                        if targets.len() > before && *targets.last().unwrap() == to {
                            *rels.last_mut().unwrap() |= rel;
                        } else {
                            targets.push(to);
                            rels.push(rel);
                        }
                    }
                    degrees.push((targets.len() - before) as u32);
                }
                (targets, rels, degrees)
            })
            .collect();
        drop(packed);
        let total: usize = merged.iter().map(|m| m.0.len()).sum();
        let mut graph = Graph {
            offsets: Vec::with_capacity(n + 1),
            targets: Vec::with_capacity(total),
            rels: Vec::with_capacity(total),
        };
        graph.offsets.push(0);
        for (targets, rels, degrees) in merged {
            for d in degrees {
                let last = *graph.offsets.last().unwrap();
                graph.offsets.push(last + d as usize);
            }
            graph.targets.extend_from_slice(&targets);
            graph.rels.extend_from_slice(&rels);
        }
        graph.offsets.resize(n + 1, graph.targets.len());
        graph
    }

    /// The subgraph on a sorted set of vertices, renumbered `0..vertices.len()`.
    pub fn induced(&self, vertices: &[u32]) -> LocalGraph {
        debug_assert!(vertices.windows(2).all(|w| w[0] < w[1]));
        let mut local = LocalGraph {
            vertices: vertices.to_vec(),
            offsets: Vec::with_capacity(vertices.len() + 1),
            targets: Vec::new(),
            rels: Vec::new(),
        };
        local.offsets.push(0);
        for &v in vertices {
            let (targets, rels) = self.out(v);
            for (&t, &r) in targets.iter().zip(rels) {
                if let Ok(i) = vertices.binary_search(&t) {
                    local.targets.push(i as u32);
                    local.rels.push(r);
                }
            }
            local.offsets.push(local.targets.len());
        }
        local
    }
}

/// A small graph (one strongly connected component), with its vertices' global ids.
#[derive(Debug, Clone, Default)]
pub struct LocalGraph {
    /// Global id of each local vertex, ascending.
    pub vertices: Vec<u32>,
    pub offsets: Vec<usize>,
    pub targets: Vec<u32>,
    pub rels: Vec<u16>,
}

impl LocalGraph {
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    pub fn out(&self, v: u32) -> (&[u32], &[u16]) {
        let (a, b) = (self.offsets[v as usize], self.offsets[v as usize + 1]);
        (&self.targets[a..b], &self.rels[a..b])
    }

    /// Strongly connected components using only edges with a relation in `mask`.
    pub fn components(&self, mask: u16) -> Components {
        tarjan(self.len(), &self.offsets, &self.targets, |e| {
            self.rels[e] & mask != 0
        })
    }

    /// Whether a closed walk exists that uses relations in `mask` and never takes two
    /// anti-dependency (rw) edges in a row: the cycles snapshot isolation forbids (Adya's
    /// G-SI, generalized: Cerone and Gotsman's "no cycle without two adjacent rw edges").
    ///
    /// It is a cycle search in a product graph whose vertices are `(v, last edge was rw)`.
    pub fn nonadjacent_components(&self, mask: u16) -> Components {
        let n = self.len();
        let mut offsets = Vec::with_capacity(2 * n + 1);
        let mut targets = Vec::new();
        offsets.push(0);
        for after_rw in [false, true] {
            for v in 0..n as u32 {
                let (ts, rs) = self.out(v);
                for (&t, &r) in ts.iter().zip(rs) {
                    let r = r & mask;
                    if r & !rel::ALL_RW != 0 {
                        targets.push(t);
                    }
                    if r & rel::ALL_RW != 0 && !after_rw {
                        targets.push(t + n as u32);
                    }
                }
                offsets.push(targets.len());
            }
        }
        tarjan(2 * n, &offsets, &targets, |_| true)
    }
}

/// Strongly connected components with more than one vertex.
#[derive(Debug, Clone, Default)]
pub struct Components {
    /// The component of each vertex (components of one vertex included).
    pub of: Vec<u32>,
    /// The components with two vertices or more, each sorted; in the order Tarjan closed them.
    pub nontrivial: Vec<Vec<u32>>,
}

impl Components {
    pub fn same(&self, a: u32, b: u32) -> bool {
        self.of[a as usize] == self.of[b as usize]
    }

    pub fn in_nontrivial(&self, v: u32, sizes: &[u32]) -> bool {
        sizes[self.of[v as usize] as usize] > 1
    }
}

const UNVISITED: u32 = u32::MAX;

/// Tarjan's strongly connected components, iterative: an explicit stack of (vertex, next edge).
/// `keep(e)` says whether edge `e` (an index into `targets`) is part of the graph.
pub fn tarjan(
    n: usize,
    offsets: &[usize],
    targets: &[u32],
    keep: impl Fn(usize) -> bool,
) -> Components {
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut frames: Vec<(u32, usize)> = Vec::new();
    let mut of = vec![0u32; n];
    let mut nontrivial = Vec::new();
    let mut next_index = 0u32;
    let mut next_component = 0u32;
    for root in 0..n as u32 {
        if index[root as usize] != UNVISITED {
            continue;
        }
        index[root as usize] = next_index;
        low[root as usize] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        frames.push((root, offsets[root as usize]));
        while let Some(&(v, position)) = frames.last() {
            let end = offsets[v as usize + 1];
            let mut edge = position;
            let mut child = None;
            while edge < end {
                let e = edge;
                edge += 1;
                if !keep(e) {
                    continue;
                }
                let w = targets[e];
                if index[w as usize] == UNVISITED {
                    child = Some(w);
                    break;
                } else if on_stack[w as usize] {
                    low[v as usize] = low[v as usize].min(index[w as usize]);
                }
            }
            frames.last_mut().expect("a frame").1 = edge;
            if let Some(w) = child {
                index[w as usize] = next_index;
                low[w as usize] = next_index;
                next_index += 1;
                stack.push(w);
                on_stack[w as usize] = true;
                frames.push((w, offsets[w as usize]));
                continue;
            }
            frames.pop();
            if let Some(&(parent, _)) = frames.last() {
                low[parent as usize] = low[parent as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let mut members = Vec::new();
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w as usize] = false;
                    of[w as usize] = next_component;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                if members.len() > 1 {
                    members.sort_unstable();
                    nontrivial.push(members);
                }
                next_component += 1;
            }
        }
    }
    Components { of, nontrivial }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: usize, edges: &[(u32, u32, u16)]) -> Graph {
        Graph::build(
            n,
            vec![edges.iter().map(|&(a, b, r)| Edge::new(a, b, r)).collect()],
        )
    }

    #[test]
    fn parallel_edges_merge_their_relations() {
        let g = graph(3, &[(0, 1, rel::WW), (0, 2, rel::WR), (0, 1, rel::RW)]);
        assert_eq!(g.out(0).0, &[1, 2]);
        assert_eq!(g.rel_between(0, 1), rel::WW | rel::RW);
        assert_eq!(g.rel_between(1, 0), 0);
        assert_eq!(g.edge_count(), 2);
    }

    #[test]
    fn tarjan_finds_components_iteratively() {
        // Two cycles joined by one edge, plus a long chain (deep enough to overflow a
        // recursive search's stack if it were recursive).
        let mut edges = vec![
            (0, 1, rel::WW),
            (1, 0, rel::WR),
            (1, 2, rel::WW),
            (2, 3, rel::RW),
            (3, 2, rel::WW),
        ];
        let n = 200_000u32;
        for v in 4..n - 1 {
            edges.push((v, v + 1, rel::WW));
        }
        edges.push((n - 1, 4, rel::RW));
        let g = graph(n as usize, &edges);
        let c = tarjan(n as usize, &g.offsets, &g.targets, |_| true);
        let mut sizes: Vec<usize> = c.nontrivial.iter().map(|m| m.len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [2, 2, n as usize - 4]);
        // Without rw edges, the chain and the second cycle fall apart.
        let c = tarjan(n as usize, &g.offsets, &g.targets, |e| g.rels[e] != rel::RW);
        assert_eq!(c.nontrivial, vec![vec![0, 1]]);
    }

    #[test]
    fn adjacent_rw_edges_make_no_snapshot_isolation_cycle() {
        // 0 -rw-> 1 -rw-> 0: two adjacent anti-dependencies (write skew) are allowed.
        let g = graph(2, &[(0, 1, rel::RW), (1, 0, rel::RW)]);
        let local = g.induced(&[0, 1]);
        assert!(local.components(rel::DATA).nontrivial.len() == 1);
        assert!(local
            .nonadjacent_components(rel::DATA)
            .nontrivial
            .is_empty());
        // 0 -rw-> 1 -wr-> 0: one anti-dependency (G-single) is not.
        let g = graph(2, &[(0, 1, rel::RW), (1, 0, rel::WR)]);
        let local = g.induced(&[0, 1]);
        assert_eq!(local.nonadjacent_components(rel::DATA).nontrivial.len(), 1);
    }
}
