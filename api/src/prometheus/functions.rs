//! The arithmetic of PromQL's functions and aggregations, written after Prometheus 2.42's
//! `promql/functions.go`, `quantile.go` and `engine.go` (same extrapolation, same Kahan
//! sums, same incremental mean), so that results equal Prometheus's to the last bits.

/// A range function over the samples of one series in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeFunction {
    Rate,
    Irate,
    Increase,
    Delta,
    Idelta,
    Resets,
    Changes,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    LastOverTime,
    QuantileOverTime,
    StddevOverTime,
    StdvarOverTime,
}

impl RangeFunction {
    pub fn from_name(name: &str) -> Option<RangeFunction> {
        Some(match name {
            "rate" => RangeFunction::Rate,
            "irate" => RangeFunction::Irate,
            "increase" => RangeFunction::Increase,
            "delta" => RangeFunction::Delta,
            "idelta" => RangeFunction::Idelta,
            "resets" => RangeFunction::Resets,
            "changes" => RangeFunction::Changes,
            "avg_over_time" => RangeFunction::AvgOverTime,
            "min_over_time" => RangeFunction::MinOverTime,
            "max_over_time" => RangeFunction::MaxOverTime,
            "sum_over_time" => RangeFunction::SumOverTime,
            "count_over_time" => RangeFunction::CountOverTime,
            "last_over_time" => RangeFunction::LastOverTime,
            "quantile_over_time" => RangeFunction::QuantileOverTime,
            "stddev_over_time" => RangeFunction::StddevOverTime,
            "stdvar_over_time" => RangeFunction::StdvarOverTime,
            _ => return None,
        })
    }

    /// Whether the result keeps the metric name (only `last_over_time` does).
    pub fn keeps_name(self) -> bool {
        self == RangeFunction::LastOverTime
    }

    /// The value over `points` (time-ordered, milliseconds, never empty) of the window
    /// `[range_start, range_end]` (milliseconds); `None` drops the series at this step.
    /// `param` is `quantile_over_time`'s φ.
    pub fn apply(
        self,
        points: &[(i64, f64)],
        range_start: i64,
        range_end: i64,
        param: f64,
    ) -> Option<f64> {
        let values = || points.iter().map(|p| p.1);
        match self {
            RangeFunction::Rate => extrapolated_rate(points, range_start, range_end, true, true),
            RangeFunction::Increase => {
                extrapolated_rate(points, range_start, range_end, true, false)
            }
            RangeFunction::Delta => extrapolated_rate(points, range_start, range_end, false, false),
            RangeFunction::Irate => instant_value(points, true),
            RangeFunction::Idelta => instant_value(points, false),
            RangeFunction::Resets => {
                Some(points.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64)
            }
            RangeFunction::Changes => Some(
                points
                    .windows(2)
                    .filter(|w| !(w[1].1 == w[0].1 || (w[1].1.is_nan() && w[0].1.is_nan())))
                    .count() as f64,
            ),
            RangeFunction::AvgOverTime => Some(avg_over_time(values())),
            RangeFunction::MinOverTime => {
                Some(values().fold(
                    points[0].1,
                    |min, v| {
                        if v < min || min.is_nan() {
                            v
                        } else {
                            min
                        }
                    },
                ))
            }
            RangeFunction::MaxOverTime => {
                Some(values().fold(
                    points[0].1,
                    |max, v| {
                        if v > max || max.is_nan() {
                            v
                        } else {
                            max
                        }
                    },
                ))
            }
            RangeFunction::SumOverTime => Some(kahan_sum(values())),
            RangeFunction::CountOverTime => Some(points.len() as f64),
            RangeFunction::LastOverTime => points.last().map(|p| p.1),
            RangeFunction::QuantileOverTime => Some(quantile(param, values().collect())),
            RangeFunction::StdvarOverTime => Some(stdvar_over_time(values())),
            RangeFunction::StddevOverTime => Some(stdvar_over_time(values()).sqrt()),
        }
    }
}

