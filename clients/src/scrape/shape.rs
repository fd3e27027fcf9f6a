//! The shape cache: a target's last scrape as the parser read it, so that its next scrape — the
//! same text but for the sample values, which is what dcgm-exporter serves scrape after scrape
//! — is mapped and encoded without running the parser again.
//!
//! A shape is built only from a text the parser read whole (no line-by-line fallback) in
//! which no sample has a timestamp or an exemplar (so, by the grammar, a sample line ends in
//! its value), no family is a histogram or summary, and every sample is tied to its line. The ties come from the parser itself, not from reading the lines here: a
//! *probe* copy of the text, whose i-th sample line has its value token (what follows the
//! line's last space) replaced by `i`, is parsed too, so each sample the parser returns names
//! its line by its value; the counts must agree, and the real text's value of every line must
//! equal this module's reading of its token. The shape then keeps every line of the text (a
//! sample line cut into its series prefix and its value token), what each sample line maps
//! to whatever its value (its point's NDJSON produce line cut around its `ts` and its
//! `value`, or why it is no point), and the order [`super::map_exposition`] gives the points.
//!
//! The next scrape is served from the shape when every line other than a sample line is
//! byte-equal to the shape's, every sample line starts with its line's prefix, the line count
//! is the same, and every value token is one this module reads exactly as the parser does:
//! `[+-]?` digits, optionally `.` digits, optionally an exponent (`e`/`E`, a sign, digits), or
//! exactly `NaN`, `+Inf`, `-Inf` (the grammar wants a sign on `Inf`), read as the parser reads
//! it (an `i64` when it is one, else an `f64`). A counter's value that is negative or NaN (the
//! parser refuses the whole text then) also goes to the parser. Anything else — a changed
//! line, another token, a line more or less, another target host — is parsed as before and
//! the shape rebuilt from it. A NaN or ±Inf value is skipped as `not_finite`, exactly as the
//! parser's path does. The tests check the two paths give the same points, bytes and skip
//! counts for many mutated texts.
//!
//! A shape costs about the text's size plus its encoded points (~0.13 MB for dcgm-exporter's
//! 8 GPUs × 20 fields); texts over [`MAX_SHAPE_TEXT`] get none. Each target has one cache,
//! dropped with the target ([`crate::streamer::scrape::pool`]).

use std::collections::HashMap;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{judge, map_and_read, order_key, parse, reads, series, Mapped, Read, Reason, Skipped};
use crate::telemetry::Point;
use broker_client::push_record;

/// The largest text a shape is kept for (dcgm-exporter's are tens of KiB).
pub const MAX_SHAPE_TEXT: usize = 4 << 20;

/// One target's shape: at most one, of its last scrape the parser read whole.
#[derive(Default, Clone)]
pub struct ShapeCache {
    shape: Option<Shape>,
}

/// One scrape mapped and encoded as NDJSON produce lines (one per point, keyed by GPU UUID).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    pub points: usize,
    pub skipped: Skipped,
    /// Served from the shape (no parse).
    pub cached: bool,
}

impl ShapeCache {
    /// Maps `text` (as [`super::map_exposition`] does) and appends its points' produce lines
    /// (as `push_record(body, &point.gpu_uuid, point)` does) to `body`.
    pub fn encode(
        &mut self,
        text: &str,
        scraped_at: DateTime<Utc>,
        target_host: &str,
        body: &mut Vec<u8>,
    ) -> Result<Encoded, String> {
        let empty = body.len();
        if let Some(shape) = &self.shape {
            if let Some(encoded) = shape.encode(text, scraped_at, target_host, body) {
                return Ok(encoded);
            }
            body.truncate(empty);
        }
        let mapped = self.map_by_parser(text, scraped_at, target_host);
        for point in &mapped.points {
            push_record(body, &point.gpu_uuid, point).map_err(|e| e.to_string())?;
        }
        Ok(Encoded {
            points: mapped.points.len(),
            skipped: mapped.skipped,
            cached: false,
        })
    }

