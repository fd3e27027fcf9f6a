//! Every response checked against the generated spec: the committed `api/openapi.json` is what
//! the code generates, every answer the API gives here (successes and problems alike) is
//! documented for its path, status and media type, and its body validates against the schema
//! the spec gives for it — as do the spec's own examples.
//!
//! Validation is by the `jsonschema` crate: OpenAPI 3.1 schemas are JSON Schema 2020-12, which
//! it implements, and it resolves the `$ref`s to `#/components/schemas/...` within a document
//! that carries the spec's `components`. Formats (`date-time`) are checked too.

use serde_json::{json, Value};

use crate::harness::*;

/// The committed spec, after checking it is exactly what the code generates.
fn committed_spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let committed = std::fs::read_to_string(path).expect("api/openapi.json is committed");
    assert!(
        committed == api::openapi::spec_json(),
        "api/openapi.json is stale: run `make openapi` and commit it"
    );
    serde_json::from_str(&committed).expect("the spec is JSON")
}

struct Checker {
    spec: Value,
    checked: usize,
}

impl Checker {
    /// Validates `instance` against `schema` (which may `$ref` the spec's components).
    fn validate(&self, schema: &Value, instance: &Value, what: &str) {
        let root = json!({"allOf": [schema], "components": self.spec["components"]});
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: the spec's schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{what}: {errors:?}\n{instance:#}");
    }

    /// Checks one answer to `GET template` against the spec.
    fn check(&mut self, template: &str, reply: &Reply) {
        let operation = &self.spec["paths"][template]["get"];
        assert!(operation.is_object(), "{template} is not in the spec");
        let documented = &operation["responses"][reply.status.to_string()];
        assert!(
            documented.is_object(),
            "GET {template} answered {}, undocumented",
            reply.status
        );
        let essence = |t: &str| t.split(';').next().unwrap_or("").trim().to_string();
        let content = documented["content"].as_object().expect("content");
        let (media, body) = content
            .iter()
            .find(|(m, _)| essence(m) == essence(&reply.content_type))
            .unwrap_or_else(|| {
                panic!(
                    "GET {template} {}: media type {} undocumented",
                    reply.status, reply.content_type
                )
            });
        let what = format!("GET {template} {} {media}", reply.status);
        let instance = if essence(media).ends_with("json") {
            reply.json()
        } else {
            Value::String(reply.body.clone())
        };
        self.validate(&body["schema"], &instance, &what);
        self.checked += 1;
    }

    /// Every example the spec gives validates against the schema it illustrates.
    fn check_examples(&mut self) {
        let schemas = self.spec["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .clone();
        for (name, schema) in &schemas {
            let example = schema
                .get("example")
                .unwrap_or_else(|| panic!("schema {name} has no example"));
            self.validate(
                &json!({"$ref": format!("#/components/schemas/{name}")}),
                example,
                &format!("example of {name}"),
            );
        }
        let paths = self.spec["paths"].as_object().expect("paths").clone();
        for (path, item) in &paths {
            for (status, response) in item["get"]["responses"].as_object().expect("responses") {
                for (media, content) in response["content"].as_object().expect("content") {
                    let what = format!("example of GET {path} {status} {media}");
                    let mut examples: Vec<Value> =
                        content.get("example").into_iter().cloned().collect();
                    if let Some(named) = content.get("examples").and_then(Value::as_object) {
                        examples.extend(named.values().map(|e| e["value"].clone()));
                    }
                    if examples.is_empty() {
                        // The schema's own example (checked above) illustrates it.
                        assert!(content["schema"].get("$ref").is_some(), "{what}: none");
                    }
                    for example in examples {
                        self.validate(&content["schema"], &example, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn the_committed_spec_is_what_the_code_generates() {
    let spec = committed_spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths: Vec<&String> = spec["paths"].as_object().expect("paths").keys().collect();
    for route in [
        "/health",
        "/api/v1/gpus",
        "/api/v1/gpus/{id}/telemetry",
        "/api/v1/stats",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(
            paths.iter().any(|p| *p == route),
            "{route} is missing from the spec"
        );
    }
}

#[test]
fn every_response_matches_the_generated_spec() {
    let mut checker = Checker {
        spec: committed_spec(),
        checked: 0,
    };
    checker.check_examples();

    let f = Fixture::start();
    let telemetry = "/api/v1/gpus/{id}/telemetry";
    let window = |gpu: &str, q: &str| format!("/api/v1/gpus/{gpu}/telemetry?{q}");
    let requests: Vec<(&str, String)> = vec![
        ("/health", "/health".into()),
        ("/healthz", "/healthz".into()),
        ("/readyz", "/readyz".into()),
        ("/api/v1/gpus", "/api/v1/gpus".into()),
        ("/api/v1/stats", "/api/v1/stats".into()),
        ("/api/v1/stats", "/api/v1/stats?x=1".into()),
        ("/api/v1/gpus", "/api/v1/gpus?x=1".into()),
        ("/openapi.json", "/openapi.json".into()),
        ("/docs", "/docs".into()),
        (telemetry, window(GPU_A, "")),
        (telemetry, window(GPU_A, "limit=7&offset=98")),
        (
            telemetry,
            window(GPU_B, &format!("metric={UTIL}&start_time={}", iso(at(60)))),
        ),
        (telemetry, window(GPU_C, "")),
        (telemetry, window(GPU_A, "limit=0")),
        (telemetry, window(GPU_A, "start_time=soon")),
        (telemetry, window(GPU_A, "metric=nope")),
        (telemetry, window(GPU_A, "what=ever")),
        (telemetry, window("GPU-unknown", "")),
        ("/metrics", "/metrics".into()),
    ];
    for (template, path) in &requests {
        checker.check(template, &f.get(path));
    }

    // And the outage answers.
    f.pg.stop();
    for (template, path) in [
        ("/health", "/health".to_string()),
        ("/api/v1/gpus", "/api/v1/gpus".into()),
        ("/api/v1/stats", "/api/v1/stats".into()),
        (telemetry, window(GPU_A, "")),
        ("/readyz", "/readyz".into()),
    ] {
        let reply = f.get(&path);
        assert_eq!(reply.status, 503, "{path}");
        checker.check(template, &reply);
    }
    assert_eq!(checker.checked, requests.len() + 5);
}
