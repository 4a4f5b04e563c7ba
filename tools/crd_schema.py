"""A CustomResourceDefinition's ``openAPIV3Schema`` → a strict JSON Schema for check-jsonschema.

    python tools/crd_schema.py CRD.yaml VERSION > deploy/kubernetes/schemas/KIND_VERSION.json

Used to vendor the Prometheus Operator's ServiceMonitor and PrometheusRule schemas
(``deploy/kubernetes/schemas/README.md`` says from where). The API server prunes fields a
structural schema does not declare, without a word; a manifest with a misspelt field would
apply and do nothing. So, like ``kubectl apply --validate=strict``, every object that lists
its ``properties`` gets ``additionalProperties: false``, unless the CRD lets it keep unknown
fields (``x-kubernetes-preserve-unknown-fields``). ``nullable`` becomes a ``null`` type, and
``apiVersion`` and ``kind`` are pinned to the resource's own, so that a schema is only ever
applied to its kind.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

DRAFT = "http://json-schema.org/draft-07/schema#"


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 (structural) schema in which undeclared fields are errors."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if isinstance(out.get("pattern"), str) and "(?i)" in out["pattern"]:
        out["pattern"] = ignoring_case(out["pattern"])
    return out


def ignoring_case(pattern: str) -> str:
    """A Go (RE2) pattern with the ``(?i)`` flag, in the ECMAScript syntax JSON Schema uses,
    which has no inline flags: each letter becomes a class of its two cases.

    >>> ignoring_case("^(?i)(abort|warn)?$")
    '^([aA][bB][oO][rR][tT]|[wW][aA][rR][nN])?$'
    """
    plain = pattern.replace("(?i)", "", 1)
    if "(?" in plain or "[" in plain or "\\" in plain:
        raise ValueError(f"cannot rewrite {pattern!r} without its (?i) flag")
    return re.sub(r"[A-Za-z]", lambda m: f"[{m[0].lower()}{m[0].upper()}]", plain)


def crd_json_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The strict JSON Schema of one served version of ``crd``."""
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = strict(served["schema"]["openAPIV3Schema"])
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schema["properties"]["apiVersion"] = {"const": f"{group}/{version}"}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "spec"})
    operator = crd["metadata"].get("annotations", {}).get("operator.prometheus.io/version")
    return {"$schema": DRAFT, "title": f"{kind} {group}/{version}"
            + (f" (Prometheus Operator {operator}, strict)" if operator else " (strict)"),
            **schema}


def main(argv: list[str]) -> int:
    """Print the schema of the CRD file ``argv[0]`` at version ``argv[1]``."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    crd = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8"))
    json.dump(crd_json_schema(crd, argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
