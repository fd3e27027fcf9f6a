//! The operator's queries on known points: step aggregation (bucket edges, every `agg`,
//! several metrics, the cap), cursor paging, hosts, GPU filters, latest values, exports that
//! parse back to the same points, gzip, and the time forms.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// `GET` with extra request headers; the raw body bytes.
fn get_with(
    f: &Fixture,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>, Vec<u8>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let mut req = agent.get(&format!("{}{path}", f.base));
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let response = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = response.status();
    let content_type = response.header("content-type").unwrap_or("").to_string();
    let encoding = response.header("content-encoding").map(str::to_string);
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).expect("body");
    (status, content_type, encoding, body)
}

fn telemetry(query: &str) -> String {
    format!("/api/v1/gpus/{GPU_A}/telemetry?{query}")
}

/// `(ts, value)` of one metric's buckets in a step answer.
fn buckets(answer: &Value, metric: &str) -> Vec<(String, f64)> {
    let series = answer["series"].as_array().expect("series");
    let one = series
        .iter()
        .find(|s| s["metric"] == metric)
        .unwrap_or_else(|| panic!("no series {metric} in {answer}"));
    one["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| {
            (
                p["ts"].as_str().unwrap().to_string(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The window of GPU A's 50 seconds: T0 (13:42:00) to T0 + 49 s.
fn whole() -> String {
    format!("start_time={}&end_time={}", iso(at(0)), iso(at(49)))
}

#[test]
fn step_buckets_have_aligned_edges_and_every_aggregation() {
    let f = Fixture::start();
    // UTIL is i at second i (0..49), and a second point, 10.5, at second 10 that arrived later.
    let q = |agg: &str| telemetry(&format!("{}&metric={UTIL}&step=15s&agg={agg}", whole()));
    let edges: Vec<String> = [0, 15, 30, 45].iter().map(|s| iso(at(*s))).collect();
    let expect = |agg: &str, values: [f64; 4]| {
        let answer = f.get(&q(agg)).json();
        assert_eq!(answer["agg"], agg);
        assert_eq!(
            (answer["step"].as_str(), answer["step_seconds"].as_i64()),
            (Some("15s"), Some(15))
        );
        let got = buckets(&answer, UTIL);
        let times: Vec<String> = got.iter().map(|b| b.0.clone()).collect();
        assert_eq!(
            times, edges,
            "{agg}: buckets start at multiples of the step"
        );
        let values_got: Vec<f64> = got.iter().map(|b| b.1).collect();
        assert_eq!(values_got, values, "{agg}");
    };
    // [0,15): 0..=14 and 10.5 (16 points, sum 115.5); [15,30): 15..=29; [30,45); [45,50)
    expect("count", [16.0, 15.0, 15.0, 5.0]);
    expect("sum", [115.5, 330.0, 555.0, 235.0]);
    expect("avg", [115.5 / 16.0, 22.0, 37.0, 47.0]);
    expect("min", [0.0, 15.0, 30.0, 45.0]);
    expect("max", [14.0, 29.0, 44.0, 49.0]);
    expect("first", [0.0, 15.0, 30.0, 45.0]);
    expect("last", [14.0, 29.0, 44.0, 49.0]);

    // Two points at second 10: first is the earlier arrival, last the later one.
    let tie = |agg: &str| {
        let q = format!(
            "start_time={}&end_time={}&metric={UTIL}&step=1s&agg={agg}",
            iso(at(10)),
            iso(at(10))
        );
        buckets(&f.get(&telemetry(&q)).json(), UTIL)
    };
    assert_eq!(tie("first"), vec![(iso(at(10)), 10.0)]);
    assert_eq!(tie("last"), vec![(iso(at(10)), 10.5)]);

    // The window is widened to whole buckets: a start inside a bucket still gets all of it.
    let inner = format!(
        "start_time={}&end_time={}&metric={UTIL}&step=15s&agg=count",
        iso(at(20)),
        iso(at(20))
    );
    let answer = f.get(&telemetry(&inner)).json();
    assert_eq!(buckets(&answer, UTIL), vec![(iso(at(15)), 15.0)]);
    assert_eq!(
        (answer["start_time"].as_str(), answer["end_time"].as_str()),
        (Some(iso(at(15)).as_str()), Some(iso(at(30)).as_str()))
    );

    // Steps in whole minutes and hours read the rollups and agree with the points.
    for (step, bucket_start) in [("1m", at(0)), ("1h", at(-42 * 60))] {
        let q = format!("{}&metric={UTIL}&step={step}&agg=", whole());
        let mut got = Vec::new();
        for agg in ["count", "sum", "min", "max", "first", "last"] {
            got.push(buckets(
                &f.get(&telemetry(&format!("{q}{agg}"))).json(),
                UTIL,
            ));
        }
        let expected: Vec<Vec<(String, f64)>> = [51.0, 1235.5, 0.0, 49.0, 0.0, 49.0]
            .iter()
            .map(|v| vec![(iso(bucket_start), *v)])
            .collect();
        assert_eq!(got, expected, "step {step}");
    }
    f.api.scan_for_panics();
}

#[test]
fn several_metrics_come_as_one_series_each_and_unknown_ones_are_empty() {
    let f = Fixture::start();
    let q = format!(
        "{}&metric={TEMP}&metric={UTIL}&metric=DCGM_FI_NOPE&step=1m&agg=max",
        whole()
    );
    let answer = f.get(&telemetry(&q)).json();
    let names: Vec<&str> = answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [TEMP, UTIL, "DCGM_FI_NOPE"],
        "one series per metric asked for, by name"
    );
    assert_eq!(buckets(&answer, TEMP), vec![(iso(at(0)), 1049.0)]);
    assert_eq!(buckets(&answer, UTIL), vec![(iso(at(0)), 49.0)]);
    assert!(buckets(&answer, "DCGM_FI_NOPE").is_empty());

    // Without a metric: every metric that has points.
    let all = f.get(&telemetry(&format!("{}&step=1m", whole()))).json();
    let names: Vec<&str> = all["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"].as_str().unwrap())
        .collect();
    assert_eq!(names, [TEMP, UTIL]);

    // Pages filter by several metrics too; an unknown metric is an empty page, not an error.
    let page = f
        .get(&telemetry(&format!(
            "metric={TEMP}&metric={UTIL}&limit=1000"
        )))
        .json();
    assert_eq!(page["points"].as_array().unwrap().len(), GPU_A_POINTS);
    let none = f.get(&telemetry("metric=DCGM_FI_NOPE"));
    assert_eq!(none.status, 200);
    assert_eq!(none.json()["points"].as_array().unwrap().len(), 0);
    // ... while an unknown GPU is still 404, with a step too.
    assert_eq!(f.get("/api/v1/gpus/GPU-nope/telemetry?step=1m").status, 404);
}

#[test]
fn the_bucket_cap_is_a_400_that_says_which_step_would_do() {
    let f = Fixture::start();
    let q = format!(
        "start_time={}&end_time={}&step=1s",
        iso(at(0)),
        iso(at(0) + chrono::Duration::days(1))
    );
    let detail = f.get(&telemetry(&q)).problem_detail(400);
    assert!(detail.starts_with("step: 1s over this window makes 86401 buckets per metric, more than the 11000 allowed: raise step to at least 8s"), "{detail}");
    let ok = format!(
        "start_time={}&end_time={}&step=8s",
        iso(at(0)),
        iso(at(0) + chrono::Duration::days(1))
    );
    assert_eq!(f.get(&telemetry(&ok)).status, 200);
}

#[test]
fn cursor_paging_walks_the_same_points_as_offset_paging() {
    let f = Fixture::start();
    let mut by_cursor: Vec<Value> = Vec::new();
    let mut next = Some(telemetry("limit=7"));
    let mut pages = 0;
    while let Some(path) = next {
        let page = f.get(&path).json();
        assert!(
            path.contains("cursor=") || pages == 0,
            "next carries a cursor: {path}"
        );
        assert_eq!(page["paging"]["offset"], 0);
        by_cursor.extend(page["points"].as_array().unwrap().iter().cloned());
        let cursor = page["paging"]["cursor"].as_str().map(str::to_string);
        next = page["paging"]["next"].as_str().map(str::to_string);
        assert_eq!(cursor.is_some(), next.is_some());
        pages += 1;
        assert!(pages <= 20, "paging does not end");
    }
    let mut by_offset: Vec<Value> = Vec::new();
    for page in 0.. {
        let body = f
            .get(&telemetry(&format!("limit=7&offset={}", page * 7)))
            .json();
        let points = body["points"].as_array().unwrap().clone();
        if points.is_empty() {
            break;
        }
        by_offset.extend(points);
    }
    assert_eq!(by_cursor.len(), GPU_A_POINTS);
    assert_eq!(by_cursor, by_offset, "the same points in the same order");
    // A cursor passed by hand works as the link does, and the tie at second 10 is kept apart.
    let first = f
        .get(&telemetry(&format!("start_time={}&limit=2", iso(at(10)))))
        .json();
    let cursor = first["paging"]["cursor"].as_str().unwrap();
    let second = f
        .get(&telemetry(&format!(
            "start_time={}&limit=2&cursor={cursor}",
            iso(at(10))
        )))
        .json();
    let values: Vec<f64> = first["points"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["points"].as_array().unwrap())
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [10.0, 1010.0, 10.5, 11.0]);
}

#[test]
fn hosts_gpu_filters_and_latest_values_come_from_the_small_tables() {
    let f = Fixture::start();
    let hosts = f.get("/api/v1/hosts").json();
    assert_eq!(hosts["count"], 2);
    assert_eq!(hosts["hosts"][0]["hostname"], "host-a");
    assert_eq!(hosts["hosts"][0]["gpus"], 2);
    assert_eq!(hosts["hosts"][1]["hostname"], "host-b");
    assert_eq!(hosts["hosts"][1]["gpus"], 1);

    let uuids = |path: &str| -> Vec<String> {
        f.get(path).json()["gpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["uuid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(uuids("/api/v1/hosts/host-a/gpus"), [GPU_A, GPU_B]);
    assert_eq!(uuids("/api/v1/hosts/host-b/gpus"), [GPU_C]);
    assert_eq!(uuids("/api/v1/gpus?hostname=host-a"), [GPU_A, GPU_B]);
    assert_eq!(uuids("/api/v1/gpus?pod=trainer-0"), [GPU_B]);
    assert_eq!(
        uuids("/api/v1/gpus?namespace=trainer-0&hostname=host-a"),
        [GPU_B]
    );
    assert_eq!(
        uuids("/api/v1/gpus?model=NVIDIA%20H100%2080GB%20HBM3"),
        [GPU_A, GPU_B, GPU_C]
    );
    assert!(uuids("/api/v1/gpus?model=nope").is_empty());
    assert!(
        uuids("/api/v1/hosts/host-a/gpus?pod=nope").is_empty(),
        "a known host filtered to nothing"
    );

    let latest = f.get(&format!("/api/v1/latest?metric={UTIL}")).json();
    let rows: Vec<(String, String, f64)> = latest["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["gpu_uuid"].as_str().unwrap().to_string(),
                p["ts"].as_str().unwrap().to_string(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (GPU_A.to_string(), iso(at(49)), 49.0),
            (GPU_B.to_string(), iso(at(240)), 54.0)
        ]
    );
    let both = f
        .get(&format!(
            "/api/v1/latest?metric={UTIL}&metric={TEMP}&hostname=host-a"
        ))
        .json();
    assert_eq!(both["count"], 3);
    assert_eq!(both["points"][0]["metric"], TEMP);
    assert_eq!(both["points"][0]["value"], 1049.0);
    assert_eq!(f.get("/api/v1/latest?hostname=host-b").json()["count"], 0);
    assert_eq!(f.get("/api/v1/latest").json()["count"], 3);
}

#[test]
fn a_late_point_does_not_move_latest_back_in_time() {
    let f = Fixture::start();
    let mut client = f.pg.connect();
    let writer = store::write::Writer::new(store::write::Window::default());
    let late = late_point(GPU_A, at(5), UTIL, -1.0, 9_000);
    let (written, _) = writer.write_batch(&mut client, &[&late]).expect("write");
    assert_eq!(written, 1);
    let latest = f
        .get(&format!("/api/v1/latest?metric={UTIL}&hostname=host-a"))
        .json();
    assert_eq!(latest["points"][0]["value"], 49.0);
}

#[test]
fn exports_stream_the_whole_window_and_parse_back_to_the_same_points() {
    let f = Fixture::start();
    let all = f.get(&telemetry("limit=1000")).json()["points"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), GPU_A_POINTS);

    let (status, content_type, _, body) = get_with(&f, &telemetry(""), &[("Accept", "text/csv")]);
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8")
    );
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header,
        [
            "ts",
            "metric",
            "value",
            "source_ts",
            "hostname",
            "container",
            "pod",
            "namespace",
            "labels"
        ]
    );
    let parsed: Vec<Value> = reader
        .records()
        .map(|r| {
            let r = r.expect("a CSV record");
            let opt = |s: &str| {
                if s.is_empty() {
                    Value::Null
                } else {
                    Value::String(s.to_string())
                }
            };
            serde_json::json!({
                "ts": &r[0], "metric": &r[1], "value": r[2].parse::<f64>().unwrap(),
                "source_ts": opt(&r[3]), "hostname": &r[4], "container": opt(&r[5]),
                "pod": opt(&r[6]), "namespace": opt(&r[7]),
                "labels": serde_json::from_str::<Value>(&r[8]).unwrap(),
            })
        })
        .collect();
    assert_eq!(
        parsed, all,
        "the CSV holds every point of the window, no page limit"
    );

    let (status, content_type, _, body) =
        get_with(&f, &telemetry(""), &[("Accept", "application/x-ndjson")]);
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-ndjson")
    );
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all);

    // Buckets export as CSV too.
    let (_, _, _, body) = get_with(
        &f,
        &telemetry(&format!("{}&metric={UTIL}&step=1m&agg=max", whole())),
        &[("Accept", "text/csv")],
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("ts,metric,value\n{},{UTIL},49\n", iso(at(0)))
    );
    // An unknown GPU is a 404 before anything is streamed.
    let (status, content_type, _, _) = get_with(
        &f,
        "/api/v1/gpus/GPU-nope/telemetry",
        &[("Accept", "text/csv")],
    );
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json")
    );
}

