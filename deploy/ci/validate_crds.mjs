// Validates prometheus-operator objects (ServiceMonitor, PodMonitor, PrometheusRule) against
// the CRDs' OpenAPI schemas, as compiled into @kubernetes-models/prometheus-operator: types,
// required fields, enums and patterns (durations, label names). Offline: the package is
// installed by deploy/lint.sh into $TOOLS_DIR.
//
// Usage: node validate_crds.mjs NODE_MODULES OBJECTS.json   (a JSON array of rendered objects)
// Exits 1 with one line per invalid object, or for a kind it has no schema for.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

// ES modules ignore NODE_PATH: the models are imported by file.
const v1 = `${process.argv[2]}/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1`;
const kinds = new Set(["ServiceMonitor", "PodMonitor", "PrometheusRule"]);

const objects = JSON.parse(readFileSync(process.argv[3], "utf8"));
let failed = 0;
for (const obj of objects) {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  if (!kinds.has(obj.kind) || obj.apiVersion !== "monitoring.coreos.com/v1") {
    console.log(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  const Model = (await import(pathToFileURL(`${v1}/${obj.kind}.js`).href))[obj.kind];
  try {
    new Model(obj).validate();
    console.log(`${where}: valid`);
  } catch (e) {
    console.log(`${where}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
