#!/usr/bin/env python3
"""Checks of the container manifests that no schema knows about. Nothing here
runs a container (there is no engine); devstack/check-manifests.sh runs the
schema validations and calls this script for the rest.

  check-manifests.py [--compose FILE] [--dockerfile FILE]
      compose/docker-compose.yml and the Dockerfile agree: every Paystream
      service is built from its own Dockerfile target, every target exists and
      holds one binary, runs as non-root and carries an OCI version label from
      the VERSION build argument; dependencies and mounted files exist.

  check-manifests.py --kubernetes RENDERED.yaml... [--kubernetes-version V]
      Every document of a rendered kustomization (kubectl kustomize output) is
      valid against the Kubernetes OpenAPI schemas of version V (strict: unknown
      fields fail; unknown kinds fail too), and the workloads follow the rules
      of deploy/README.md: probes, requests and limits, a Service and a
      PodDisruptionBudget per Deployment, image tags pinned, and no consumer's
      HorizontalPodAutoscaler above its topics' partition count.
"""
import argparse
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.37.0"

# Dockerfile target -> the binary its image holds.
TARGETS = {
    "gateway": "gateway",
    "validation": "validation",
    "cbs-debit": "cbs-debit",
    "rtgs-gateway": "rtgs-gateway",
    "notifications": "notifications",
    "audit": "audit",
    "sandbox": "sandbox",
    "schema-registry": "schema-registry",
    "provision": "paystream-provision",
    "cli": "paystream",
}
# Kafka consumers: their autoscaler may not exceed the partition count.
CONSUMERS = {"validation", "cbs-debit", "rtgs-gateway", "notifications", "audit"}

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def dockerfile_stages(path):
    """Final-stage name -> the lines of that stage."""
    stages, current = {}, None
    for line in path.read_text().splitlines():
        match = re.match(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = match.group(1) or f"#{len(stages)}"
            stages[current] = []
        elif current is not None:
            stages[current].append(line)
    return stages


def check_dockerfile(path):
    where = path.name
    stages = dockerfile_stages(path)
    for target, binary in TARGETS.items():
        if target not in stages:
            problem(where, f"no target {target}")
            continue
        body = "\n".join(stages[target])
        copies = re.findall(r"^COPY\s+--from=(\S+)\s+(\S+)", body, re.MULTILINE)
        if len(copies) != 1 or not copies[0][1].endswith(f"/{binary}"):
            problem(where, f"target {target} must copy exactly its binary {binary}, copies {copies}")
        elif "cargo build" not in "\n".join(stages.get(copies[0][0], [])) + "\n".join(stages.get("build", [])):
            problem(where, f"target {target} copies from {copies[0][0]}, which builds nothing")
        if not re.search(r"^ARG\s+VERSION\b", body, re.MULTILINE) or \
                "org.opencontainers.image.version=\"${VERSION}\"" not in body:
            problem(where, f"target {target} lacks ARG VERSION and the org.opencontainers.image.version label from it")
    runtime = "\n".join(stages.get("runtime", []))
    if not re.search(r"^USER\s+(?!0\b|root\b)\S+", runtime, re.MULTILINE):
        problem(where, "the runtime stage does not switch to a non-root USER")


def check_compose(path, dockerfile):
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    compose = yaml.safe_load(path.read_text())
    services = compose.get("services", {})
    targets = set(dockerfile_stages(dockerfile)) if dockerfile.exists() else set()
    built = {}
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            problem(where, f"service {name} has neither image nor build")
        depends = service.get("depends_on", [])
        for dependency in depends if isinstance(depends, list) else depends.keys():
            if dependency not in services:
                problem(where, f"service {name} depends on unknown {dependency}")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith(".") and not (path.parent / source).exists():
                problem(where, f"service {name} mounts missing {source}")
        build = service.get("build")
        if isinstance(build, dict):
            target = build.get("target")
            if target not in targets:
                problem(where, f"service {name} builds Dockerfile target {target!r}, which does not exist")
            if "VERSION" not in (build.get("args") or {}):
                problem(where, f"service {name} builds without the VERSION build argument")
            built[target] = service.get("image")
    for target in TARGETS:
        if target == "cli":
            continue  # an operator's tool, not a compose service
        image = built.get(target)
        if image is None:
            problem(where, f"no service builds the {target} target")
        elif not str(image).startswith(f"paystream/{target}:"):
            problem(where, f"the {target} target is tagged {image}, not paystream/{target}:...")
    for name, service in services.items():
        image = str(service.get("image", ""))
        if image.startswith("paystream/") and image not in built.values():
            problem(where, f"service {name} uses {image}, which no service builds")
    for name in ("gateway", "validation", "cbs-debit", "rtgs-gateway", "notifications", "audit",
                 "sandbox", "schema-registry", "provision", "postgres", "otel-collector", "jaeger",
                 "kafka-ui", "kafka-1", "kafka-2", "kafka-3"):
        if name not in services:
            problem(where, f"the stack lacks {name}")
    for name in ("gateway", "validation", "cbs-debit", "rtgs-gateway", "notifications", "audit",
                 "sandbox", "schema-registry"):
        if name in services and "healthcheck" not in services[name]:
            problem(where, f"service {name} has no healthcheck")
    return len(services)


def pod_spec(document):
    kind = document.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return document["spec"]["template"]["spec"]
    return None


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(files, version):
    import kubernetes_validate

    count = 0
    for path in files:
        where = pathlib.Path(path).name
        documents = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
        if not documents:
            problem(where, "renders no document")
        count += len(documents)
        by_kind = {}
        for document in documents:
            kind = document.get("kind")
            name = document.get("metadata", {}).get("name")
            by_kind.setdefault(kind, []).append(document)
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError as error:
                problem(where, f"{kind}/{name}: no schema for this kind and apiVersion in Kubernetes {version}")
            except kubernetes_validate.ValidationError as error:
                path_text = ".".join(str(p) for p in error.path)
                problem(where, f"{kind}/{name}: {path_text}: {error.message}")
            except Exception as error:  # noqa: BLE001 - any other failure is a failed check
                problem(where, f"{kind}/{name}: {error}")

        partitions = None
        for config in by_kind.get("ConfigMap", []):
            value = (config.get("data") or {}).get("PAYSTREAM_TOPIC_PARTITIONS")
            if value is not None:
                partitions = int(value)

        for document in by_kind.get("Deployment", []) + by_kind.get("Job", []):
            kind, name = document["kind"], document["metadata"]["name"]
            spec = pod_spec(document)
            if not isinstance(spec, dict):
                continue
            for container in spec.get("containers", []):
                resources = container.get("resources") or {}
                for part in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        if resource not in (resources.get(part) or {}):
                            problem(where, f"{kind}/{name}: container {container.get('name')} has no {part}.{resource}")
                image = str(container.get("image", ""))
                if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                    problem(where, f"{kind}/{name}: image {image!r} has no pinned tag")
                if kind == "Deployment":
                    for probe in ("readinessProbe", "livenessProbe"):
                        if probe not in container:
                            problem(where, f"{kind}/{name}: container {container.get('name')} has no {probe}")
            if not (spec.get("securityContext") or {}).get("runAsNonRoot"):
                problem(where, f"{kind}/{name}: pod does not set runAsNonRoot")
            if kind != "Deployment":
                continue
            labels = document["spec"]["template"]["metadata"].get("labels", {})
            if not any(selects(s["spec"].get("selector"), labels) for s in by_kind.get("Service", [])):
                problem(where, f"Deployment/{name}: no Service selects its pods")
            if not any(selects(p["spec"].get("selector", {}).get("matchLabels"), labels)
                       for p in by_kind.get("PodDisruptionBudget", [])):
                problem(where, f"Deployment/{name}: no PodDisruptionBudget covers its pods")

        for hpa in by_kind.get("HorizontalPodAutoscaler", []):
            name = hpa["metadata"]["name"]
            target = hpa["spec"].get("scaleTargetRef", {}).get("name")
            if target not in {d["metadata"]["name"] for d in by_kind.get("Deployment", [])}:
                problem(where, f"HorizontalPodAutoscaler/{name}: scales unknown {target}")
            service = name.removeprefix("paystream-")
            if service in CONSUMERS:
                if partitions is None:
                    problem(where, f"HorizontalPodAutoscaler/{name}: no PAYSTREAM_TOPIC_PARTITIONS to bound it")
                elif hpa["spec"].get("maxReplicas", 0) > partitions:
                    problem(where, f"HorizontalPodAutoscaler/{name}: maxReplicas {hpa['spec']['maxReplicas']} "
                                   f"exceeds the topics' {partitions} partitions (idle consumers)")
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compose", type=pathlib.Path)
    parser.add_argument("--dockerfile", type=pathlib.Path)
    parser.add_argument("--kubernetes", nargs="+", metavar="RENDERED")
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args()
    if args.kubernetes:
        count = check_kubernetes(args.kubernetes, args.kubernetes_version)
        summary = f"{count} rendered documents valid against Kubernetes {args.kubernetes_version} (strict) and the deploy rules"
    else:
        dockerfile = args.dockerfile or ROOT / "Dockerfile"
        if args.dockerfile or not args.compose:
            check_dockerfile(dockerfile)
        count = check_compose(args.compose or ROOT / "compose" / "docker-compose.yml", dockerfile)
        summary = f"{count} compose services and the Dockerfile's {len(TARGETS)} targets consistent"
    for text in problems:
        print(f"check-manifests: {text}", file=sys.stderr)
    print(f"check-manifests: {summary}: " + ("ok" if not problems else f"{len(problems)} problems"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
