//! PromQL evaluation, as Prometheus 2.42's engine does it: the expression is checked
//! ([`check`]: anything not supported is `bad_data` naming it), its selectors are planned and
//! fetched once for the whole query ([`run`], through [`super::select`]), then it is evaluated
//! at each step (`start`, `start + step`, … ≤ `end`) on what was fetched. An instant selector
//! takes the latest sample in `[t - 5m, t]` (2.42's lookback, inclusive), a range selector the
//! samples in `[t - range, t]`, both shifted by their `offset`.
//!
//! What runs in SQL: the series selection; the samples of the needed window; and, for a range
//! query whose steps fall on whole minutes, the minute rollups instant selectors pick their
//! per-step values from — and, for `sum`/`avg`/`min`/`max`/`count` of them grouped by labels
//! backed by columns (`Hostname`, `UUID`, `container`, `pod`, `namespace`), those rollups
//! already aggregated per group and minute by PostgreSQL (`select::grouped_step_values`), so
//! such a query never brings raw points to the API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use promql_parser::label::Matcher;
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset,
    VectorMatchCardinality, VectorSelector,
};
use store::prom::{SeriesColumn, StepAggregate};

use super::functions::{self, Aggregation, RangeFunction};
use super::select::{self, SqlSteps};
use super::PromError;
use crate::db::Conn;

/// A label set, sorted by name, shared between the steps of a query.
pub type Labels = Arc<Vec<(String, String)>>;

/// The value of label `name`, if the set has it.
pub fn label<'a>(labels: &'a Labels, name: &str) -> Option<&'a str> {
    labels
        .binary_search_by(|(n, _)| n.as_str().cmp(name))
        .ok()
        .map(|i| labels[i].1.as_str())
}

/// `labels` without `__name__`.
fn drop_name(labels: &Labels) -> Labels {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp("__name__")) {
        Ok(i) => {
            let mut rest = labels.as_ref().clone();
            rest.remove(i);
            Arc::new(rest)
        }
        Err(_) => labels.clone(),
    }
}

/// Prometheus's default lookback of an instant selector (`--query.lookback-delta`).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The evaluation times of a query: `step == 0` for an instant query at `start`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Range {
    pub fn instant(time: i64) -> Range {
        Range {
            start: time,
            end: time,
            step: 0,
        }
    }

    /// Whether every step (shifted by `offset`) falls on a whole minute, so that the minute
    /// rollups give each step's latest sample.
    fn on_minutes(&self, offset: i64) -> bool {
        self.step > 0
            && self.step % 60_000 == 0
            && self.start.wrapping_sub(offset).rem_euclid(60_000) == 0
    }
}

/// A query's result.
#[derive(Debug)]
pub enum Outcome {
    Scalar(i64, f64),
    Vector(i64, Vec<(Labels, f64)>),
    Matrix(Vec<SeriesOut>),
}

/// One series of a matrix result.
#[derive(Debug)]
pub struct SeriesOut {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

fn unsupported(what: impl std::fmt::Display) -> PromError {
    PromError::BadData(format!("invalid parameter \"query\": unsupported: {what}"))
}

fn strip_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    let ms = |d: &std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => ms(d),
        Some(Offset::Neg(d)) => -ms(d),
    }
}

/// A function on instant vectors (or none) that is evaluated here.
#[derive(Debug, Clone, Copy)]
enum InstantFunction {
    Map(fn(f64) -> f64),
    Time,
    Vector,
    Scalar,
}

fn instant_function(name: &str) -> Option<InstantFunction> {
    Some(match name {
        "abs" => InstantFunction::Map(f64::abs),
        "ceil" => InstantFunction::Map(f64::ceil),
        "floor" => InstantFunction::Map(f64::floor),
        "sqrt" => InstantFunction::Map(f64::sqrt),
        "exp" => InstantFunction::Map(f64::exp),
        "ln" => InstantFunction::Map(f64::ln),
        "log2" => InstantFunction::Map(f64::log2),
        "log10" => InstantFunction::Map(f64::log10),
        "time" => InstantFunction::Time,
        "vector" => InstantFunction::Vector,
        "scalar" => InstantFunction::Scalar,
        _ => return None,
    })
}

