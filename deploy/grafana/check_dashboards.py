#!/usr/bin/env python3
"""Checks of the Grafana files that need no Grafana (run by deploy/lint.sh grafana).

- every dashboard under deploy/grafana/dashboards is JSON with a uid (unique), a title and a
  schemaVersion; panel ids are unique, grid positions fit the 24-column grid and do not overlap;
- every panel and query uses the provisioned Prometheus datasource: the `datasource`
  variable, whose default is the uid of deploy/grafana/provisioning/datasources/telemetry.yaml,
  or that uid itself;
- every query has an expression that only uses what the API's PromQL supports (the functions
  and aggregations below), balanced brackets and quotes, and only defined variables;
- the `Hostname` variable is label_values(DCGM_FI_DEV_GPU_TEMP, Hostname); query variables are
  classic queries (Grafana ignores the text of the other query types);
- the provisioning files agree with deploy/docker-compose.yml: the datasource URL is the api
  service's /prometheus on its port, and the dashboards provider's path is where the compose
  file mounts deploy/grafana/dashboards;
- the chart's copies (deploy/helm/telemetry-pipeline/dashboards/*.json) are byte-identical.

The expressions are parsed for real (by the API's own PromQL parser) and run against the API
by `cargo test -p api --test api dashboard`; this is the offline, tool-free part.

Usage: check_dashboards.py [REPO_ROOT]. Exits 1 with one line per problem.
"""

import json
import re
import sys
from pathlib import Path

import yaml

# What the API's PromQL supports (besides selectors, offset, and vector-scalar arithmetic and
# comparisons), and the grouping keywords.
FUNCTIONS = {"rate", "irate", "increase", "delta"} | {
    f"{agg}_over_time" for agg in ("avg", "min", "max", "sum", "count", "last", "quantile", "stddev", "stdvar", "present")
}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile"}
KEYWORDS = {"by", "without"}
# Grafana's built-in variables a query may use.
BUILTIN_VARIABLES = {"__range", "__rate_interval", "__interval", "__range_s", "__interval_ms", "__range_ms"}