/// `rate`, `increase` and `delta`: Prometheus's `extrapolatedRate`.
fn extrapolated_rate(
    points: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut prev = first.1;
        for &(_, v) in &points[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut duration_to_start = (first.0 - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled_interval = (last.0 - first.0) as f64 / 1000.0;
    let average_between = sampled_interval / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let duration_to_zero = sampled_interval * (first.1 / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += match duration_to_start < threshold {
        true => duration_to_start,
        false => average_between / 2.0,
    };
    extrapolate_to += match duration_to_end < threshold {
        true => duration_to_end,
        false => average_between / 2.0,
    };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: Prometheus's `instantValue`.
fn instant_value(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let last = points[points.len() - 1];
    let previous = points[points.len() - 2];
    let mut result = match is_rate && last.1 < previous.1 {
        true => last.1,
        false => last.1 - previous.1,
    };
    let interval = last.0 - previous.0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// One step of Neumaier's compensated sum (Prometheus's `kahanSumInc`).
fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = match sum.abs() >= inc.abs() {
        true => c + ((sum - t) + inc),
        false => c + ((inc - t) + sum),
    };
    (t, c)
}

fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for v in values {
        (sum, c) = kahan_sum_inc(v, sum, c);
    }
    match sum.is_infinite() {
        true => sum,
        false => sum + c,
    }
}

fn avg_over_time(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_sum_inc(v / count - mean / count, mean, c);
    }
    match mean.is_infinite() {
        true => mean,
        false => mean + c,
    }
}

fn stdvar_over_time(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// The φ-quantile of `values` with linear interpolation (Prometheus's `quantile`).
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort puts NaN first (Less is `a < b || isNaN(a)`).
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// The running state of one group of `sum`, `avg`, `min`, `max` or `count`.
#[derive(Debug, Clone, Copy)]
pub struct Accumulator {
    value: f64,
    count: f64,
}

/// An aggregation over the samples of a group at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Group,
}

impl Aggregation {
    pub fn start(self, v: f64) -> Accumulator {
        let value = match self {
            Aggregation::Count | Aggregation::Group => 1.0,
            _ => v,
        };
        Accumulator { value, count: 1.0 }
    }

    /// Adds one sample (Prometheus's per-operator update in `aggregation`).
    pub fn add(self, acc: &mut Accumulator, v: f64) {
        acc.count += 1.0;
        match self {
            Aggregation::Sum => acc.value += v,
            Aggregation::Count => acc.value += 1.0,
            Aggregation::Group | Aggregation::Stddev | Aggregation::Stdvar => {}
            Aggregation::Min => {
                if acc.value > v || acc.value.is_nan() {
                    acc.value = v;
                }
            }
            Aggregation::Max => {
                if acc.value < v || acc.value.is_nan() {
                    acc.value = v;
                }
            }
            Aggregation::Avg => {
                if acc.value.is_infinite() {
                    if v.is_infinite() && (acc.value > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                acc.value += v / acc.count - acc.value / acc.count;
            }
        }
    }

    pub fn finish(self, acc: &Accumulator) -> f64 {
        acc.value
    }
}

/// Prometheus's `stddev`/`stdvar` aggregation over a group's values (Welford's method).
pub fn stdvar(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut value) = (0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        value += delta * (v - mean);
    }
    value / count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_to_the_window_as_prometheus_does() {
        // Samples every 15 s from 0 to 60 s of a counter growing 1/s, in a [0, 60] window.
        let points: Vec<(i64, f64)> = (0..5).map(|i| (i * 15_000, i as f64 * 15.0)).collect();
        let rate = RangeFunction::Rate.apply(&points, 0, 60_000, 0.0);
        assert_eq!(rate, Some(1.0));
        // A reset adds the value before it: 5 - 10 + 20.
        let reset = [(0, 10.0), (15_000, 20.0), (30_000, 5.0)];
        let increase = RangeFunction::Increase.apply(&reset, 0, 30_000, 0.0);
        assert_eq!(increase, Some(15.0));
        assert_eq!(RangeFunction::Rate.apply(&reset[..1], 0, 30_000, 0.0), None);
    }

    #[test]
    fn quantiles_interpolate_between_samples() {
        assert_eq!(quantile(0.5, vec![1.0, 3.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(1.5, vec![1.0]), f64::INFINITY);
        assert!(quantile(0.5, vec![]).is_nan());
    }

    #[test]
    fn averages_are_incremental_means() {
        let avg = Aggregation::Avg;
        let mut acc = avg.start(1.0);
        avg.add(&mut acc, 2.0);
        avg.add(&mut acc, 6.0);
        assert_eq!(avg.finish(&acc), 3.0);
    }
}