fn aggregation_of(op: TokenId) -> Option<Aggregation> {
    Some(match op {
        token::T_SUM => Aggregation::Sum,
        token::T_AVG => Aggregation::Avg,
        token::T_MIN => Aggregation::Min,
        token::T_MAX => Aggregation::Max,
        token::T_COUNT => Aggregation::Count,
        token::T_STDDEV => Aggregation::Stddev,
        token::T_STDVAR => Aggregation::Stdvar,
        token::T_GROUP => Aggregation::Group,
        _ => return None,
    })
}

/// Refuses what is not supported, naming it; and a range query of a range vector.
pub fn check(expr: &Expr, range: &Range) -> Result<(), PromError> {
    if range.step > 0 {
        if let Expr::MatrixSelector(_) = strip_parens(expr) {
            return Err(PromError::BadData(
                "invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
            ));
        }
    }
    check_node(expr)
}

fn check_selector(vs: &VectorSelector) -> Result<(), PromError> {
    if vs.at.is_some() {
        return Err(unsupported("@ modifier"));
    }
    select::matchers(vs).map(|_| ())
}

fn check_node(expr: &Expr) -> Result<(), PromError> {
    match expr {
        Expr::NumberLiteral(_) => Ok(()),
        Expr::Paren(p) => check_node(&p.expr),
        Expr::Unary(u) => check_node(&u.expr),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs),
        Expr::StringLiteral(_) => Err(unsupported("string literal")),
        Expr::Subquery(_) => Err(unsupported("subquery")),
        Expr::Extension(_) => Err(unsupported("extension")),
        Expr::Call(call) => {
            let name = call.func.name;
            if RangeFunction::from_name(name).is_none() && instant_function(name).is_none() {
                return Err(unsupported(format!("function {name}")));
            }
            call.args.args.iter().try_for_each(|a| check_node(a))
        }
        Expr::Aggregate(agg) => {
            let op = agg.op.id();
            if aggregation_of(op).is_none()
                && !matches!(op, token::T_TOPK | token::T_BOTTOMK | token::T_QUANTILE)
            {
                return Err(unsupported(format!("aggregation {}", agg.op)));
            }
            if let Some(param) = &agg.param {
                check_node(param)?;
            }
            check_node(&agg.expr)
        }
        Expr::Binary(b) => {
            if b.op.is_set_operator() {
                return Err(unsupported(format!("set operator {}", b.op)));
            }
            if let Some(m) = &b.modifier {
                if !matches!(m.card, VectorMatchCardinality::OneToOne) {
                    return Err(unsupported("group_left/group_right"));
                }
            }
            check_node(&b.lhs)?;
            check_node(&b.rhs)
        }
    }
}

/// What a selector's data is fetched as.
enum Source {
    /// Raw samples in `[mint, maxt]`.
    Raw { mint: i64, maxt: i64 },
    /// One value per step, from the minute rollups.
    Steps,
    /// Per step and group, an aggregate computed in SQL.
    Grouped(StepAggregate, Vec<SeriesColumn>),
}

struct Need<'e> {
    key: usize,
    selector: &'e VectorSelector,
    source: Source,
}

/// What was fetched for one node: samples per series; `exact` when they are per-step
/// values (a step takes the value at its own time only).
struct Fetched {
    offset: i64,
    exact: bool,
    series: Vec<SeriesData>,
}

struct SeriesData {
    labels: Labels,
    unnamed: Labels,
    samples: Vec<(i64, f64)>,
}

fn key(e: &Expr) -> usize {
    e as *const Expr as usize
}