    /// [`Self::encode`]'s points as points (they are read back from the produce lines when the
    /// shape served the text): what the tests compare with [`super::map_exposition`].
    pub fn map(&mut self, text: &str, scraped_at: DateTime<Utc>, target_host: &str) -> Mapped {
        if let Some(shape) = &self.shape {
            let mut body = Vec::new();
            if let Some(encoded) = shape.encode(text, scraped_at, target_host, &mut body) {
                if let Some(points) = decode(&body) {
                    return Mapped {
                        points,
                        skipped: encoded.skipped,
                    };
                }
            }
        }
        self.map_by_parser(text, scraped_at, target_host)
    }

    /// Whether a shape is kept.
    pub fn is_warm(&self) -> bool {
        self.shape.is_some()
    }

    /// The parser's path, and the shape rebuilt from it.
    fn map_by_parser(&mut self, text: &str, scraped_at: DateTime<Utc>, host: &str) -> Mapped {
        let (mapped, whole) = map_and_read(text, scraped_at, host);
        self.shape = whole.and_then(|reads| Shape::build(text, reads, scraped_at, host));
        mapped
    }
}

/// The points of produce lines.
fn decode(body: &[u8]) -> Option<Vec<Point<'static>>> {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        value: Point<'a>,
    }
    body.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice::<Line<'_>>(line)
                .ok()
                .map(|l| l.value.into_owned())
        })
        .collect()
}

/// A scrape's text as the parser read it.
#[derive(Clone)]
struct Shape {
    host: String,
    /// The text it was built from; `lines` are ranges of it.
    text: String,
    lines: Vec<Line>,
    /// The sample lines, in text order.
    samples: Vec<SampleLine>,
    /// The sample lines with a point, in the order of the points.
    order: Vec<u32>,
    /// The produce lines' pieces (see [`SampleLine`]).
    pieces: Vec<u8>,
}

/// One line of the text (without its `\n`): a range of the shape's text; for a sample line,
/// the range of its prefix (up to and with the last space), the value token after it.
#[derive(Clone)]
struct Line {
    start: u32,
    end: u32,
    sample: bool,
}

#[derive(Clone)]
struct SampleLine {
    /// A counter's (the parser refuses a negative or NaN counter value).
    counter: bool,
    /// Its point's produce line in `pieces`: `[head, mid, tail, end]` offsets, the `ts`
    /// between head and mid, the value between mid and tail; or why it is no point.
    outcome: Result<[u32; 4], Reason>,
}

