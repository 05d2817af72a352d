//! Bounding how many points a plot draws, keeping its shape.
//!
//! An SVG element per operation would make a 100k-op report take minutes to open. A plot
//! instead draws at most a fixed number of points per series, chosen in two halves: the x
//! range is cut into equal buckets and each bucket keeps its lowest and its highest point, so
//! the envelope of the cloud (every latency spike, every fast floor) survives; the other half
//! is an even sample of the rest, so where the points are dense still looks dense.

/// The positions (in input order) of at most `max_points` of `points`, given as `(x, y)`.
///
/// # Correctness
/// Returns every position when there are at most `max_points`; otherwise at most
/// `max_points` positions, sorted, always including the highest and the lowest `y` of every
/// bucket (`max_points / 4` buckets), hence of the whole series, and an even sample of the
/// rest. Non-finite points are never kept.
pub fn downsample(points: &[(f64, f64)], max_points: usize) -> Vec<usize> {
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    if points.len() <= max_points {
        return (0..points.len()).filter(|&i| finite(&points[i])).collect();
    }
    if max_points == 0 {
        return Vec::new();
    }
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, _) in points.iter().filter(|p| finite(p)) {
        low = low.min(x);
        high = high.max(x);
    }
    if low > high {
        return Vec::new();
    }
    // Half the points go to the buckets' extremes (two per bucket; one when only one point
    // is allowed), the other half to an even sample.
    let buckets = (max_points / 4).max(1);
    let width = (high - low) / buckets as f64;
    // For each bucket: the positions of its lowest and highest point.
    let mut extremes: Vec<Option<(usize, usize)>> = vec![None; buckets];
    for (i, p) in points.iter().enumerate() {
        if !finite(p) {
            continue;
        }
        let bucket = if width > 0.0 {
            (((p.0 - low) / width) as usize).min(buckets - 1)
        } else {
            0
        };
        extremes[bucket] = Some(match extremes[bucket] {
            None => (i, i),
            Some((lo, hi)) => (
                if p.1 < points[lo].1 { i } else { lo },
                if p.1 > points[hi].1 { i } else { hi },
            ),
        });
    }
    let mut kept: Vec<usize> = Vec::with_capacity(max_points);
    for (lo, hi) in extremes.into_iter().flatten() {
        if max_points >= 2 && lo != hi {
            kept.push(lo);
        }
        kept.push(hi);
    }
    kept.sort_unstable();
    let budget = max_points - kept.len();
    if budget > 0 {
        let stride = points.len().div_ceil(budget);
        let mut sample: Vec<usize> = (0..points.len())
            .step_by(stride)
            .filter(|&i| finite(&points[i]) && kept.binary_search(&i).is_err())
            .take(budget)
            .collect();
        kept.append(&mut sample);
        kept.sort_unstable();
    }
    debug_assert!(kept.len() <= max_points);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_series_are_kept_whole() {
        let points = [(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN)];
        assert_eq!(downsample(&points, 10), vec![0, 1]);
    }

    #[test]
    fn large_series_are_bounded_and_keep_their_extremes() {
        // 100k points of a slow wave with one spike and one dip.
        let mut points: Vec<(f64, f64)> = (0..100_000)
            .map(|i| (i as f64, 10.0 + (i as f64 / 1000.0).sin()))
            .collect();
        points[54_321].1 = 5_000.0;
        points[7_777].1 = 0.001;
        for max in [1, 2, 3, 100, 1_000, 4_000] {
            let kept = downsample(&points, max);
            assert!(kept.len() <= max, "{} > {max}", kept.len());
            assert!(!kept.is_empty());
            assert!(
                kept.windows(2).all(|w| w[0] < w[1]),
                "sorted, no duplicates"
            );
            assert!(kept.contains(&54_321), "the spike survives at {max}");
            if max >= 2 {
                assert!(kept.contains(&7_777), "the dip survives at {max}");
            }
        }
        // Each bucket contributes, so the whole x range stays covered.
        let kept = downsample(&points, 1_000);
        assert!(kept.len() >= 700, "{}", kept.len());
        assert!(kept[0] < 400 && *kept.last().unwrap() > 99_600);
    }

    #[test]
    fn dense_regions_stay_dense() {
        // Latencies spread evenly over 1..4 with a thin floor and ceiling: a sample of only
        // the extremes would show two lines and nothing between.
        let points: Vec<(f64, f64)> = (0..50_000u64)
            .map(|i| (i as f64, 1.0 + ((i * 7_919) % 3_001) as f64 / 1_000.0))
            .collect();
        let kept = downsample(&points, 2_000);
        let middle = kept
            .iter()
            .filter(|&&i| (1.5..3.5).contains(&points[i].1))
            .count();
        assert!(
            middle * 4 >= kept.len(),
            "{middle} of {} in the middle",
            kept.len()
        );
    }

    #[test]
    fn identical_points_are_bounded_too() {
        let points = vec![(5.0, 1.0); 50];
        let kept = downsample(&points, 10);
        assert!(!kept.is_empty() && kept.len() <= 10, "{kept:?}");
        assert!(downsample(&points, 0).is_empty());
    }
}