/// The aggregation of `agg` that SQL can compute per step from the rollups, if any.
fn pushed_down(agg: &AggregateExpr, range: &Range) -> Option<(StepAggregate, Vec<SeriesColumn>)> {
    let Expr::VectorSelector(vs) = strip_parens(&agg.expr) else {
        return None;
    };
    if vs.at.is_some() || !range.on_minutes(offset_ms(&vs.offset)) {
        return None;
    }
    let op = match agg.op.id() {
        token::T_SUM => StepAggregate::Sum,
        token::T_AVG => StepAggregate::Avg,
        token::T_MIN => StepAggregate::Min,
        token::T_MAX => StepAggregate::Max,
        token::T_COUNT => StepAggregate::Count,
        _ => return None,
    };
    let columns = match &agg.modifier {
        None => Vec::new(),
        Some(LabelModifier::Include(labels)) => {
            let mut columns = Vec::new();
            for name in &labels.labels {
                let column = select::column_of_label(name)?;
                if !columns.contains(&column) {
                    columns.push(column);
                }
            }
            columns
        }
        Some(LabelModifier::Exclude(_)) => return None,
    };
    Some((op, columns))
}

fn plan<'e>(expr: &'e Expr, range: &Range, needs: &mut Vec<Need<'e>>) {
    match expr {
        Expr::Paren(p) => plan(&p.expr, range, needs),
        Expr::Unary(u) => plan(&u.expr, range, needs),
        Expr::Binary(b) => {
            plan(&b.lhs, range, needs);
            plan(&b.rhs, range, needs);
        }
        Expr::Call(call) => call.args.args.iter().for_each(|a| plan(a, range, needs)),
        Expr::Aggregate(agg) => {
            if let (Some((op, columns)), Expr::VectorSelector(vs)) =
                (pushed_down(agg, range), strip_parens(&agg.expr))
            {
                needs.push(Need {
                    key: key(expr),
                    selector: vs,
                    source: Source::Grouped(op, columns),
                });
                return;
            }
            if let Some(param) = &agg.param {
                plan(param, range, needs);
            }
            plan(&agg.expr, range, needs);
        }
        Expr::VectorSelector(vs) => {
            let offset = offset_ms(&vs.offset);
            let source = match range.on_minutes(offset) {
                true => Source::Steps,
                false => Source::Raw {
                    mint: range
                        .start
                        .saturating_sub(offset)
                        .saturating_sub(LOOKBACK_MS),
                    maxt: range.end.saturating_sub(offset),
                },
            };
            needs.push(Need {
                key: key(expr),
                selector: vs,
                source,
            });
        }
        Expr::MatrixSelector(ms) => {
            let offset = offset_ms(&ms.vs.offset);
            let width = i64::try_from(ms.range.as_millis()).unwrap_or(i64::MAX / 4);
            needs.push(Need {
                key: key(expr),
                selector: &ms.vs,
                source: Source::Raw {
                    mint: range.start.saturating_sub(offset).saturating_sub(width),
                    maxt: range.end.saturating_sub(offset),
                },
            });
        }
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Subquery(_)
        | Expr::Extension(_) => {}
    }
}

fn fetch(conn: &mut Conn, need: &Need<'_>, range: &Range) -> Result<Fetched, PromError> {
    let offset = offset_ms(&need.selector.offset);
    let matchers: Vec<Matcher> = select::matchers(need.selector)?;
    let series = select::select_series(conn, &matchers, None)?;
    let steps = SqlSteps {
        start: range.start.saturating_sub(offset),
        end: range.end.saturating_sub(offset),
        step_seconds: range.step / 1000,
    };
    let (exact, data): (bool, Vec<(Labels, select::Samples)>) = match &need.source {
        Source::Raw { mint, maxt } => {
            let samples = select::raw_samples(conn, &series, *mint, *maxt)?;
            (
                false,
                series.into_iter().map(|s| s.labels).zip(samples).collect(),
            )
        }
        Source::Steps => {
            let samples = select::step_values(conn, &series, steps)?;
            (
                true,
                series.into_iter().map(|s| s.labels).zip(samples).collect(),
            )
        }
        Source::Grouped(op, columns) => (
            true,
            select::grouped_step_values(conn, &series, steps, *op, columns)?,
        ),
    };
    Ok(Fetched {
        offset,
        exact,
        series: data
            .into_iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(labels, samples)| SeriesData {
                unnamed: drop_name(&labels),
                labels,
                samples,
            })
            .collect(),
    })
}

