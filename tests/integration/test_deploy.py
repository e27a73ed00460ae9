"""test_deploy.py - the shipped deployment files, checked without Docker or systemd running: the compose
file validates with docker-compose and has the guide's services, ports, health checks and secrets; the
Dockerfile's package lists cover what the binary links and what meson needs; the systemd unit verifies; the
man pages render without warnings and describe every option the binary prints."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

from tools_helpers import sluice_bin

pytestmark = pytest.mark.pgsluice_only

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
COMPOSE = os.path.join(DEPLOY, "docker-compose.yml")


def compose_config(path):
    """`docker-compose config` (Debian's docker-compose, no engine needed): exit code and output."""
    r = subprocess.run(["docker-compose", "-f", path, "config"], capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(path), env=dict(os.environ, DOCKER_HOST="unix:///nonexistent"))
    return r


def test_compose_file_validates_and_has_the_guides_stack():
    r = compose_config(COMPOSE)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    services = cfg["services"]
    assert set(services) == {"db-primary", "db-replica", "pgsluice-config", "pgsluice"}
    sl = services["pgsluice"]
    ports = [p if isinstance(p, str) else "%s:%s" % (p["published"], p["target"]) for p in sl["ports"]]
    for port in ("6432", "8081"):
        assert any(re.search(r"(^|:)%s:%s(/tcp)?$" % (port, port), p) for p in ports), ports
    assert "8081/health" in " ".join(sl["healthcheck"]["test"])
    assert sl["depends_on"]["pgsluice-config"]["condition"] == "service_completed_successfully"
    assert services["db-replica"]["depends_on"]["db-primary"]["condition"] == "service_healthy"
    for name, svc in services.items():
        if name != "pgsluice-config":
            assert "healthcheck" in svc, name
        for key, value in (svc.get("environment") or {}).items():
            # passwords only as secrets (files), never as values in the environment
            assert not (key.endswith("PASSWORD") and value), (name, key)
    job = " ".join(services["pgsluice-config"]["command"])
    assert job.startswith("userlist --from-server") and "/etc/pgsluice/auth/userlist.txt" in job
    assert set(cfg["secrets"]) == {"postgres_password", "sav3_password", "replication_password"}
    env = services["db-primary"]["environment"]
    assert {"POSTGRES_USER", "POSTGRES_DB", "SAV3_USER", "POSTGRES_PASSWORD_FILE", "SAV3_PASSWORD_FILE"} <= set(env)


def test_compose_validation_rejects_a_broken_file():
    d = tempfile.mkdtemp(prefix="slcompose-")
    try:
        shutil.copytree(DEPLOY, os.path.join(d, "deploy"))
        path = os.path.join(d, "deploy", "docker-compose.yml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("    stop_grace_period: 60s\n", "    stop_grace_period: 60s\n    restartt: always\n"))
        r = compose_config(path)
        assert r.returncode != 0 and "restartt" in r.stderr, r.stderr
    finally:
        shutil.rmtree(d)


def test_container_config_listens_on_all_addresses():
    with open(os.path.join(DEPLOY, "pgsluice.ini")) as f:
        lines = [ln.split("#")[0].strip() for ln in f if not ln.lstrip().startswith(";")]
    assert "listen_addr = *" in lines and "http_listen_addr = *" in lines
    assert "auth_file = /etc/pgsluice/auth/userlist.txt" in lines


def _apt_list(stage_text):
    m = re.search(r"apt-get install -y --no-install-recommends\s*\\?\n(.*?)(?:\n\s*&&|\Z)", stage_text, re.S)
    assert m, stage_text
    return set(re.findall(r"[a-z0-9][a-z0-9.+-]+", m.group(1).replace("\\", " ")))


def _package_of(path):
    r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    if r.returncode != 0:
        real = os.path.realpath(path)
        r = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
    assert r.returncode == 0, (path, r.stderr)
    return r.stdout.split(":")[0].split(",")[0].strip()


def test_dockerfile_packages_cover_what_the_build_links():
    with open(os.path.join(REPO, "Dockerfile")) as f:
        text = f.read()
    build_stage, runtime_stage = text.split("\nFROM debian:bookworm-slim\n")
    assert "FROM debian:bookworm-slim AS build" in build_stage
    assert "USER pgsluice" in runtime_stage and "useradd --system" in runtime_stage
    build_pkgs, runtime_pkgs = _apt_list(build_stage), _apt_list(runtime_stage)

    # every library the binary needs directly comes from a package the runtime stage installs
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                        subprocess.run(["readelf", "-d", sluice_bin()], capture_output=True, text=True).stdout)
    ldd = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(["ldd", sluice_bin()], capture_output=True,
                                                                 text=True).stdout, re.M))
    assert needed
    base = {"libc6", "libcrypt1"}  # in every Debian image (libc6 depends on libcrypt1)
    for lib in needed:
        if lib.startswith(("libasan", "libubsan", "libtsan", "ld-linux")):
            continue  # sanitizer builds; the dynamic loader (libc6)
        pkg = _package_of(ldd[lib])
        assert pkg in runtime_pkgs | base, "%s (%s) is not installed in the Dockerfile's runtime stage" % (lib, pkg)

    # every dependency('x') of meson.build resolves to a -dev package the build stage installs
    with open(os.path.join(REPO, "meson.build")) as f:
        deps = re.findall(r"dependency\('([^']+)'", f.read())
    for dep in deps:
        if dep == "threads":
            continue  # the compiler's pthreads
        r = subprocess.run(["pkg-config", "--variable=pcfiledir", dep], capture_output=True, text=True)
        assert r.returncode == 0, dep
        pc = os.path.join(r.stdout.strip(), dep + ".pc")
        assert _package_of(pc) in build_pkgs, "meson dependency %s (%s) missing from the build stage" % (dep, pc)


