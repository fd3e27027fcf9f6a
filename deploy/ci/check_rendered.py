#!/usr/bin/env python3
"""Policy checks on a rendered Helm manifest (what kubernetes-validate's schemas cannot say).

Reads `helm template` output on stdin and checks the chart's promises:
- every pod runs non-root with seccomp RuntimeDefault; every container has a read-only root
  filesystem, no privilege escalation, ALL capabilities dropped, memory requests and limits;
- every pipeline container has liveness and readiness probes on /healthz and /readyz;
- the binaries get only the flags and env vars of the documented contract (README, Configuration);
- the broker is a StatefulSet with a volumeClaimTemplate and a headless Service: one replica
  and nothing of a cluster by default; with --expect-broker-cluster N (broker.cluster.enabled)
  N replicas started in Parallel, BROKER_NODE_ID from the pod-index label, BROKER_PEERS naming
  every ordinal at its pod's stable name, a PodDisruptionBudget of maxUnavailable 1, brokers
  kept apart by a pod anti-affinity on kubernetes.io/hostname (required, or preferred with
  --broker-anti-affinity soft), a NetworkPolicy (if any) admitting brokers to brokers, and every
  client's BROKER_URL the list of all broker pods;
- every Deployment/StatefulSet of the pipeline has a PodDisruptionBudget, every HPA targets a
  rendered Deployment, every Secret/Service a pod refers to is rendered or declared external;
- a ServiceMonitor or PodMonitor scrapes each pipeline workload's /metrics exactly once (no
  target missed, none twice); every NetworkPolicy selects rendered pods, names ports they
  have, and admits the pods it names as peers from workloads that exist.
- with TLS on: every broker URL is https:// with a CA file, the listeners' probes and monitor
  endpoints use https, certificate, key, CA and token files are on read-only mounts.

Usage: helm template ... | check_rendered.py [--expect-replicas streamer=3 ...]
          [--external-secret NAME ...] [--expect-broker-cluster N [--broker-anti-affinity soft]]
Exits 1 with one line per violation.
"""

import argparse
import re
import sys

import yaml

# The contract (the README's Configuration tables).
FLAGS = {
    "broker": {"--listen", "--data-dir", "--partitions", "--segment-bytes", "--retention-bytes",
               "--retention-ms", "--fsync", "--fsync-interval-ms", "--token",
               "--auto-create-topics"},
    "streamer": {"--broker", "--topic", "--csv", "--batch-size", "--loop", "--rate", "--group",
                 "--metrics-listen"},
    "collector": {"--broker", "--topic", "--group", "--batch-size", "--metrics-listen",
                  "--database-url", "--db-host", "--db-port", "--db-user", "--db-password",
                  "--db-name", "--retention", "--rollup-1m-retention", "--rollup-1h-retention"},
    "api": {"--listen", "--database-url", "--db-host", "--db-port", "--db-user",
            "--db-password", "--db-name", "--database-read-url", "--broker-url", "--broker-token"},
}
DB_ENV = {"DATABASE_URL", "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"}
# What the chart sets, plus what operators may add through extraEnv (the binaries' own tuning).
ENV = {
    "broker": {"LOG_FORMAT", "BROKER_TOKEN", "BROKER_MAX_BODY_BYTES", "BROKER_SESSION_TIMEOUT_MS",
               "BROKER_SHUTDOWN_GRACE_MS", "BROKER_MAX_TOPICS", "BROKER_GROUP_TTL_MS",
               "BROKER_PRODUCER_IDLE_MS",
               # TLS and the token from a file (values tls, brokerAuth).
               "BROKER_TLS_CERT", "BROKER_TLS_KEY", "BROKER_TOKEN_FILE",
               # The cluster (broker.cluster).
               "BROKER_NODE_ID", "BROKER_PEERS", "BROKER_ADVERTISED_URL",
               "BROKER_REPLICATION_FACTOR"},
    "streamer": {"LOG_FORMAT", "BROKER_URL", "BROKER_TOKEN", "TOPIC", "CSV_PATH",
                 "STREAMER_METRICS_LISTEN",
                 # The DaemonSet's scrape of its node (NODE_IP: the downward API's status.hostIP,
                 # expanded into STREAMER_SCRAPE).
                 "NODE_IP", "STREAMER_SCRAPE", "STREAMER_SCRAPE_SHARE", "STREAMER_SCRAPE_INTERVAL",
                 "STREAMER_SCRAPE_TIMEOUT", "STREAMER_SPOOL_DIR", "STREAMER_SPOOL_MAX_BYTES",
                 "BROKER_CA_FILE"},
    "collector": {"LOG_FORMAT", "BROKER_URL", "BROKER_TOKEN", "BROKER_CA_FILE", "TOPIC",
                  "COLLECTOR_METRICS_LISTEN"} | DB_ENV,
    "api": {"LOG_FORMAT", "PORT", "API_DB_POOL_SIZE", "API_DB_TIMEOUT_MS", "BROKER_URL",
            "BROKER_TOKEN", "DATABASE_READ_URL", "API_STATEMENT_TIMEOUT_MS",
            "API_DB_EXPENSIVE_CONCURRENCY",
            # TLS, the broker's CA and the API's token from a file (values tls, apiAuth).
            "API_TLS_CERT", "API_TLS_KEY", "API_TOKEN_FILE", "BROKER_CA_FILE"} | DB_ENV,
}
for _names in ENV.values():
    _names.add("RUST_LOG")