impl Shape {
    fn build(text: &str, real: Vec<Read>, at: DateTime<Utc>, host: &str) -> Option<Shape> {
        if text.len() > MAX_SHAPE_TEXT || text.contains('\r') || !storable(at) {
            return None;
        }
        // The lines, each sample line cut at its last space, and the probe text.
        let mut lines = Vec::new();
        let mut tokens = Vec::new();
        let mut probe = String::with_capacity(text.len());
        let mut start = 0;
        for piece in text.split('\n') {
            let end = start + piece.len();
            if piece.trim().is_empty() || piece.starts_with('#') {
                lines.push(Line {
                    start: start as u32,
                    end: end as u32,
                    sample: false,
                });
                probe.push_str(piece);
            } else {
                let cut = piece.rfind(' ')? + 1;
                probe.push_str(&piece[..cut]);
                probe.push_str(&tokens.len().to_string());
                tokens.push(&piece[cut..]);
                lines.push(Line {
                    start: start as u32,
                    end: (start + cut) as u32,
                    sample: true,
                });
            }
            probe.push('\n');
            start = end + 1;
        }
        probe.pop();
        let n = tokens.len();
        if n == 0 || real.len() != n {
            return None;
        }
        // The probe's samples name their lines.
        let probed = reads(parse(&probe)?);
        if probed.len() != n {
            return None;
        }
        let mut line_of: HashMap<(&str, usize), usize> = HashMap::with_capacity(n);
        let mut seen = vec![false; n];
        for read in &probed {
            let i = read.value;
            if read.timestamp_ms.is_some()
                || read.exemplar
                || !(0.0..n as f64).contains(&i)
                || i.fract() != 0.0
            {
                return None;
            }
            let i = i as usize;
            if std::mem::replace(&mut seen[i], true) {
                return None;
            }
            line_of.insert((read.family.as_str(), read.nth), i);
        }
        // The real text's samples, each on its line.
        let mut outcomes: Vec<Option<(bool, Result<Point<'static>, Reason>)>> =
            (0..n).map(|_| None).collect();
        for read in &real {
            let i = *line_of.get(&(read.family.as_str(), read.nth))?;
            let (Some(kind), Some(labels), None, false) =
                (read.kind, &read.labels, read.timestamp_ms, read.exemplar)
            else {
                return None;
            };
            let token = read_token(tokens[i])?;
            let same =
                token.to_bits() == read.value.to_bits() || (token.is_nan() && read.value.is_nan());
            if !same || outcomes[i].is_some() {
                return None;
            }
            let series = series(&read.family, kind, labels, None, at, host);
            outcomes[i] = Some((kind == "counter", series));
        }
        let outcomes: Vec<(bool, Result<Point<'static>, Reason>)> =
            outcomes.into_iter().collect::<Option<_>>()?;
        // The points' order: map_exposition's (a stable sort of the text's order).
        let mut order: Vec<u32> = (0..n as u32)
            .filter(|&i| outcomes[i as usize].1.is_ok())
            .collect();
        order.sort_by(
            |&a, &b| match (&outcomes[a as usize].1, &outcomes[b as usize].1) {
                (Ok(pa), Ok(pb)) => order_key(pa).cmp(&order_key(pb)),
                _ => std::cmp::Ordering::Equal,
            },
        );
        // The produce lines, cut.
        let mut pieces = Vec::new();
        let mut samples = Vec::with_capacity(n);
        for (counter, series) in outcomes {
            let outcome = match series {
                Ok(mut point) => {
                    let [head, mid, tail] = cut(&mut point, at)?;
                    let offsets = |len: usize| (pieces.len() + len) as u32;
                    let at = [
                        offsets(0),
                        offsets(head.len()),
                        offsets(head.len() + mid.len()),
                        offsets(head.len() + mid.len() + tail.len()),
                    ];
                    pieces.extend_from_slice(&head);
                    pieces.extend_from_slice(&mid);
                    pieces.extend_from_slice(&tail);
                    Ok(at)
                }
                Err(reason) => Err(reason),
            };
            samples.push(SampleLine { counter, outcome });
        }
        pieces.shrink_to_fit();
        Some(Shape {
            host: host.to_string(),
            text: text.to_string(),
            lines,
            samples,
            order,
            pieces,
        })
    }

    /// `text` mapped and encoded from the shape; `None` when the shape does not fit it.
    fn encode(
        &self,
        text: &str,
        at: DateTime<Utc>,
        host: &str,
        body: &mut Vec<u8>,
    ) -> Option<Encoded> {
        if host != self.host || !storable(at) {
            return None;
        }
        let mut values = Vec::with_capacity(self.samples.len());
        let mut pieces = text.split('\n');
        for line in &self.lines {
            let piece = pieces.next()?;
            let known = &self.text[line.start as usize..line.end as usize];
            if !line.sample {
                if piece != known {
                    return None;
                }
                continue;
            }
            let value = read_token(piece.strip_prefix(known)?)?;
            if self.samples[values.len()].counter && (value < 0.0 || value.is_nan()) {
                return None;
            }
            values.push(value);
        }
        if pieces.next().is_some() {
            return None;
        }
        let mut skipped = Skipped::default();
        for (sample, &value) in self.samples.iter().zip(&values) {
            if let Some(reason) = judge(&sample.outcome, value) {
                reason.count(&mut skipped);
            }
        }
        let ts = ts_json(at)?;
        body.reserve(self.pieces.len() + self.order.len() * (ts.len() + 24));
        let mut points = 0;
        for &i in &self.order {
            let (value, Ok([head, mid, tail, end])) =
                (values[i as usize], self.samples[i as usize].outcome)
            else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            body.extend_from_slice(&self.pieces[head as usize..mid as usize]);
            body.extend_from_slice(&ts);
            body.extend_from_slice(&self.pieces[mid as usize..tail as usize]);
            serde_json::to_writer(&mut *body, &value).ok()?;
            body.extend_from_slice(&self.pieces[tail as usize..end as usize]);
            points += 1;
        }
        Some(Encoded {
            points,
            skipped,
            cached: true,
        })
    }
}

/// A time the store can hold (as [`Point::check`] wants a point's `ts`).
fn storable(at: DateTime<Utc>) -> bool {
    (1..=9999).contains(&at.year())
}

/// A value token read as the parser reads it, when it is one of the tokens read here: `[+-]?`
/// digits, optionally `.` digits, optionally an exponent; or `NaN`, `+Inf`, `-Inf`. `None`
/// for anything else (the parser then reads the text).
fn read_token(token: &str) -> Option<f64> {
    match token {
        "NaN" => return Some(f64::NAN),
        "+Inf" => return Some(f64::INFINITY),
        "-Inf" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let b = token.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > from
    };
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    // The parser's reading: an integer when the token is one (so `-0` is 0), else a float.
    token
        .parse::<i64>()
        .map(|n| n as f64)
        .or_else(|_| token.parse::<f64>())
        .ok()
}

/// A point's `ts` as its JSON has it (the store's format, quoted).
fn ts_json(at: DateTime<Utc>) -> Option<Vec<u8>> {
    #[derive(Serialize)]
    struct Ts(#[serde(with = "store::time::rfc3339_micros")] DateTime<Utc>);
    serde_json::to_vec(&Ts(at)).ok()
}

/// `point`'s produce line cut into the bytes before its `ts`, between its `ts` and its value,
/// and after its value. Found by encoding the line with two times and two values and checking
/// that the pieces put back together give the encoder's bytes; `None` when they do not.
fn cut(point: &mut Point<'static>, at: DateTime<Utc>) -> Option<[Vec<u8>; 3]> {
    let step = TimeDelta::microseconds(86_400_000_000 + 1_111_111);
    let t0 = at;
    let t1 = at
        .checked_sub_signed(step)
        .or(at.checked_add_signed(step))?;
    let (v0, v1) = (1.5_f64, 2.25_f64);
    let mut line = |ts, value| {
        point.ts = ts;
        point.value = value;
        let mut body = Vec::new();
        push_record(&mut body, &point.gpu_uuid, &*point).ok()?;
        Some(body)
    };
    let (b00, b10, b01, b11) = (line(t0, v0)?, line(t1, v0)?, line(t0, v1)?, line(t1, v1)?);
    let (e_t0, e_t1) = (ts_json(t0)?, ts_json(t1)?);
    let (e_v0, e_v1) = (serde_json::to_vec(&v0).ok()?, serde_json::to_vec(&v1).ok()?);
    let common = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let ts_at = common(&b00, &b10).checked_sub(common(&e_t0, &e_t1))?;
    let ts_end = ts_at + e_t0.len();
    let value_at = common(&b00, &b01).checked_sub(common(&e_v0, &e_v1))?;
    let value_end = value_at + e_v0.len();
    if ts_end > value_at
        || b00.get(ts_at..ts_end)? != e_t0.as_slice()
        || b00.get(value_at..value_end)? != e_v0.as_slice()
    {
        return None;
    }
    let head = b00[..ts_at].to_vec();
    let mid = b00[ts_end..value_at].to_vec();
    let tail = b00[value_end..].to_vec();
    let again = [&head[..], &e_t1, &mid, &e_v1, &tail].concat();
    (again == b11).then_some([head, mid, tail])
}

#[cfg(test)]
mod tests;