def test_systemd_unit_verifies(tmp_path):
    unit_dir = tmp_path / "units"
    (unit_dir / "pgsluice.service.d").mkdir(parents=True)
    with open(os.path.join(DEPLOY, "pgsluice.service")) as f:
        unit = f.read()
    assert "Type=notify-reload" in unit and "ExecStart=/usr/bin/pgsluice /etc/pgsluice/pgsluice.ini" in unit
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "PrivateTmp=yes",
                   "KillSignal=SIGINT", "RuntimeDirectory=pgsluice"):
        assert option in unit
    (unit_dir / "pgsluice.service").write_text(unit.replace("/usr/bin/pgsluice", sluice_bin()))
    shutil.copy(os.path.join(DEPLOY, "pgsluice.service.d", "systemd-before-253.conf"),
                unit_dir / "pgsluice.service.d")
    man = tmp_path / "man"
    for sec, name in (("1", "pgsluice.1"), ("5", "pgsluice.ini.5")):
        (man / ("man" + sec)).mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(REPO, "docs", "man", name), man / ("man" + sec))
    r = subprocess.run(["systemd-analyze", "verify", str(unit_dir / "pgsluice.service")], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, MANPATH=str(man)))
    version = int(re.search(r"\d+", subprocess.run(["systemd-analyze", "--version"], capture_output=True,
                                                    text=True).stdout).group(0))
    problems = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if version < 253:  # Debian 12: notify-reload is unknown, and the drop-in takes over
        problems = [ln for ln in problems if "Failed to parse service type, ignoring: notify-reload" not in ln]
    assert r.returncode == 0 and not problems, r.stderr


@pytest.mark.parametrize("page", ["pgsluice.1", "pgsluice.ini.5"])
def test_man_page_renders_without_warnings(page):
    path = os.path.join(REPO, "docs", "man", page)
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["man", "-l", path], capture_output=True, text=True, env=dict(os.environ, MANPAGER="cat",
                                                                                   MANWIDTH="100"))
    assert r.returncode == 0 and "SEE ALSO" in r.stdout


def test_man_page_describes_every_option_the_binary_prints():
    with open(os.path.join(REPO, "docs", "man", "pgsluice.1")) as f:
        page = f.read().replace("\\-", "-")
    for args in ([], ["tune"], ["userlist"]):
        r = subprocess.run([sluice_bin()] + args + ["--help"], capture_output=True, text=True)
        assert r.returncode == 0
        options = set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", r.stdout, re.M))
        assert options, r.stdout
        for opt in options:
            assert re.search(r"%s\b" % re.escape(opt), page), "%s %s is not in pgsluice(1)" % (" ".join(args), opt)


def test_dockerfile_build_stage_builds_from_what_it_copies(tmp_path):
    """The build stage's COPY lines (and .dockerignore) bring everything meson needs: configure and build
    pgsluice from a tree holding only those files, as `docker build` would."""
    with open(os.path.join(REPO, "Dockerfile")) as f:
        build_stage = f.read().split("\nFROM debian:bookworm-slim\n")[0]
    with open(os.path.join(REPO, ".dockerignore")) as f:
        allowed = [ln[1:].strip() for ln in f if ln.startswith("!")]
    ctx = tmp_path / "src"
    copies = re.findall(r"^COPY (?!--from)(.+)$", build_stage, re.M)
    assert copies
    for line in copies:
        *sources, dest = line.split()
        for src in sources:
            assert any(src == a or src.startswith(a + "/") for a in allowed), "%s is excluded by .dockerignore" % src
            target = ctx / (dest.strip("./") or ".") / (os.path.basename(src) if dest.endswith("/") else "")
            if dest in ("./", "."):
                target = ctx / os.path.basename(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            full = os.path.join(REPO, src)
            if os.path.isdir(full):
                shutil.copytree(full, target)
            else:
                shutil.copy(full, target)
    build = tmp_path / "build"
    # what is checked is that the copied files suffice, not the optimiser: an unoptimised build compiles in
    # a third of the time (a release build of every file took over 10 minutes on a loaded 2-core machine);
    # the timeouts only stop a hang
    r = subprocess.run(["meson", "setup", str(build), str(ctx), "--buildtype=plain", "--prefix=/usr"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    r = subprocess.run(["ninja", "-C", str(build), "pgsluice"], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    r = subprocess.run([str(build / "pgsluice"), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("pgsluice ")
    for man in ("docs/man/pgsluice.1", "docs/man/pgsluice.ini.5"):   # the install lines of the stage
        assert (ctx / man).exists()