FSYNC = {"always", "interval", "never"}


class Checker:
    def __init__(self, docs, external_secrets, broker_cluster=0, anti_affinity="hard"):
        self.docs = docs
        self.external_secrets = set(external_secrets)
        # Brokers expected in the cluster; 0: a single broker, no cluster.
        self.broker_cluster = broker_cluster
        self.anti_affinity = anti_affinity
        self.errors = []

    def fail(self, obj, message):
        self.errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {message}")

    def of_kind(self, *kinds):
        return [d for d in self.docs if d["kind"] in kinds]

    def names(self, kind):
        return {d["metadata"]["name"] for d in self.of_kind(kind)}

    def run(self, expect_replicas):
        for workload in self.of_kind("Deployment", "StatefulSet", "DaemonSet"):
            self.check_pod(workload)
        self.check_broker()
        self.check_pdbs()
        self.check_hpas()
        self.check_replicas(expect_replicas)
        self.check_monitors()
        self.check_network_policies()
        self.check_tls()
        return self.errors

    # The pipeline's workloads (not the bundled PostgreSQL): what the monitors must scrape.
    PIPELINE = {"broker", "api", "streamer", "collector"}

    def pods(self):
        """(workload, pod labels, container port names) of every workload."""
        for w in self.of_kind("Deployment", "StatefulSet", "DaemonSet"):
            template = w["spec"]["template"]
            ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", []) if "name" in p}
            yield w, template["metadata"]["labels"], ports

    @staticmethod
    def selects(selector, labels):
        """A LabelSelector (matchLabels and In expressions) or a plain Service selector."""
        match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
        if not all(labels.get(k) == v for k, v in match.items() if k != "matchExpressions"):
            return False
        for e in selector.get("matchExpressions", []):
            if e["operator"] != "In" or labels.get(e["key"]) not in e["values"]:
                return False
        return True

    def check_monitors(self):
        monitors = self.of_kind("ServiceMonitor", "PodMonitor")
        if not monitors:
            return
        for w, labels, ports in self.pods():
            if labels.get("app.kubernetes.io/component") not in self.PIPELINE:
                continue
            scrapes = 0
            for sm in self.of_kind("ServiceMonitor"):
                for svc in self.of_kind("Service"):
                    if not self.selects(sm["spec"]["selector"], svc["metadata"]["labels"]):
                        continue
                    if not self.selects(svc["spec"]["selector"], labels):
                        continue
                    svc_ports = {p["name"]: p.get("targetPort") for p in svc["spec"]["ports"]}
                    for ep in sm["spec"]["endpoints"]:
                        if ep["port"] in svc_ports and svc_ports[ep["port"]] in ports:
                            scrapes += 1
            for pm in self.of_kind("PodMonitor"):
                if self.selects(pm["spec"]["selector"], labels):
                    scrapes += sum(1 for ep in pm["spec"]["podMetricsEndpoints"] if ep["port"] in ports)
            if scrapes != 1:
                self.fail(w, f"its /metrics is scraped {scrapes} times by the rendered monitors (want 1)")

    def check_network_policies(self):
        pods = list(self.pods())
        for np in self.of_kind("NetworkPolicy"):
            selected = [(w, ports) for w, labels, ports in pods if self.selects(np["spec"]["podSelector"], labels)]
            if not selected:
                self.fail(np, "its podSelector selects no rendered pods")
                continue
            for rule in np["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    name = port.get("port")
                    if isinstance(name, str) and not all(name in ports for _, ports in selected):
                        self.fail(np, f"port {name} is not a container port of every selected pod")
                for peer in rule.get("from", []):
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        if not any(self.selects(peer["podSelector"], labels) for _, labels, _ in pods):
                            self.fail(np, f"peer {peer['podSelector']} selects no rendered pods")

    def check_tls(self):
        """With TLS on (a listener has *_TLS_CERT): every broker URL is https:// with a CA file
        under a read-only mount, every listener's probes and monitor endpoints use https, and
        the certificate, key and CA files are on mounted volumes."""
        containers = [(w, c) for w in self.of_kind("Deployment", "StatefulSet", "DaemonSet")
                      for c in w["spec"]["template"]["spec"]["containers"]]
        env_of = lambda c: {e["name"]: e.get("value") for e in c.get("env", [])}
        if not any(name.endswith("_TLS_CERT") for _, c in containers for name in env_of(c)):
            return
        for w, c in containers:
            env = env_of(c)
            mounts = [m for m in c.get("volumeMounts", []) if m.get("readOnly")]
            mounted = lambda path: any(path.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts)
            for name in ("BROKER_TLS_CERT", "BROKER_TLS_KEY", "API_TLS_CERT", "API_TLS_KEY",
                         "BROKER_CA_FILE", "BROKER_TOKEN_FILE", "API_TOKEN_FILE"):
                if name in env and not mounted(env[name]):
                    self.fail(w, f"container {c['name']}: {name} {env[name]} is on no read-only mount")
            if "BROKER_URL" in env:
                if not env["BROKER_URL"].startswith("https://"):
                    self.fail(w, f"container {c['name']}: BROKER_URL {env['BROKER_URL']} is not https")
                if "BROKER_CA_FILE" not in env:
                    self.fail(w, f"container {c['name']}: an https broker without BROKER_CA_FILE")
            if any(name.endswith("_TLS_CERT") for name in env):
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe in c and c[probe].get("httpGet", {}).get("scheme") != "HTTPS":
                        self.fail(w, f"container {c['name']}: {probe} is not HTTPS")
        listeners = {"broker", "http"}
        for m in self.of_kind("ServiceMonitor", "PodMonitor"):
            endpoints = m["spec"].get("endpoints", m["spec"].get("podMetricsEndpoints", []))
            for ep in endpoints:
                if ep["port"] in listeners and (ep.get("scheme") != "https" or "tlsConfig" not in ep):
                    self.fail(m, f"endpoint {ep['port']} scrapes a TLS listener without https and tlsConfig")

    def check_pod(self, workload):
        spec = workload["spec"]["template"]["spec"]
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("runAsNonRoot") is not True:
            self.fail(workload, "pod securityContext.runAsNonRoot is not true")
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            self.fail(workload, "pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            self.fail(workload, "mounts a service account token it does not need")
        for container in spec["containers"]:
            self.check_container(workload, container)
        self.check_references(workload, spec)

    def check_container(self, workload, c):
        sc = c.get("securityContext", {})
        where = f"container {c['name']}"
        if sc.get("readOnlyRootFilesystem") is not True:
            self.fail(workload, f"{where}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            self.fail(workload, f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            self.fail(workload, f"{where}: does not drop ALL capabilities")
        resources = c.get("resources", {})
        if "memory" not in resources.get("requests", {}) or "memory" not in resources.get("limits", {}):
            self.fail(workload, f"{where}: no memory request and limit")
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in c:
                self.fail(workload, f"{where}: no {probe}")
        component = c["name"]
        if component in FLAGS:
            self.check_pipeline_container(workload, c, component)

    def check_pipeline_container(self, workload, c, component):
        where = f"container {component}"
        if c.get("command") != [f"/usr/local/bin/{component}"]:
            self.fail(workload, f"{where}: command is {c.get('command')}, not its binary")
        for arg in c.get("args", []):
            flag = arg.split("=", 1)[0]
            if flag not in FLAGS[component]:
                self.fail(workload, f"{where}: flag {flag} is not in the documented contract")
            if flag == "--fsync" and arg.split("=", 1)[1] not in FSYNC:
                self.fail(workload, f"{where}: {arg} is not always/interval/never")
        env = {e["name"] for e in c.get("env", [])}
        for name in sorted(env - ENV[component]):
            self.fail(workload, f"{where}: env {name} is not one {component} reads")
        paths = {c[p].get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
        if paths != {"/healthz", "/readyz"}:
            self.fail(workload, f"{where}: probes hit {sorted(map(str, paths))}, not /healthz and /readyz")

    def check_references(self, workload, spec):
        secrets = self.names("Secret") | self.external_secrets
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets:
                    self.fail(workload, f"env {e['name']} refers to Secret {ref['name']}, which is neither rendered nor declared external")
                if e["name"] == "BROKER_URL":
                    for url in e["value"].split(","):
                        host = url.split("//", 1)[1].split(":", 1)[0]
                        # A Service, or a pod's stable name under a headless one (<pod>.<svc>.<ns>.svc).
                        labels = host.split(".")
                        service = labels[1] if len(labels) == 4 and labels[3] == "svc" else host
                        if service not in self.names("Service"):
                            self.fail(workload, f"BROKER_URL host {host} is no rendered Service (nor a pod under one)")
                if e["name"] == "DB_HOST" and "." not in e["value"] and e["value"] not in self.names("Service"):
                    self.fail(workload, f"DB_HOST {e['value']} is no rendered Service")

    def check_broker(self):
        brokers = [s for s in self.of_kind("StatefulSet") if s["metadata"]["labels"].get("app.kubernetes.io/component") == "broker"]
        if len(brokers) != 1:
            self.errors.append(f"expected one broker StatefulSet, found {len(brokers)}")
            return
        broker = brokers[0]
        if self.broker_cluster:
            self.check_broker_cluster(broker)
        else:
            self.check_single_broker(broker)
        if not broker["spec"].get("volumeClaimTemplates"):
            self.fail(broker, "no volumeClaimTemplates")
        headless = [s for s in self.of_kind("Service") if s["metadata"]["name"] == broker["spec"]["serviceName"]]
        if not headless or headless[0]["spec"].get("clusterIP") != "None":
            self.fail(broker, f"serviceName {broker['spec']['serviceName']} is not a rendered headless Service")
        mounts = {m["mountPath"] for m in broker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
        if "/var/lib/telemetry/broker" not in mounts:
            self.fail(broker, "the data dir is not on the claimed volume")

    def broker_env(self, broker):
        return {e["name"]: e for e in broker["spec"]["template"]["spec"]["containers"][0].get("env", [])}

    def client_broker_urls(self):
        """(workload, BROKER_URL) of every container that has one."""
        for w in self.of_kind("Deployment", "StatefulSet", "DaemonSet"):
            for c in w["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    if e["name"] == "BROKER_URL":
                        yield w, e["value"]

    def check_single_broker(self, broker):
        """The default: one broker, exactly as before the cluster existed."""
        spec = broker["spec"]
        if spec["replicas"] != 1:
            self.fail(broker, f"a single broker (no cluster): replicas is {spec['replicas']}, not 1")
        if spec.get("podManagementPolicy") != "OrderedReady":
            self.fail(broker, f"a single broker: podManagementPolicy is {spec.get('podManagementPolicy')}, not OrderedReady")
        env = self.broker_env(broker)
        for name in ("BROKER_NODE_ID", "BROKER_PEERS", "BROKER_ADVERTISED_URL"):
            if name in env:
                self.fail(broker, f"a single broker is given {name}")
        if "podAntiAffinity" in spec["template"]["spec"].get("affinity", {}):
            self.fail(broker, "a single broker has a pod anti-affinity")
        services = self.names("Service")
        for w, url in self.client_broker_urls():
            host = url.split("//", 1)[1].split(":", 1)[0]
            if "," in url or host not in services:
                self.fail(w, f"BROKER_URL {url} is not the one broker Service's URL")

    def check_broker_cluster(self, broker):
        """broker.cluster.enabled: every broker knows every other at its stable name."""
        n = self.broker_cluster
        spec = broker["spec"]
        name, headless = broker["metadata"]["name"], spec["serviceName"]
        if spec["replicas"] != n:
            self.fail(broker, f"a cluster of {n}: replicas is {spec['replicas']}")
        if spec.get("podManagementPolicy") != "Parallel":
            self.fail(broker, "a cluster's brokers must start together (podManagementPolicy Parallel): "
                              "none is ready before a majority elects a leader")
        services = {s["metadata"]["name"]: s for s in self.of_kind("Service")}
        if not services.get(headless, {}).get("spec", {}).get("publishNotReadyAddresses"):
            self.fail(broker, f"headless Service {headless} does not publish not-ready brokers: they could not find each other")
        container = spec["template"]["spec"]["containers"][0]
        port = next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == "broker"), None)
        env = self.broker_env(broker)
        node_id = env.get("BROKER_NODE_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if node_id != "metadata.labels['apps.kubernetes.io/pod-index']":
            self.fail(broker, f"BROKER_NODE_ID is not the pod-index label (fieldPath {node_id})")
        for tls in ("BROKER_TLS_CERT", "BROKER_TLS_KEY"):
            if tls in env:
                self.fail(broker, f"{tls} with a cluster: the broker refuses TLS with --peers")
        # Every ordinal once, each at its own pod's stable name under the headless Service.
        peers = {}
        for item in env.get("BROKER_PEERS", {}).get("value", "").split(","):
            node, _, url = item.partition("=")
            if not node.isdigit() or node in peers:
                self.fail(broker, f"BROKER_PEERS item {item!r} is no new id=url")
                continue
            peers[node] = url
            want = re.compile(rf"http://{re.escape(name)}-{node}\.{re.escape(headless)}\.[a-z0-9-]+\.svc:{port}")
            if not want.fullmatch(url):
                self.fail(broker, f"BROKER_PEERS: node {node} at {url}, not its pod {name}-{node}.{headless}.<ns>.svc:{port}")
        if sorted(peers, key=int) != [str(i) for i in range(n)]:
            self.fail(broker, f"BROKER_PEERS names nodes {sorted(peers, key=int)}, not every ordinal 0..{n - 1}")
        if "BROKER_ADVERTISED_URL" in env:
            self.fail(broker, "BROKER_ADVERTISED_URL is set: it must default to the pod's own entry in BROKER_PEERS")
        # One broker down at a time (a majority stays up to keep a leader).
        labels = spec["template"]["metadata"]["labels"]
        pdbs = [p for p in self.of_kind("PodDisruptionBudget") if self.selects(p["spec"]["selector"], labels)]
        if [p["spec"].get("maxUnavailable") for p in pdbs] != [1] or any("minAvailable" in p["spec"] for p in pdbs):
            self.fail(broker, f"want one PodDisruptionBudget of maxUnavailable 1 on the brokers, found {[p['spec'] for p in pdbs]}")
        # No two brokers on a node (one node's loss takes one vote).
        anti = spec["template"]["spec"].get("affinity", {}).get("podAntiAffinity", {})
        if self.anti_affinity == "soft":
            terms = [t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])]
        else:
            terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        if not any(t.get("topologyKey") == "kubernetes.io/hostname" and self.selects(t.get("labelSelector", {}), labels)
                   for t in terms):
            self.fail(broker, f"no {self.anti_affinity} pod anti-affinity keeps the brokers on distinct nodes")
        # The brokers reach each other through a NetworkPolicy, if one guards them.
        for np in self.of_kind("NetworkPolicy"):
            if self.selects(np["spec"]["podSelector"], labels):
                peers_from = [p.get("podSelector") for r in np["spec"].get("ingress", []) for p in r.get("from", [])]
                if not any(sel is not None and "namespaceSelector" not in sel and self.selects(sel, labels)
                           for sel in peers_from):
                    self.fail(np, "does not admit the brokers to each other (their Raft RPCs)")
        # Every client is given every broker; the API (one URL) the broker Service.
        for w, url in self.client_broker_urls():
            if w["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "api":
                if "," in url:
                    self.fail(w, f"BROKER_URL {url}: the API takes one URL, the broker Service")
                continue
            if sorted(url.split(",")) != sorted(peers.values()):
                self.fail(w, f"BROKER_URL {url} is not the list of every broker pod {sorted(peers.values())}")

    def check_pdbs(self):
        selectors = [p["spec"]["selector"]["matchLabels"] for p in self.of_kind("PodDisruptionBudget")]
        for workload in self.of_kind("Deployment", "StatefulSet"):
            labels = workload["spec"]["template"]["metadata"]["labels"]
            component = labels.get("app.kubernetes.io/component")
            if component == "postgresql":
                continue
            if not any(all(labels.get(k) == v for k, v in sel.items()) for sel in selectors):
                self.fail(workload, "no PodDisruptionBudget selects its pods")

    def check_hpas(self):
        deployments = {d["metadata"]["name"]: d for d in self.of_kind("Deployment")}
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            target = deployments.get(hpa["spec"]["scaleTargetRef"]["name"])
            if target is None:
                self.fail(hpa, "targets no rendered Deployment")
            elif "replicas" in target["spec"]:
                self.fail(hpa, f"Deployment {target['metadata']['name']} also sets replicas (the two would fight)")

    def check_replicas(self, expect):
        for item in expect:
            component, count = item.split("=")
            count = int(count)
            found = None
            for d in self.of_kind("Deployment"):
                if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component:
                    found = d["spec"].get("replicas")
                    if found is None:
                        found = self.hpa_min(d["metadata"]["name"])
            if found != count:
                self.errors.append(f"{component}: expected {count} replicas (or HPA minimum), rendered {found}")

    def hpa_min(self, name):
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            if hpa["spec"]["scaleTargetRef"]["name"] == name:
                return hpa["spec"]["minReplicas"]
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expect-replicas", action="append", default=[], metavar="COMPONENT=N")
    parser.add_argument("--external-secret", action="append", default=[], metavar="NAME")
    parser.add_argument("--expect-broker-cluster", type=int, default=0, metavar="N",
                        help="broker.cluster.enabled with N brokers (default: a single broker)")
    parser.add_argument("--broker-anti-affinity", choices=["hard", "soft"], default="hard")
    args = parser.parse_args()
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    errors = Checker(docs, args.external_secret, args.expect_broker_cluster,
                     args.broker_anti_affinity).run(args.expect_replicas)
    for error in errors:
        print(f"policy: {error}", file=sys.stderr)
    kinds = sorted({d["kind"] for d in docs})
    if not errors:
        print(f"policy: {len(docs)} objects ({', '.join(kinds)}) meet the chart's rules")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
