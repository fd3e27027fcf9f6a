//! Unit tests of the CSV → point mapping, one per odd input the real exports contain.

use super::*;
use std::io::Write;

const HEADER: &str =
    "timestamp,metric_name,gpu_id,device,uuid,modelName,Hostname,container,pod,namespace,value,labels_raw";
const ROW: &str = r#""2025-07-18T20:42:34Z","DCGM_FI_DEV_GPU_UTIL","0","nvidia0","GPU-5fd4f087-86f3-7a43-b711-4771313afc50","NVIDIA H100 80GB HBM3","host-031","","","","100","DCGM_FI_DRIVER_VERSION=""535.129.03"",Hostname=""host-031"",gpu=""0""""#;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Writes `text` to a temporary file and maps every record: Ok(point JSON) or Err(line, reason).
fn map_file(text: &[u8]) -> Vec<Result<serde_json::Value, (u64, String)>> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text).unwrap();
    let mut rows = CsvRows::open(file.path()).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next_record().unwrap() {
        out.push(
            row.point(now())
                .map(|p| serde_json::to_value(&p).unwrap())
                .map_err(|e| (row.line, e.0)),
        );
    }
    out
}

fn one_point(text: &str) -> serde_json::Value {
    let mut all = map_file(text.as_bytes());
    assert_eq!(all.len(), 1);
    all.remove(0).unwrap()
}

#[test]
fn a_sample_row_becomes_the_documented_point() {
    let p = one_point(&format!("{HEADER}\n{ROW}\n"));
    assert_eq!(
        p,
        serde_json::json!({
            "ts": "2026-01-02T03:04:05.123456Z",
            "source_ts": "2025-07-18T20:42:34.000000Z",
            "metric": "DCGM_FI_DEV_GPU_UTIL",
            "gpu_uuid": "GPU-5fd4f087-86f3-7a43-b711-4771313afc50",
            "gpu_index": 0,
            "device": "nvidia0",
            "model": "NVIDIA H100 80GB HBM3",
            "hostname": "host-031",
            "container": null,
            "pod": null,
            "namespace": null,
            "value": 100.0,
            "labels": {"DCGM_FI_DRIVER_VERSION": "535.129.03", "Hostname": "host-031", "gpu": "0"}
        })
    );
}

#[test]
fn crlf_line_ends_and_a_utf8_bom_are_read_like_plain_lines() {
    let text = format!("\u{feff}{HEADER}\r\n{ROW}\r\n{ROW}\r\n");
    let all = map_file(text.as_bytes());
    assert_eq!(all.len(), 2);
    let p = all[1].as_ref().unwrap();
    assert_eq!(p["source_ts"], "2025-07-18T20:42:34.000000Z");
    assert_eq!(p["labels"]["gpu"], "0");
}

#[test]
fn reordered_and_extra_columns_are_found_by_header_name() {
    let text = "extra,value,uuid,Hostname,metric_name,timestamp,gpu_id,device,modelName\n\
                x,1.5,GPU-abc,h1,M,2025-07-18T20:42:34Z,3,nvidia3,H100\n";
    let p = one_point(text);
    assert_eq!(p["value"], 1.5);
    assert_eq!(p["gpu_index"], 3);
    assert_eq!(p["hostname"], "h1");
    assert_eq!(p["labels"], serde_json::json!({}));
    assert_eq!(p["pod"], serde_json::Value::Null);
}

#[test]
fn a_header_without_a_required_column_is_refused_naming_it() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"timestamp,metric_name,gpu_id\n1,2,3\n")
        .unwrap();
    let err = CsvRows::open(file.path()).err().unwrap().to_string();
    assert!(err.contains("\"device\""), "{err}");
}

