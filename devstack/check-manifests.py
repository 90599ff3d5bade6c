#!/usr/bin/env python3
"""Static checks of the container manifests, which cannot be run here (no
container engine): the compose file parses, every service has an image or a
build, every dependency and mounted file exists, and each Kubernetes manifest
under deploy/ parses with the fields a workload needs."""
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
problems = []

compose_file = root / "compose" / "docker-compose.yml"
compose = yaml.safe_load(compose_file.read_text())
services = compose.get("services", {})
for name, service in services.items():
    if "image" not in service and "build" not in service:
        problems.append(f"compose service {name} has neither image nor build")
    depends = service.get("depends_on", [])
    for dependency in depends if isinstance(depends, list) else depends.keys():
        if dependency not in services:
            problems.append(f"compose service {name} depends on unknown {dependency}")
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            if not (compose_file.parent / source).exists():
                problems.append(f"compose service {name} mounts missing {source}")

for manifest in sorted((root / "deploy").rglob("*.yaml")):
    for document in yaml.safe_load_all(manifest.read_text()):
        if not document:
            continue
        for key in ("apiVersion", "kind"):
            if key not in document:
                problems.append(f"{manifest.relative_to(root)}: missing {key}")
        if document.get("kind") in ("Deployment", "Job"):
            pod = document["spec"]["template"]["spec"]
            for container in pod["containers"]:
                if "resources" not in container:
                    problems.append(f"{manifest.relative_to(root)}: container {container['name']} has no resources")

for problem in problems:
    print(f"check-manifests: {problem}", file=sys.stderr)
print(f"check-manifests: {len(services)} compose services, manifests under deploy/: "
      f"{'ok' if not problems else f'{len(problems)} problems'}")
sys.exit(1 if problems else 0)
