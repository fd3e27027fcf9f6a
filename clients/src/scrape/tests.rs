use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

const FIXTURE: &str = include_str!("../../tests/fixtures/dcgm-exporter.prom");
const GPU0: &str = "GPU-5fd4e3b1-7c2a-4e9b-9f51-0a1b2c3d4e5f";
const GPU1: &str = "GPU-8a3c9d2e-1b4f-4a6c-8d7e-6f5a4b3c2d1e";

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
}

fn label<'p>(point: &'p Point<'_>, name: &str) -> Option<&'p str> {
    point
        .labels
        .0
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_ref())
}

fn find<'p>(mapped: &'p Mapped, metric: &str, uuid: &str) -> Vec<&'p Point<'static>> {
    mapped
        .points
        .iter()
        .filter(|p| p.metric == metric && p.gpu_uuid == uuid)
        .collect()
}

#[test]
fn the_fixture_maps_every_good_sample_and_counts_the_rest() {
    assert!(
        parse(FIXTURE).is_some(),
        "the parser reads the fixture as a whole"
    );
    let mapped = map_exposition(FIXTURE, at(), "10.0.0.7");
    assert_eq!(mapped.points.len(), 11, "{:#?}", mapped.points);
    assert_eq!(
        mapped.skipped,
        Skipped {
            no_uuid: 1,
            not_finite: 1,
            ..Skipped::default()
        }
    );
    assert!(mapped.points.iter().all(|p| p.check().is_ok()));
}

#[test]
fn a_gauge_keeps_its_fields_labels_and_type() {
    let mapped = map_exposition(FIXTURE, at(), "10.0.0.7");
    let temp = find(&mapped, "DCGM_FI_DEV_GPU_TEMP", GPU0);
    assert_eq!(temp.len(), 1);
    let p = temp[0];
    assert_eq!(p.ts, at());
    assert_eq!(p.source_ts, None, "the line has no timestamp");
    assert_eq!(p.gpu_index, 0);
    assert_eq!(p.device, "nvidia0");
    assert_eq!(p.model, "NVIDIA A100-SXM4-80GB");
    assert_eq!(p.hostname, "dgx-a100-01");
    assert_eq!(p.value, 41.0);
    assert_eq!((&p.container, &p.pod, &p.namespace), (&None, &None, &None));
    assert_eq!(label(p, "pci_bus_id"), Some("00000000:07:00.0"));
    assert_eq!(label(p, "DCGM_FI_DRIVER_VERSION"), Some("535.129.03"));
    assert_eq!(label(p, TYPE_LABEL), Some("gauge"));
    for mapped_away in [
        "UUID",
        "gpu",
        "device",
        "modelName",
        "Hostname",
        "container",
        "pod",
        "namespace",
    ] {
        assert_eq!(label(p, mapped_away), None, "{mapped_away} is a field");
    }
}