#[test]
fn label_values_keep_escaped_quotes_backslashes_and_commas() {
    let labels = parse_labels(r#"a="x \"q\" y",b="c,d", c="back\\slash\n",d="""#).unwrap();
    let as_map: Vec<(&str, &str)> = labels.0.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(
        as_map,
        vec![
            ("a", "x \"q\" y"),
            ("b", "c,d"),
            ("c", "back\\slash\n"),
            ("d", "")
        ]
    );
}

#[test]
fn doubled_quotes_inside_a_quoted_csv_field_reach_the_label_parser_as_quotes() {
    let row = ROW.replace(r#"gpu=""0"""#, r#"note=""say \""hi\"" now"""#);
    let p = one_point(&format!("{HEADER}\n{row}\n"));
    assert_eq!(p["labels"]["note"], "say \"hi\" now");
}

#[test]
fn broken_labels_are_a_bad_row_with_the_reason() {
    for (raw, why) in [
        ("a=\"unterminated", "no closing quote"),
        ("a=1", "does not start with a quote"),
        ("1a=\"x\"", "not a label name"),
        ("a=\"x\" b=\"y\"", "expected ','"),
        ("novalue", "has no '='"),
    ] {
        let err = parse_labels(raw).unwrap_err();
        assert!(err.contains(why), "{raw}: {err}");
    }
    assert_eq!(parse_labels("").unwrap(), Labels::default());
    assert_eq!(parse_labels("a=\"1\",").unwrap().0.len(), 1);
}

#[test]
fn each_bad_field_is_reported_with_its_line_and_reason() {
    let good = ROW;
    let bad_value = ROW.replace(r#""100""#, r#""abc""#);
    let bad_uuid = ROW.replace("GPU-5fd4f087-86f3-7a43-b711-4771313afc50\"", "not-a-uuid\"");
    let bad_ts = ROW.replace("2025-07-18T20:42:34Z", "yesterday");
    let bad_index = ROW.replace(r#","0","nvidia0""#, r#","-1","nvidia0""#);
    let short = r#""2025-07-18T20:42:34Z","M","0""#;
    let text =
        format!("{HEADER}\n{good}\n{bad_value}\n{bad_uuid}\n{bad_ts}\n{bad_index}\n{short}\n");
    let all = map_file(text.as_bytes());
    assert!(all[0].is_ok());
    let errors: Vec<(u64, String)> = all.into_iter().filter_map(|r| r.err()).collect();
    let expect = [
        (3, "value \"abc\" is not a finite number"),
        (4, "is not a GPU UUID"),
        (5, "timestamp \"yesterday\""),
        (6, "gpu_id \"-1\""),
        (7, "missing field"),
    ];
    assert_eq!(errors.len(), expect.len(), "{errors:?}");
    for ((line, reason), (want_line, want)) in errors.iter().zip(expect) {
        assert_eq!(*line, want_line);
        assert!(reason.contains(want), "line {line}: {reason}");
    }
}

#[test]
fn a_multi_line_quoted_field_reports_the_line_it_starts_on() {
    let bad = ROW.replace(r#""100""#, "\"1\n2\"");
    let text = format!("{HEADER}\n{bad}\n{ROW}\n");
    let all = map_file(text.as_bytes());
    assert_eq!(all[0].as_ref().unwrap_err().0, 2);
    assert!(all[1].is_ok());
}

#[test]
fn invalid_utf8_is_a_bad_row_not_a_crash() {
    let mut text = format!("{HEADER}\n").into_bytes();
    text.extend_from_slice(&ROW.as_bytes()[..ROW.len() - 2]);
    text.extend_from_slice(b"\xff\xfe\"\n");
    let all = map_file(&text);
    let (line, reason) = all[0].clone().unwrap_err();
    assert_eq!(line, 2);
    assert!(reason.contains("labels_raw is not valid UTF-8"), "{reason}");
}

#[test]
fn non_finite_values_are_refused_because_json_cannot_carry_them() {
    for v in ["NaN", "inf", "-inf"] {
        assert!(parse_value(v).is_err(), "{v}");
    }
    assert_eq!(parse_value(" 2.5e3 ").unwrap(), 2500.0);
}

#[test]
fn a_point_round_trips_through_its_json_and_borrows_plain_strings() {
    let p = one_point(&format!("{HEADER}\n{ROW}\n"));
    let text = serde_json::to_string(&p).unwrap();
    let back: Point<'_> = serde_json::from_str(&text).unwrap();
    assert_eq!(back.ts, now());
    assert!(matches!(back.gpu_uuid, Cow::Borrowed(_)));
    assert!(matches!(back.labels.0[0].1, Cow::Borrowed(_)));
    assert_eq!(serde_json::to_value(&back).unwrap(), p);
}

#[test]
fn zone_less_source_timestamps_are_taken_as_utc() {
    let t = parse_source_ts("2025-07-18 20:42:34.5").unwrap();
    assert_eq!(format_ts(&t), "2025-07-18T20:42:34.500000Z");
}

#[test]
fn timestamps_format_with_six_digits_and_parse_back_fast_or_slow() {
    for text in [
        "2026-01-02T03:04:05.123456Z",
        "0001-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
    ] {
        let t = parse_ts(text).unwrap();
        assert_eq!(format_ts(&t), text);
        assert_eq!(
            t,
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        );
    }
    // Other RFC 3339 spellings go through chrono.
    let t = parse_ts("2026-01-02T04:04:05.5+01:00").unwrap();
    assert_eq!(format_ts(&t), "2026-01-02T03:04:05.500000Z");
    for bad in [
        "2026-13-02T03:04:05.123456Z",
        "2026-01-02T03:04:05.12345xZ",
        "x",
    ] {
        assert!(parse_ts(bad).is_none(), "{bad}");
    }
}
