use chrono::TimeZone;

use super::*;
use crate::scrape::map_exposition;

const FIXTURE: &str = include_str!("../../../tests/fixtures/dcgm-exporter.prom");
const HOST: &str = "10.0.0.7";

fn at(n: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_770_000_000 + n, 123_456_000).unwrap()
}

/// The parser's path on `text`: its mapping and its produce lines.
fn by_parser(text: &str, at: DateTime<Utc>, host: &str) -> (Mapped, Vec<u8>) {
    let mapped = map_exposition(text, at, host);
    let mut body = Vec::new();
    for p in &mapped.points {
        push_record(&mut body, &p.gpu_uuid, p).unwrap();
    }
    (mapped, body)
}

/// Both of the cache's entry points give what the parser's path gives for `text`; returns
/// whether the shape served it.
fn agree(cache: &mut ShapeCache, text: &str, at: DateTime<Utc>) -> bool {
    let (want, want_body) = by_parser(text, at, HOST);
    let mut other = cache.clone();
    let mut body = b"before\n".to_vec();
    let encoded = cache.encode(text, at, HOST, &mut body).unwrap();
    assert_eq!(&body[..7], b"before\n", "appends");
    assert_eq!(
        String::from_utf8_lossy(&body[7..]),
        String::from_utf8_lossy(&want_body),
        "the produce lines, for {text:?}"
    );
    assert_eq!(encoded.points, want.points.len());
    assert_eq!(encoded.skipped, want.skipped, "for {text:?}");
    let mapped = other.map(text, at, HOST);
    assert_eq!(mapped.points, want.points, "for {text:?}");
    assert_eq!(mapped.skipped, want.skipped);
    for (a, b) in mapped.points.iter().zip(&want.points) {
        assert_eq!(a.value.to_bits(), b.value.to_bits());
    }
    assert_eq!(cache.is_warm(), other.is_warm());
    encoded.cached
}

/// What dcgm-exporter serves for `gpus` GPUs and a few fields (one a counter), values from `n`.
fn exposition(gpus: usize, n: usize) -> String {
    let fields = [
        ("DCGM_FI_DEV_GPU_TEMP", "gauge"),
        ("DCGM_FI_DEV_SM_CLOCK", "gauge"),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter"),
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge"),
    ];
    let mut text = String::new();
    for (f, (field, kind)) in fields.iter().enumerate() {
        text.push_str(&format!("# HELP {field} {field}.\n# TYPE {field} {kind}\n"));
        for gpu in 0..gpus {
            text.push_str(&format!(
                "{field}{{gpu=\"{gpu}\",UUID=\"GPU-{gpu:04}\",device=\"nvidia{gpu}\",\
                 modelName=\"NVIDIA H100 80GB HBM3\",Hostname=\"node-1\",\
                 DCGM_FI_DRIVER_VERSION=\"550.54.15\",container=\"\",namespace=\"\",pod=\"\"}} {}\n",
                (n * 31 + gpu * 7 + f) % 1000
            ));
        }
    }
    text
}

/// Tokens the differential test puts in place of values.
const TOKENS: &[&str] = &[
    "0",
    "41",
    "-7",
    "+12",
    "-0",
    "-0.0",
    "007",
    "61.234000",
    "+1.5E-3",
    "1.5e+10",
    "2e-400",
    "1e400",
    "-1e400",
    "9007199254740993",
    "99999999999999999999",
    "NaN",
    "+Inf",
    "-Inf",
    "Inf",
    "nan",
    "infinity",
    "+inf",
    "0x10",
    "1_0",
    ".5",
    "5.",
    "1e",
    "+",
    "",
    "1 2",
    "1.0.0",
    "５",
];

/// New values on every sample line of `text`, as a target's next scrape has (now and then an
/// odd token).
fn revalue(rng: &mut fastrand::Rng, text: &str) -> String {
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| match line.rfind(' ') {
            Some(cut) if !line.starts_with('#') => {
                let token = match rng.u8(..60) {
                    0..=28 => rng.u32(..100_000).to_string(),
                    29..=57 => format!("{:.6}", rng.f64() * 1000.0),
                    _ => TOKENS[rng.usize(..TOKENS.len())].to_string(),
                };
                format!("{}{token}", &line[..=cut])
            }
            _ => line.to_string(),
        })
        .collect();
    lines.join("\n")
}