#[test]
fn pod_labels_escaped_values_and_counters() {
    let mapped = map_exposition(FIXTURE, at(), "10.0.0.7");
    let xid = find(&mapped, "DCGM_FI_DEV_XID_ERRORS", GPU1);
    let p = xid[0];
    assert_eq!(p.value, 79.0);
    assert_eq!(p.container.as_deref(), Some("trainer"));
    assert_eq!(p.pod.as_deref(), Some("llm-train-7d9f-0"));
    assert_eq!(p.namespace.as_deref(), Some("ml-team"));
    assert_eq!(label(p, "err_code"), Some("79"));
    assert_eq!(
        label(p, "err_msg"),
        Some(r#"GPU has fallen off the bus, "reset required""#),
        "an escaped quote and a comma inside a value survive"
    );
    let energy = find(&mapped, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", GPU1);
    assert_eq!(label(energy[0], TYPE_LABEL), Some("counter"));
    assert_eq!(energy[0].value, 2208347121.0);
    assert!(
        find(&mapped, "DCGM_FI_DEV_POWER_USAGE", GPU1).is_empty(),
        "NaN skipped"
    );
}

#[test]
fn mig_instances_are_separate_points() {
    let mapped = map_exposition(FIXTURE, at(), "10.0.0.7");
    let gr = find(&mapped, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", GPU0);
    let ids: Vec<_> = gr.iter().map(|p| label(p, "GPU_I_ID")).collect();
    assert_eq!(ids, [Some("1"), Some("2")]);
    assert!(gr
        .iter()
        .all(|p| label(p, "GPU_I_PROFILE") == Some("3g.40gb")));
    assert_eq!(gr[0].value, 0.512345);
}

#[test]
fn the_wire_form_is_a_store_point() {
    let mapped = map_exposition(FIXTURE, at(), "h");
    for p in &mapped.points {
        let json = serde_json::to_string(p).unwrap();
        let back: Point<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, p);
    }
}

#[test]
fn a_timestamp_goes_to_source_ts_and_a_missing_hostname_is_the_targets() {
    let text = "# TYPE DCGM_FI_DEV_SM_CLOCK gauge\n\
        DCGM_FI_DEV_SM_CLOCK{gpu=\"3\",UUID=\"GPU-1\",device=\"nvidia3\"} 1410 1700000000123\n";
    let mapped = map_exposition(text, at(), "node-7");
    let p = &mapped.points[0];
    assert_eq!(p.ts, at());
    assert_eq!(
        p.source_ts,
        Some(Utc.timestamp_millis_opt(1_700_000_000_123).unwrap())
    );
    assert_eq!(p.hostname, "node-7");
    assert_eq!(p.model, "");
    assert_eq!(p.gpu_index, 3);
}

#[test]
fn one_bad_line_costs_that_line_only() {
    // Also a family with different label sets (pod labels on one GPU only), which the
    // grammar refuses as a whole, a histogram, a sample without `gpu`, and no `# TYPE`.
    let text = "# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).\n\
        # TYPE DCGM_FI_DEV_GPU_TEMP gauge\n\
        DCGM_FI_DEV_GPU_TEMP{gpu=\"0\",UUID=\"GPU-a\"} 40\n\
        DCGM_FI_DEV_GPU_TEMP{gpu=\"1\",UUID=\"GPU-b\",pod=\"p\"} 41\n\
        this is not a metric line at all\n\
        DCGM_FI_DEV_GPU_TEMP{gpu=\"2\",UUID=\"GPU-c\" 42\n\
        # TYPE DCGM_FI_DEV_FB_USED counter\n\
        DCGM_FI_DEV_FB_USED{gpu=\"0\",UUID=\"GPU-a\"} +Inf\n\
        DCGM_FI_DEV_FB_USED{UUID=\"GPU-b\"} 7\n\
        # TYPE latency histogram\n\
        latency_bucket{le=\"1\"} 3\n\
        latency_bucket{le=\"+Inf\"} 4\n\
        latency_sum 2\n\
        latency_count 4\n\
        untyped_one{gpu=\"0\",UUID=\"GPU-a\"} 5\n";
    let mapped = map_exposition(text, at(), "h");
    let names: Vec<_> = mapped
        .points
        .iter()
        .map(|p| (p.metric.as_ref(), p.gpu_uuid.as_ref(), label(p, TYPE_LABEL)))
        .collect();
    assert_eq!(
        names,
        [
            ("DCGM_FI_DEV_GPU_TEMP", "GPU-a", Some("gauge")),
            ("DCGM_FI_DEV_GPU_TEMP", "GPU-b", Some("gauge")),
            ("untyped_one", "GPU-a", Some("untyped")),
        ]
    );
    assert_eq!(mapped.points[1].pod.as_deref(), Some("p"));
    assert_eq!(mapped.skipped.unparseable, 2, "{:?}", mapped.skipped);
    assert_eq!(mapped.skipped.not_finite, 1);
    assert_eq!(mapped.skipped.no_gpu, 1);
    assert!(mapped.skipped.unsupported_type >= 1, "{:?}", mapped.skipped);
}

#[test]
fn empty_and_comment_only_texts_map_to_nothing() {
    for text in ["", "\n\n", "# HELP x y\n# TYPE x gauge\n", "\u{feff}"] {
        let mapped = map_exposition(text, at(), "h");
        assert!(mapped.points.is_empty(), "{text:?}");
    }
}

#[test]
fn target_hosts_and_producer_ids() {
    assert_eq!(
        target_host("http://10.1.2.3:9400/metrics").as_deref(),
        Some("10.1.2.3")
    );
    assert_eq!(
        target_host("https://[fd00::1]:9400/metrics").as_deref(),
        Some("fd00::1")
    );
    assert_eq!(target_host("gpu-node-1").as_deref(), Some("gpu-node-1"));
    assert_eq!(target_host("http:///metrics"), None);
    assert_eq!(
        producer_id("http://10.1.2.3:9400/metrics"),
        "scrape-http:--10.1.2.3:9400-metrics"
    );
    let long_a = format!("http://h/{}a", "x".repeat(200));
    let long_b = format!("http://h/{}b", "x".repeat(200));
    let (a, b) = (producer_id(&long_a), producer_id(&long_b));
    assert_eq!(a.len(), 128);
    assert_ne!(a, b);
    for id in [a, b, producer_id("http://ü/?q=1&r=\"")] {
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the text, mapping returns (no panic) and every point is storable.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let mapped = map_exposition(&text, at(), "h");
        prop_assert!(mapped.points.iter().all(|p| p.check().is_ok()));
    }

    /// The fixture cut anywhere and with bytes spliced in still maps without a panic.
    #[test]
    fn a_mangled_fixture_never_panics(cut in 0usize..4000, junk in "[{}\",=#\\\\ a-zA-Z0-9\n]{0,30}") {
        let mut cut = cut.min(FIXTURE.len());
        while !FIXTURE.is_char_boundary(cut) {
            cut -= 1;
        }
        let text = format!("{}{}{}", &FIXTURE[..cut], junk, &FIXTURE[cut..]);
        let mapped = map_exposition(&text, at(), "h");
        prop_assert!(mapped.points.iter().all(|p| p.check().is_ok()));
    }
}