/// Fetches what `expr` needs and evaluates it over `range`.
pub fn run(
    conn: &mut Conn,
    expr: &Expr,
    range: &Range,
    deadline: Instant,
) -> Result<Outcome, PromError> {
    let mut needs = Vec::new();
    plan(expr, range, &mut needs);
    let mut data = HashMap::new();
    for need in &needs {
        if Instant::now() > deadline {
            return Err(PromError::Timeout("query preparation"));
        }
        data.insert(need.key, fetch(conn, need, range)?);
    }
    let evaluator = Evaluator { data };
    if range.step == 0 {
        return match evaluator.eval(expr, range.start)? {
            Value::Scalar(v) => Ok(Outcome::Scalar(range.start, v)),
            Value::Vector(samples) => {
                let mut seen: Vec<&Labels> = samples.iter().map(|s| &s.labels).collect();
                seen.sort();
                if seen.windows(2).any(|w| w[0] == w[1]) {
                    return Err(duplicate_labelset());
                }
                Ok(Outcome::Vector(
                    range.start,
                    samples.into_iter().map(|s| (s.labels, s.value)).collect(),
                ))
            }
            Value::Matrix(series) => Ok(Outcome::Matrix(series)),
        };
    }
    let mut out: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
    let mut t = range.start;
    while t <= range.end {
        if Instant::now() > deadline {
            return Err(PromError::Timeout("expression evaluation"));
        }
        match evaluator.eval(expr, t)? {
            Value::Scalar(v) => out.entry(Arc::new(Vec::new())).or_default().push((t, v)),
            Value::Vector(samples) => {
                for s in samples {
                    let points = out.entry(s.labels).or_default();
                    if points.last().is_some_and(|p| p.0 == t) {
                        return Err(duplicate_labelset());
                    }
                    points.push((t, s.value));
                }
            }
            Value::Matrix(_) => {
                return Err(PromError::BadData(
                    "invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                ))
            }
        }
        t = match t.checked_add(range.step) {
            Some(next) => next,
            None => break,
        };
    }
    let mut series: Vec<SeriesOut> = out
        .into_iter()
        .map(|(labels, points)| SeriesOut { labels, points })
        .collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Outcome::Matrix(series))
}

fn duplicate_labelset() -> PromError {
    PromError::Execution("vector cannot contain metrics with the same labelset".into())
}

struct Sample {
    labels: Labels,
    value: f64,
}

enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    Matrix(Vec<SeriesOut>),
}

struct Evaluator {
    data: HashMap<usize, Fetched>,
}

/// The samples of `samples` (time-ordered) in `[lo, hi]`.
fn window(samples: &[(i64, f64)], lo: i64, hi: i64) -> &[(i64, f64)] {
    let a = samples.partition_point(|p| p.0 < lo);
    let b = samples.partition_point(|p| p.0 <= hi);
    &samples[a..b.max(a)]
}

impl Evaluator {
    fn fetched(&self, e: &Expr) -> Result<&Fetched, PromError> {
        self.data
            .get(&key(e))
            .ok_or_else(|| PromError::Execution("internal: a selector was not fetched".into()))
    }

