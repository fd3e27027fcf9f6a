#!/usr/bin/env python3
"""Splits a rendered manifest for the validators that understand each part.

Usage: split_manifest.py MANIFEST OUTDIR REPO_ROOT

Writes OUTDIR/core.yaml (the built-in kinds, for kubernetes-validate), OUTDIR/custom.json (the
monitoring.coreos.com objects, for deploy/ci/validate_crds.mjs) and, when PrometheusRules are
rendered, OUTDIR/rules.yaml (their groups as one Prometheus rule file, for `promtool check
rules`). Also checks that every metric an alert expression names is one the binaries export:
its name (without _bucket/_sum/_count) appears as a string literal in the workspace's Rust
sources. Exits 1 when one does not.
"""

import json
import re
import sys
from pathlib import Path

import yaml

CUSTOM_GROUP = "monitoring.coreos.com/"
METRIC = re.compile(r"\b((?:broker|collector|streamer|api)_[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_sum", "_count")


def exported_metrics(repo):
    """Every string literal in the Rust sources that looks like one of our metric names."""
    names = set()
    for crate in ("broker", "clients", "api", "common"):
        for path in (repo / crate).rglob("*.rs"):
            names.update(re.findall(r'"((?:broker|collector|streamer|api)_[a-z0-9_]+)"', path.read_text()))
    return names


def metric_names(expr):
    for name in METRIC.findall(expr):
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        yield name


def main():
    manifest, out, repo = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    core = [d for d in docs if not d["apiVersion"].startswith(CUSTOM_GROUP)]
    custom = [d for d in docs if d["apiVersion"].startswith(CUSTOM_GROUP)]
    (out / "core.yaml").write_text(yaml.safe_dump_all(core))
    (out / "custom.json").write_text(json.dumps(custom))
    groups = [g for d in custom if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"]]
    rules = out / "rules.yaml"
    if rules.exists():
        rules.unlink()
    if not groups:
        return 0
    rules.write_text(yaml.safe_dump({"groups": groups}))
    exported = exported_metrics(repo)
    unknown = sorted(
        {
            (rule.get("alert") or rule.get("record"), name)
            for group in groups
            for rule in group["rules"]
            for name in metric_names(rule["expr"])
            if name not in exported
        }
    )
    for alert, name in unknown:
        print(f"{alert}: {name} is not a metric the binaries export")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