/// One random change to `text`.
fn mutate(rng: &mut fastrand::Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let samples: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].is_empty() && !lines[i].starts_with('#'))
        .collect();
    if samples.is_empty() {
        return text.to_string();
    }
    let i = samples[rng.usize(..samples.len())];
    let cut = lines[i].rfind(' ').map_or(0, |c| c + 1);
    match rng.u8(..100) {
        // Mostly what a real target does: new values.
        0..=59 => {
            let token = match rng.u8(..4) {
                0 => rng.i64(-1000..100_000).to_string(),
                1 => format!("{:.6}", rng.f64() * 1000.0),
                _ => TOKENS[rng.usize(..TOKENS.len())].to_string(),
            };
            lines[i] = format!("{}{token}", &lines[i][..cut]);
        }
        60..=67 => {
            lines[i] = lines[i].replacen("gpu=\"", &format!("gpu=\"{}", rng.u8(..3)), 1);
        }
        68..=71 => lines[i] = lines[i].replacen("Hostname=\"", "Hostname=\"x", 1),
        72..=75 => lines[i] = lines[i].replacen("UUID=\"", "UUID=\"\\\"", 1),
        76..=79 => {
            lines.remove(i);
        }
        80..=83 => {
            let copy = lines[i].clone();
            lines.insert(i, copy);
        }
        84..=87 => {
            let new = lines[i]
                .replacen("gpu=\"", "gpu=\"9", 1)
                .replacen("UUID=\"", "UUID=\"N", 1);
            lines.insert(i + 1, new);
        }
        88..=89 => lines[i].push(' '),
        90..=91 => lines[i].push_str(" 1700000000000"),
        92..=93 => {
            let j = rng.usize(..lines.len());
            if lines[j].starts_with("# HELP") {
                lines[j].push('!');
            } else {
                lines.insert(j, "# HELP other Another.".to_string());
            }
        }
        94..=95 => {
            if lines.last().is_some_and(String::is_empty) {
                lines.pop();
            } else {
                lines.push(String::new());
            }
        }
        96..=97 => lines.insert(i, String::new()),
        _ => lines[i] = lines[i].replacen(' ', "\t", 1),
    }
    lines.join("\n")
}

#[test]
fn a_shape_serves_new_values_and_agrees_with_the_parser() {
    let mut cache = ShapeCache::default();
    assert!(
        !agree(&mut cache, FIXTURE, at(0)),
        "the first scrape is parsed"
    );
    assert!(cache.is_warm(), "the fixture has a shape");
    let next = FIXTURE
        .replace("} 41\n", "} 42\n")
        .replace("} 61.234000\n", "} NaN\n")
        .replace("} NaN\nDCGM_FI_DEV_XID", "} 63.5\nDCGM_FI_DEV_XID")
        .replace("} 0.512345\n", "} -1e400\n");
    assert_ne!(next, FIXTURE);
    assert!(
        agree(&mut cache, &next, at(15)),
        "new values: from the shape"
    );
    assert!(agree(&mut cache, FIXTURE, at(30)));
}

#[test]
fn anything_but_new_values_goes_to_the_parser() {
    let changed = [
        // A label, a comment line, a line more, a line less, the last newline, a token
        // outside the set (the grammar refuses a bare `Inf`), a negative counter (the parser
        // refuses the whole text), a timestamp.
        FIXTURE.replacen("gpu=\"1\"", "gpu=\"3\"", 1),
        FIXTURE.replacen("GPU temperature", "GPU temperature!", 1),
        format!("{FIXTURE}m{{gpu=\"0\",UUID=\"GPU-x\"}} 1\n"),
        FIXTURE.replacen("} 79\n", "}", 1),
        FIXTURE.trim_end().to_string(),
        FIXTURE.replacen("} 41\n", "} Inf\n", 1),
        FIXTURE.replacen("} 41\n", "} 0x29\n", 1),
        FIXTURE.replacen("} 1736415628\n", "} -1\n", 1),
        FIXTURE.replacen("} 1736415628\n", "} NaN\n", 1),
        FIXTURE.replacen("} 41\n", "} 41 1700000000000\n", 1),
    ];
    for text in &changed {
        let mut cache = ShapeCache::default();
        agree(&mut cache, FIXTURE, at(0));
        assert!(!agree(&mut cache, text, at(15)), "parsed: {text:?}");
        // Back to the fixture: parsed again when the change left no shape, else from the
        // changed text's shape only if its lines are the fixture's.
        agree(&mut cache, FIXTURE, at(30));
    }
    let mut cache = ShapeCache::default();
    agree(&mut cache, FIXTURE, at(0));
    let (want, _) = by_parser(FIXTURE, at(15), "other-host");
    assert_eq!(cache.map(FIXTURE, at(15), "other-host").points, want.points);
}