    fn scalar(&self, e: &Expr, t: i64) -> Result<f64, PromError> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(PromError::Execution(format!(
                "expected a scalar parameter, got {e}"
            ))),
        }
    }

    fn vector(&self, e: &Expr, t: i64) -> Result<Vec<Sample>, PromError> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            _ => Err(PromError::Execution(format!(
                "expected an instant vector, got {e}"
            ))),
        }
    }

    fn eval(&self, e: &Expr, t: i64) -> Result<Value, PromError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => Ok(match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(samples) => Value::Vector(
                    samples
                        .into_iter()
                        .map(|s| Sample {
                            labels: drop_name(&s.labels),
                            value: -s.value,
                        })
                        .collect(),
                ),
                Value::Matrix(_) => return Err(unsupported("unary minus on a range vector")),
            }),
            Expr::VectorSelector(_) => Ok(Value::Vector(self.select(e, t)?)),
            Expr::Aggregate(agg) => match self.data.contains_key(&key(e)) {
                true => Ok(Value::Vector(self.select(e, t)?)),
                false => self.aggregate(agg, t),
            },
            Expr::MatrixSelector(ms) => {
                let f = self.fetched(e)?;
                let width = i64::try_from(ms.range.as_millis()).unwrap_or(i64::MAX / 4);
                let hi = t.saturating_sub(f.offset);
                let lo = hi.saturating_sub(width);
                Ok(Value::Matrix(
                    f.series
                        .iter()
                        .filter_map(|s| {
                            let points = window(&s.samples, lo, hi);
                            (!points.is_empty()).then(|| SeriesOut {
                                labels: s.labels.clone(),
                                points: points.to_vec(),
                            })
                        })
                        .collect(),
                ))
            }
            Expr::Call(call) => self.call(call, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::StringLiteral(_) | Expr::Subquery(_) | Expr::Extension(_) => {
                Err(unsupported(e.to_string()))
            }
        }
    }

    /// An instant selector's (or a pushed-down aggregation's) vector at `t`.
    fn select(&self, e: &Expr, t: i64) -> Result<Vec<Sample>, PromError> {
        let f = self.fetched(e)?;
        let at = t.saturating_sub(f.offset);
        let mut out = Vec::new();
        for s in &f.series {
            let value = match f.exact {
                true => s
                    .samples
                    .binary_search_by_key(&at, |p| p.0)
                    .ok()
                    .map(|i| s.samples[i].1),
                false => {
                    let i = s.samples.partition_point(|p| p.0 <= at);
                    (i > 0 && s.samples[i - 1].0 >= at.saturating_sub(LOOKBACK_MS))
                        .then(|| s.samples[i - 1].1)
                }
            };
            if let Some(value) = value {
                out.push(Sample {
                    labels: s.labels.clone(),
                    value,
                });
            }
        }
        Ok(out)
    }

    fn call(&self, call: &Call, t: i64) -> Result<Value, PromError> {
        let name = call.func.name;
        let args = &call.args.args;
        if let Some(f) = RangeFunction::from_name(name) {
            let (param, matrix) = match f {
                RangeFunction::QuantileOverTime => match (args.first(), args.get(1)) {
                    (Some(q), Some(m)) => (self.scalar(q, t)?, m),
                    _ => return Err(PromError::BadData(format!("{name}: two arguments"))),
                },
                _ => match args.first() {
                    Some(m) => (0.0, m),
                    None => return Err(PromError::BadData(format!("{name}: one argument"))),
                },
            };
            let matrix = strip_parens(matrix);
            let Expr::MatrixSelector(ms) = matrix else {
                return Err(unsupported(format!("{name} of {matrix}")));
            };
            return self.range_function(f, matrix, ms, t, param);
        }
        match instant_function(name) {
            Some(InstantFunction::Time) => Ok(Value::Scalar(t as f64 / 1000.0)),
            Some(InstantFunction::Vector) => {
                let v = match args.first() {
                    Some(a) => self.scalar(a, t)?,
                    None => return Err(PromError::BadData("vector: one argument".into())),
                };
                Ok(Value::Vector(vec![Sample {
                    labels: Arc::new(Vec::new()),
                    value: v,
                }]))
            }
            Some(InstantFunction::Scalar) => {
                let v = match args.first() {
                    Some(a) => self.vector(a, t)?,
                    None => return Err(PromError::BadData("scalar: one argument".into())),
                };
                Ok(Value::Scalar(match v.as_slice() {
                    [one] => one.value,
                    _ => f64::NAN,
                }))
            }
            Some(InstantFunction::Map(f)) => {
                let v = match args.first() {
                    Some(a) => self.vector(a, t)?,
                    None => return Err(PromError::BadData(format!("{name}: one argument"))),
                };
                Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            labels: drop_name(&s.labels),
                            value: f(s.value),
                        })
                        .collect(),
                ))
            }
            None => Err(unsupported(format!("function {name}"))),
        }
    }

    fn range_function(
        &self,
        f: RangeFunction,
        node: &Expr,
        ms: &MatrixSelector,
        t: i64,
        param: f64,
    ) -> Result<Value, PromError> {
        let fetched = self.fetched(node)?;
        let width = i64::try_from(ms.range.as_millis()).unwrap_or(i64::MAX / 4);
        let hi = t.saturating_sub(fetched.offset);
        let lo = hi.saturating_sub(width);
        let mut out = Vec::new();
        for s in &fetched.series {
            let points = window(&s.samples, lo, hi);
            if points.is_empty() {
                continue;
            }
            if let Some(value) = f.apply(points, lo, hi, param) {
                let labels = match f.keeps_name() {
                    true => s.labels.clone(),
                    false => s.unnamed.clone(),
                };
                out.push(Sample { labels, value });
            }
        }
        Ok(Value::Vector(out))
    }

    fn aggregate(&self, agg: &AggregateExpr, t: i64) -> Result<Value, PromError> {
        let samples = self.vector(&agg.expr, t)?;
        let param = match &agg.param {
            Some(p) => Some(self.scalar(p, t)?),
            None => None,
        };
        let grouping = |labels: &Labels| -> Vec<(String, String)> {
            match &agg.modifier {
                None => Vec::new(),
                Some(LabelModifier::Include(names)) => labels
                    .iter()
                    .filter(|(n, _)| names.labels.contains(n))
                    .cloned()
                    .collect(),
                Some(LabelModifier::Exclude(names)) => labels
                    .iter()
                    .filter(|(n, _)| n != "__name__" && !names.labels.contains(n))
                    .cloned()
                    .collect(),
            }
        };
        let op = agg.op.id();
        let mut order: Vec<Vec<(String, String)>> = Vec::new();
        let mut groups: HashMap<Vec<(String, String)>, Vec<Sample>> = HashMap::new();
        for s in samples {
            let g = grouping(&s.labels);
            let members = groups.entry(g.clone()).or_insert_with(|| {
                order.push(g);
                Vec::new()
            });
            members.push(s);
        }
        let mut out = Vec::new();
        for g in order {
            let Some(members) = groups.remove(&g) else {
                continue;
            };
            let labels = Arc::new(g);
            match op {
                token::T_TOPK | token::T_BOTTOMK => {
                    let k = param.unwrap_or(f64::NAN);
                    if !(k.is_finite() && k.abs() < 9.2e18) {
                        return Err(PromError::Execution(format!(
                            "Scalar value {k} overflows int64"
                        )));
                    }
                    let k = k.trunc() as i64;
                    if k < 1 {
                        continue;
                    }
                    let mut members = members;
                    let top = op == token::T_TOPK;
                    // NaN loses in both (Prometheus's heaps replace a NaN by any number).
                    members.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if top => b.value.total_cmp(&a.value),
                        _ => a.value.total_cmp(&b.value),
                    });
                    members.truncate(usize::try_from(k).unwrap_or(usize::MAX));
                    out.extend(members);
                }
                token::T_QUANTILE => {
                    let q = param.unwrap_or(f64::NAN);
                    let values = members.iter().map(|s| s.value).collect();
                    out.push(Sample {
                        labels,
                        value: functions::quantile(q, values),
                    });
                }
                _ => {
                    let Some(aggregation) = aggregation_of(op) else {
                        return Err(unsupported(format!("aggregation {}", agg.op)));
                    };
                    let value = match aggregation {
                        Aggregation::Stdvar | Aggregation::Stddev => {
                            let values: Vec<f64> = members.iter().map(|s| s.value).collect();
                            let var = functions::stdvar(&values);
                            match aggregation {
                                Aggregation::Stddev => var.sqrt(),
                                _ => var,
                            }
                        }
                        _ => {
                            let mut acc = aggregation.start(members[0].value);
                            for s in &members[1..] {
                                aggregation.add(&mut acc, s.value);
                            }
                            aggregation.finish(&acc)
                        }
                    };
                    out.push(Sample { labels, value });
                }
            }
        }
        Ok(Value::Vector(out))
    }

    fn binary(&self, b: &BinaryExpr, t: i64) -> Result<Value, PromError> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (value, keep) = elem_binop(op, l, r)?;
                Ok(Value::Scalar(match (comparison, keep) {
                    (false, _) => value,
                    (true, true) => 1.0,
                    (true, false) => 0.0,
                }))
            }
            (Value::Vector(v), Value::Scalar(s)) => {
                vector_scalar(op, v, s, false, return_bool, comparison)
            }
            (Value::Scalar(s), Value::Vector(v)) => {
                vector_scalar(op, v, s, true, return_bool, comparison)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                vector_vector(b, op, l, r, return_bool, comparison)
            }
            _ => Err(unsupported("binary operation on a range vector")),
        }
    }
}