#[test]
fn a_large_export_is_streamed_in_chunks_with_every_point() {
    let f = Fixture::start();
    let mut client = f.pg.connect();
    let writer = store::write::Writer::new(store::write::Window::default());
    // 25,000 points of a fresh GPU: more than two export pages.
    let records: Vec<store::write::Record> = (0..25_000)
        .map(|i| {
            late_point(
                "GPU-eeeeeeee-0000-0000-0000-000000000005",
                at(i),
                UTIL,
                i as f64,
                100_000 + i,
            )
        })
        .collect();
    for batch in records.chunks(5_000) {
        let refs: Vec<&store::write::Record> = batch.iter().collect();
        writer.write_batch(&mut client, &refs).expect("write");
    }
    let (status, _, _, body) = get_with(
        &f,
        "/api/v1/gpus/GPU-eeeeeeee-0000-0000-0000-000000000005/telemetry",
        &[("Accept", "application/x-ndjson")],
    );
    assert_eq!(status, 200);
    let values: Vec<f64> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["value"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(values.len(), 25_000);
    assert!(
        values.windows(2).all(|w| w[1] == w[0] + 1.0),
        "every point once, in order"
    );
}

#[test]
fn json_answers_are_gzipd_when_asked_and_times_take_every_form() {
    let f = Fixture::start();
    let (status, content_type, encoding, body) =
        get_with(&f, &telemetry("limit=1000"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        (status, content_type.as_str(), encoding.as_deref()),
        (200, "application/json", Some("gzip"))
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_string(&mut text)
        .expect("gzip");
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["points"].as_array().unwrap().len(), GPU_A_POINTS);
    assert!(
        body.len() * 4 < text.len(),
        "compressed: {} of {}",
        body.len(),
        text.len()
    );
    let (_, _, encoding, _) = get_with(&f, "/api/v1/stats", &[]);
    assert_eq!(encoding, None, "not without Accept-Encoding");
    let (status, _, encoding, _) = get_with(
        &f,
        "/api/v1/gpus/nope/telemetry",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(
        (status, encoding.as_deref()),
        (404, Some("gzip")),
        "problems too"
    );

    // The same window in RFC 3339, Unix seconds, Unix milliseconds.
    let count = |query: &str| {
        f.get(&telemetry(&format!("{query}&limit=1000"))).json()["points"]
            .as_array()
            .unwrap()
            .len()
    };
    let (start, end) = (at(10), at(19));
    let expected = count(&format!("start_time={}&end_time={}", iso(start), iso(end)));
    assert_eq!(expected, 21, "10..=19 of two metrics and the tie");
    assert_eq!(
        count(&format!(
            "start_time={}&end_time={}",
            start.timestamp(),
            end.timestamp()
        )),
        expected
    );
    assert_eq!(
        count(&format!(
            "start_time={}&end_time={}",
            start.timestamp_millis(),
            end.timestamp_millis()
        )),
        expected
    );
    assert_eq!(
        count(&format!(
            "start_time={}.0&end_time={}.5",
            start.timestamp(),
            end.timestamp()
        )),
        expected
    );
    // Relative times: the seeded points are long past, so the last hour holds none of them
    // and "since 100 weeks ago" holds all.
    assert_eq!(count("start_time=-1h&end_time=now"), 0);
    assert_eq!(count("start_time=now-5200w"), GPU_A_POINTS);
}

/// A point of `gpu` (host-a) that the seed does not have.
fn late_point(
    gpu: &str,
    ts: chrono::DateTime<chrono::Utc>,
    metric: &str,
    value: f64,
    offset: i64,
) -> store::write::Record {
    use std::borrow::Cow;
    store::write::Record {
        partition: 0,
        offset,
        point: store::Point {
            ts,
            source_ts: None,
            metric: Cow::Owned(metric.to_string()),
            gpu_uuid: Cow::Owned(gpu.to_string()),
            gpu_index: 0,
            device: Cow::Borrowed("nvidia0"),
            model: Cow::Borrowed("NVIDIA H100 80GB HBM3"),
            hostname: Cow::Borrowed("host-a"),
            container: None,
            pod: None,
            namespace: None,
            value,
            labels: store::Labels::default(),
        },
    }
}

#[test]
fn the_pipeline_page_shows_progress_dead_letters_and_lag_from_the_real_broker() {
    let f = Fixture::start();
    let mut client = f.pg.connect();
    client
        .batch_execute(
            "INSERT INTO consumer_offsets (group_name, topic, partition, next_offset)
                 VALUES ('collectors', 'telemetry', 0, 2), ('collectors', 'telemetry', 1, 0);
             INSERT INTO dead_letters (topic, partition, \"offset\", payload, reason)
                 VALUES ('telemetry', 0, 7, 'x', 'not JSON')",
        )
        .expect("seed progress");

    // Without a broker: progress and dead letters, the lag unknown.
    let page = f.get("/api/v1/pipeline").json();
    assert_eq!(page["broker"], "not configured");
    assert_eq!(page["points_total"], TOTAL_POINTS);
    assert_eq!(page["latest_ts"], iso(at(240)));
    assert_eq!(page["dead_letters"], 1);
    assert!(page["last_dead_letter_at"].is_string());
    assert_eq!(page["consumers"][0]["next_offset"], 2);
    assert_eq!(page["consumers"][0]["lag"], Value::Null);

    // With the real broker: partition 0 holds 5 messages, partition 1 none.
    let data = tempfile::tempdir().expect("tempdir");
    let port = testkit::free_port();
    let broker_url = format!("http://127.0.0.1:{port}");
    let mut command = std::process::Command::new(testkit::bin_path("broker"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.path());
    let broker = testkit::Child::spawn("broker", command);
    testkit::wait_until(Duration::from_secs(30), "the broker to answer", || {
        testkit::http_get(&format!("{broker_url}/readyz")).is_some_and(|(s, _)| s == 200)
    });
    let agent = ureq::agent();
    agent
        .put(&format!("{broker_url}/v1/topics/telemetry"))
        .send_string(r#"{"partitions":2}"#)
        .expect("create the topic");
    let lines: String = (0..5)
        .map(|i| format!("{{\"partition\":0,\"value\":{i}}}\n"))
        .collect();
    agent
        .post(&format!("{broker_url}/v1/topics/telemetry/messages"))
        .set("Content-Type", "application/x-ndjson")
        .send_string(&lines)
        .expect("produce");
    let (api, base) = start_api_with(&f.pg, &[("BROKER_URL", &broker_url)]);
    let page: Value =
        serde_json::from_str(&request("GET", &format!("{base}/api/v1/pipeline")).body).unwrap();
    assert_eq!(page["broker"], "reachable");
    let lag: Vec<(i64, i64)> = page["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["end_offset"].as_i64().unwrap(),
                c["lag"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lag, [(5, 3), (0, 0)]);
    drop(broker);
    let page: Value =
        serde_json::from_str(&request("GET", &format!("{base}/api/v1/pipeline")).body).unwrap();
    assert_eq!(
        page["broker"], "unreachable",
        "a broker that is gone does not fail the page"
    );
    api.scan_for_panics();
}