class Checker:
    def __init__(self, root):
        self.root = Path(root)
        self.grafana = self.root / "deploy" / "grafana"
        self.errors = []

    def fail(self, where, message):
        self.errors.append(f"{where}: {message}")

    def run(self):
        uid = self.provisioned_uid()
        self.check_provisioning()
        seen_uids = {}
        dashboards = sorted((self.grafana / "dashboards").glob("*.json"))
        if not dashboards:
            self.fail("deploy/grafana/dashboards", "no dashboard")
        for path in dashboards:
            rel = path.relative_to(self.root)
            try:
                dashboard = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                self.fail(rel, f"not JSON: {e}")
                continue
            duid = dashboard.get("uid")
            if duid in seen_uids:
                self.fail(rel, f"uid {duid!r} is also {seen_uids[duid]}'s")
            seen_uids[duid] = rel
            self.check_dashboard(rel, dashboard, uid)
        self.check_chart_copies(dashboards)
        return self.errors

    # -- provisioning ------------------------------------------------------------------------

    def provisioned_uid(self):
        path = self.grafana / "provisioning" / "datasources" / "telemetry.yaml"
        doc = yaml.safe_load(path.read_text())
        prometheus = [d for d in doc.get("datasources", []) if d.get("type") == "prometheus"]
        if len(prometheus) != 1:
            self.fail(path.relative_to(self.root), "expected exactly one prometheus datasource")
            return None
        ds = prometheus[0]
        self.datasource = ds
        if not ds.get("uid"):
            self.fail(path.relative_to(self.root), "the datasource has no uid")
        return ds.get("uid")

    def check_provisioning(self):
        compose_path = self.root / "deploy" / "docker-compose.yml"
        compose = yaml.safe_load(compose_path.read_text())
        services = compose.get("services", {})
        grafana = services.get("grafana")
        if not grafana:
            self.fail("deploy/docker-compose.yml", "no grafana service")
            return
        image = grafana.get("image", "")
        if not re.fullmatch(r"grafana/grafana(-oss)?:\d+\.\d+\.\d+", image):
            self.fail("deploy/docker-compose.yml", f"grafana image {image!r} is not pinned to a version")
        mounts = {}
        for volume in grafana.get("volumes", []):
            parts = volume.split(":")
            if len(parts) >= 2 and parts[0].startswith("."):
                source = (compose_path.parent / parts[0]).resolve()
                if not source.exists():
                    self.fail("deploy/docker-compose.yml", f"grafana mounts {parts[0]}, which does not exist")
                mounts[parts[1]] = source
        # The datasource: http://<compose service>:<its port>/prometheus.
        ds = getattr(self, "datasource", None) or {}
        m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/prometheus", ds.get("url", ""))
        if not m:
            self.fail("provisioning/datasources/telemetry.yaml", f"url {ds.get('url')!r} is not http://<service>:<port>/prometheus")
        else:
            service = services.get(m.group(1))
            if service is None:
                self.fail("provisioning/datasources/telemetry.yaml", f"no compose service {m.group(1)!r}")
            else:
                port = str((service.get("environment") or {}).get("PORT", "8080"))
                if port != m.group(2):
                    self.fail("provisioning/datasources/telemetry.yaml", f"the {m.group(1)} service listens on {port}, not {m.group(2)}")
        # Provisioning directories and the dashboards provider's path are mounted.
        for sub in ("datasources", "dashboards"):
            target = f"/etc/grafana/provisioning/{sub}"
            if mounts.get(target) != (self.grafana / "provisioning" / sub).resolve():
                self.fail("deploy/docker-compose.yml", f"grafana does not mount provisioning/{sub} at {target}")
        providers = yaml.safe_load((self.grafana / "provisioning" / "dashboards" / "telemetry.yaml").read_text())
        for provider in providers.get("providers", []):
            path = (provider.get("options") or {}).get("path")
            if mounts.get(path) != (self.grafana / "dashboards").resolve():
                self.fail("provisioning/dashboards/telemetry.yaml", f"provider path {path!r} is not where deploy/grafana/dashboards is mounted")
        home = (grafana.get("environment") or {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        if home:
            directory, _, name = home.rpartition("/")
            if mounts.get(directory) is None or not (mounts[directory] / name).exists():
                self.fail("deploy/docker-compose.yml", f"the home dashboard {home} is not a mounted file")

    # -- dashboards --------------------------------------------------------------------------

    def check_dashboard(self, rel, dashboard, uid):
        for key in ("uid", "title", "schemaVersion", "panels"):
            if not dashboard.get(key):
                self.fail(rel, f"no {key}")
        variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
        ds_var = variables.get("datasource")
        if ds_var:
            if ds_var.get("type") != "datasource" or ds_var.get("query") != "prometheus":
                self.fail(rel, "the datasource variable is not a prometheus datasource variable")
            current = (ds_var.get("current") or {}).get("value")
            if current != uid:
                self.fail(rel, f"the datasource variable defaults to {current!r}, not the provisioned {uid!r}")
        allowed_refs = {uid} | ({"${datasource}", "$datasource"} if ds_var else set())
        hostname = variables.get("Hostname")
        if not hostname or (hostname.get("query") or {}).get("query") != "label_values(DCGM_FI_DEV_GPU_TEMP, Hostname)":
            self.fail(rel, "no Hostname variable on label_values(DCGM_FI_DEV_GPU_TEMP, Hostname)")
        defined = set(variables) | BUILTIN_VARIABLES
        for name, var in variables.items():
            if var.get("type") == "query":
                self.check_datasource(rel, f"variable {name}", var.get("datasource"), allowed_refs)
                raw = var.get("query")
                query = raw.get("query", "") if isinstance(raw, dict) else (raw or "")
                # Grafana runs the `query` text only for a classic query (qryType 5); the other
                # types build it from fields of their own (label, metric, ...).
                if isinstance(raw, dict) and raw.get("qryType", 5) != 5:
                    self.fail(rel, f"variable {name}: qryType {raw.get('qryType')} ignores the query text; use 5 (classic)")
                if not query.strip():
                    self.fail(rel, f"variable {name}: no query")
                self.check_variables(rel, f"variable {name}", query, defined)

        ids = {}
        boxes = []
        for panel in self.all_panels(dashboard.get("panels", [])):
            where = f"panel {panel.get('id')} {panel.get('title')!r}"
            pid = panel.get("id")
            if not isinstance(pid, int):
                self.fail(rel, f"{where}: no integer id")
            elif pid in ids:
                self.fail(rel, f"{where}: id also used by {ids[pid]!r}")
            else:
                ids[pid] = panel.get("title")
            grid = panel.get("gridPos") or {}
            if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
                self.fail(rel, f"{where}: no gridPos")
                continue
            if grid["x"] < 0 or grid["w"] < 1 or grid["x"] + grid["w"] > 24:
                self.fail(rel, f"{where}: gridPos outside the 24 columns")
            for other_where, other in boxes:
                if (grid["x"] < other["x"] + other["w"] and other["x"] < grid["x"] + grid["w"]
                        and grid["y"] < other["y"] + other["h"] and other["y"] < grid["y"] + grid["h"]):
                    self.fail(rel, f"{where} overlaps {other_where}")
            boxes.append((where, grid))
            if panel.get("type") == "row":
                continue
            self.check_datasource(rel, where, panel.get("datasource"), allowed_refs)
            targets = panel.get("targets") or []
            if not targets:
                self.fail(rel, f"{where}: no query")
            refs = set()
            for target in targets:
                ref = target.get("refId")
                if not ref or ref in refs:
                    self.fail(rel, f"{where}: missing or repeated refId {ref!r}")
                refs.add(ref)
                self.check_datasource(rel, f"{where} query {ref}", target.get("datasource"), allowed_refs)
                expr = target.get("expr", "")
                if not expr.strip():
                    self.fail(rel, f"{where} query {ref}: no expr")
                    continue
                self.check_expr(rel, f"{where} query {ref}", expr)
                self.check_variables(rel, f"{where} query {ref}", expr, defined)

    @staticmethod
    def all_panels(panels):
        for panel in panels:
            yield panel
            yield from Checker.all_panels(panel.get("panels") or [])

    def check_datasource(self, rel, where, ref, allowed):
        if not isinstance(ref, dict) or ref.get("type") != "prometheus" or ref.get("uid") not in allowed:
            self.fail(rel, f"{where}: datasource {ref!r} is not the provisioned Prometheus datasource ({' or '.join(sorted(allowed))})")

    def check_expr(self, rel, where, expr):
        # Brackets and quotes balance (outside strings).
        stack, quote = [], None
        pairs = {")": "(", "]": "[", "}": "{"}
        for ch in expr:
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "\"'`":
                quote = ch
            elif ch in "([{":
                stack.append(ch)
            elif ch in ")]}":
                if not stack or stack.pop() != pairs[ch]:
                    self.fail(rel, f"{where}: unbalanced {ch!r} in {expr}")
                    return
        if stack or quote:
            self.fail(rel, f"{where}: unclosed {(stack or [quote])[-1]!r} in {expr}")
            return
        # Every call is a supported function or aggregation (label matchers' strings removed).
        bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
        for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", bare):
            if name not in FUNCTIONS | AGGREGATIONS | KEYWORDS:
                self.fail(rel, f"{where}: {name}() is not supported by the API's PromQL: {expr}")
        if re.search(r"\b(and|or|unless|on|ignoring|group_left|group_right)\b", bare):
            self.fail(rel, f"{where}: vector matching / set operators are not supported: {expr}")

    def check_variables(self, rel, where, text, defined):
        for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text):
            if name not in defined:
                self.fail(rel, f"{where}: ${name} is not a variable of the dashboard")

    # -- the chart's copies ------------------------------------------------------------------

    def check_chart_copies(self, dashboards):
        chart = self.root / "deploy" / "helm" / "telemetry-pipeline" / "dashboards"
        copies = {p.name: p for p in chart.glob("*.json")}
        sources = {p.name: p for p in dashboards}
        for name in sorted(set(copies) | set(sources)):
            if name not in copies:
                self.fail("deploy/helm/telemetry-pipeline/dashboards", f"no copy of {name}")
            elif name not in sources:
                self.fail(copies[name].relative_to(self.root), "has no source in deploy/grafana/dashboards")
            elif copies[name].read_bytes() != sources[name].read_bytes():
                self.fail(copies[name].relative_to(self.root),
                          f"differs from deploy/grafana/dashboards/{name}: cp deploy/grafana/dashboards/{name} {chart.relative_to(self.root)}/")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    errors = Checker(root).run()
    for error in errors:
        print(error)
    if errors:
        sys.exit(1)
    print("grafana: dashboards, datasource and provisioning agree")


if __name__ == "__main__":
    main()