/// Prometheus's `vectorElemBinop`: the value, and whether a comparison holds.
fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), PromError> {
    Ok(match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_POW => (l.powf(r), true),
        token::T_MOD => (l % r, true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        other => {
            return Err(unsupported(format!(
                "operator {}",
                token::TokenType::new(other)
            )))
        }
    })
}

/// Prometheus's `VectorscalarBinop`: `swap` when the scalar was on the left.
fn vector_scalar(
    op: TokenId,
    v: Vec<Sample>,
    s: f64,
    swap: bool,
    return_bool: bool,
    comparison: bool,
) -> Result<Value, PromError> {
    let mut out = Vec::with_capacity(v.len());
    for sample in v {
        let (l, r) = match swap {
            true => (s, sample.value),
            false => (sample.value, s),
        };
        let (mut value, mut keep) = elem_binop(op, l, r)?;
        if comparison && swap {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = match !comparison || return_bool {
                true => drop_name(&sample.labels),
                false => sample.labels,
            };
            out.push(Sample { labels, value });
        }
    }
    Ok(Value::Vector(out))
}

/// One-to-one vector matching (`on`/`ignoring`), as Prometheus's `VectorBinop`.
fn vector_vector(
    b: &BinaryExpr,
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    return_bool: bool,
    comparison: bool,
) -> Result<Value, PromError> {
    let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
    let signature = |labels: &Labels| -> Vec<(String, String)> {
        match matching {
            Some(LabelModifier::Include(on)) => labels
                .iter()
                .filter(|(n, _)| on.labels.contains(n))
                .cloned()
                .collect(),
            Some(LabelModifier::Exclude(ignoring)) => labels
                .iter()
                .filter(|(n, _)| n != "__name__" && !ignoring.labels.contains(n))
                .cloned()
                .collect(),
            None => labels
                .iter()
                .filter(|(n, _)| n != "__name__")
                .cloned()
                .collect(),
        }
    };
    let mut right: HashMap<Vec<(String, String)>, f64> = HashMap::new();
    for s in &rhs {
        if right.insert(signature(&s.labels), s.value).is_some() {
            return Err(PromError::Execution(format!(
                "found duplicate series for the match group {:?} on the right hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side",
                signature(&s.labels)
            )));
        }
    }
    let mut seen_left: HashMap<Vec<(String, String)>, ()> = HashMap::new();
    let mut out = Vec::new();
    for s in lhs {
        let sig = signature(&s.labels);
        let Some(&r) = right.get(&sig) else { continue };
        if seen_left.insert(sig, ()).is_some() {
            return Err(PromError::Execution(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
            ));
        }
        let (mut value, mut keep) = elem_binop(op, s.value, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        let mut labels: Vec<(String, String)> = match !comparison || return_bool {
            true => drop_name(&s.labels).as_ref().clone(),
            false => s.labels.as_ref().clone(),
        };
        match matching {
            Some(LabelModifier::Include(on)) => labels.retain(|(n, _)| on.labels.contains(n)),
            Some(LabelModifier::Exclude(ignoring)) => {
                labels.retain(|(n, _)| !ignoring.labels.contains(n))
            }
            None => {}
        }
        out.push(Sample {
            labels: Arc::new(labels),
            value,
        });
    }
    Ok(Value::Vector(out))
}