#[test]
fn no_shape_without_a_whole_parse_or_with_timestamps_or_histograms() {
    let texts = [
        // The line-by-line fallback (a family with different label sets).
        "# TYPE t gauge\nt{gpu=\"0\",UUID=\"a\"} 1\nt{gpu=\"1\",UUID=\"b\",pod=\"p\"} 2\n"
            .to_string(),
        "t{gpu=\"0\",UUID=\"a\"} 1 1700000000000\n".to_string(),
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"
            .to_string(),
        "# HELP only comments\n".to_string(),
        // An exemplar: the value is not the line's last token.
        "# TYPE x_total counter\nx_total{gpu=\"0\",UUID=\"a\"} 5 # {trace=\"t\"} 1\n".to_string(),
        String::new(),
        FIXTURE.replace('\n', "\r\n"),
    ];
    for text in &texts {
        let mut cache = ShapeCache::default();
        agree(&mut cache, text, at(0));
        assert!(!cache.is_warm(), "{text:?}");
        assert!(!agree(&mut cache, text, at(15)));
    }
}

#[test]
fn tokens_are_read_as_the_parser_reads_them() {
    for token in TOKENS
        .iter()
        .copied()
        .chain(["1e308", "-9223372036854775808", "1E5"])
    {
        let text = format!("m{{gpu=\"0\",UUID=\"a\"}} {token}\n");
        let Some(mine) = read_token(token) else {
            continue;
        };
        let parsed = reads(parse(&text).expect("a token read here is one the grammar takes"));
        let theirs = parsed[0].value;
        assert!(
            mine.to_bits() == theirs.to_bits() || (mine.is_nan() && theirs.is_nan()),
            "{token}: {mine} vs {theirs}"
        );
    }
    for refused in ["Inf", "nan", "0x10", "1_0", ".5", "5.", "", "1e", "+", " 1"] {
        assert_eq!(read_token(refused), None, "{refused:?}");
    }
}

#[test]
fn mutated_expositions_map_the_same_from_the_shape_and_the_parser() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let bases = [FIXTURE.to_string(), exposition(3, 1)];
    let (mut served, mut total) = (0, 0);
    for round in 0..25 {
        for base in &bases {
            let mut cache = ShapeCache::default();
            let mut text = base.clone();
            agree(&mut cache, &text, at(0));
            for step in 1..12 {
                // Start again from the base now and then, as a target that recovers does.
                let from = if rng.u8(..4) == 0 {
                    base.as_str()
                } else {
                    &text
                };
                let mut next = revalue(&mut rng, from);
                for _ in 0..rng.usize(..5).saturating_sub(2) {
                    next = mutate(&mut rng, &next);
                }
                served += usize::from(agree(&mut cache, &next, at(round * 100 + step)));
                total += 1;
                text = next;
            }
        }
    }
    assert!(served * 3 > total, "the shape served {served} of {total}");
}

#[test]
fn an_exemplar_line_gets_no_shape() {
    let text = "# TYPE x_total counter\nx_total{gpu=\"0\",UUID=\"a\"} 5 # {trace=\"t\"} 1\n";
    assert!(parse(text).is_some(), "the parser reads it whole");
    let mut cache = ShapeCache::default();
    let mapped = cache.map(text, at(0), HOST);
    assert_eq!(mapped.points.len(), 1);
    assert_eq!(mapped.points[0].value, 5.0);
    assert!(!cache.is_warm());
}
