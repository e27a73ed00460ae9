"""test_tools_userlist.py - `pgsluice userlist`: an auth_file from the guide's environment variables (SCRAM by
default, md5 or plain text only on request) or from pg_authid, mode 0600, written whole or not at all, never
over an existing file without --force; a client logs in through pgsluice with the SCRAM secret it wrote."""
import hashlib
import os
import shutil
import stat
import tempfile

import psycopg
import pytest

from harness import clients
from tools_helpers import files_in, run_tool

pytestmark = pytest.mark.pgsluice_only


@pytest.fixture
def d():
    path = tempfile.mkdtemp(prefix="slul-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def entries(path):
    """{user: secret} of an auth_file (comment lines skipped, "" unescaped)."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith(";") or not line.strip():
                continue
            fields, cur, i, quoted = [], "", 0, False
            while i < len(line):
                ch = line[i]
                if ch == '"' and quoted and line[i + 1:i + 2] == '"':
                    cur += '"'
                    i += 1
                elif ch == '"':
                    if quoted:
                        fields.append(cur)
                        cur = ""
                    quoted = not quoted
                elif quoted:
                    cur += ch
                i += 1
            out[fields[0]] = fields[1]
    return out


def test_userlist_from_the_guides_env_vars_writes_scram_secrets_with_mode_0600(d):
    out = os.path.join(d, "userlist.txt")
    r = run_tool(["userlist", out], env={"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "secure_password",
                                         "SAV3_USER": "sav3_user", "SAV3_PASSWORD": 'sav3 "app" password'})
    assert r.returncode == 0, r.stderr
    assert "wrote %s (2 users, mode 0600)" % out in r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    e = entries(out)
    assert set(e) == {"postgres", "sav3_user"}
    for secret in e.values():
        assert secret.startswith("SCRAM-SHA-256$4096:"), secret
    text = open(out).read()
    assert "secure_password" not in text and "sav3" + ' "app"' not in text   # never plain text unless asked
    assert files_in(d) == ["userlist.txt"]                                  # no temp file left behind


def test_userlist_md5_and_plain_only_on_request(d):
    env = {"SAV3_USER": "sav3_user", "SAV3_PASSWORD": "pw1"}
    r = run_tool(["userlist", "--md5", os.path.join(d, "md5.txt")], env=env)
    assert r.returncode == 0, r.stderr
    want = "md5" + hashlib.md5(b"pw1sav3_user").hexdigest()
    assert entries(os.path.join(d, "md5.txt")) == {"sav3_user": want}
    r = run_tool(["userlist", "--plain", os.path.join(d, "plain.txt")], env=env)
    assert r.returncode == 0, r.stderr
    assert entries(os.path.join(d, "plain.txt")) == {"sav3_user": "pw1"}
    r = run_tool(["userlist", "--md5", "--plain", os.path.join(d, "x.txt")], env=env)
    assert r.returncode == 1 and "choose one of" in r.stderr
    r = run_tool(["userlist", "--md5", "-"], env=env)             # standard output
    assert r.returncode == 0 and '"sav3_user" "%s"' % want in r.stdout


def test_userlist_scram_secret_logs_a_client_in_through_pgsluice(d, cluster, pooler):
    # the role's password on the server is set to the very secret userlist wrote, so the client's SCRAM
    # login to pgsluice also passes through to PostgreSQL
    cluster.psql("DROP ROLE IF EXISTS ul_scram; CREATE ROLE ul_scram LOGIN")
    pw_file = os.path.join(d, "pw")
    with open(pw_file, "w") as f:
        f.write("s3cret pass\n")
    out = os.path.join(d, "userlist.txt")
    r = run_tool(["userlist", "--env", "APP", out], env={"APP_USER": "ul_scram", "APP_PASSWORD_FILE": pw_file})
    assert r.returncode == 0, r.stderr
    secret = entries(out)["ul_scram"]
    assert secret.startswith("SCRAM-SHA-256$")
    cluster.psql("ALTER ROLE ul_scram PASSWORD '%s'" % secret)
    os.chmod(out, 0o644)  # PgBouncer under the same test runs as the postgres OS user
    p = pooler(settings={"auth_file": out})
    with clients.connect(p, "appdb", "ul_scram", password="s3cret pass") as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "ul_scram"
    with pytest.raises(psycopg.OperationalError):
        clients.connect(p, "appdb", "ul_scram", password="wrong")
    cluster.psql("DROP ROLE ul_scram")


def test_userlist_from_server_copies_pg_authid_and_needs_a_superuser(d, cluster, pooler):
    out = os.path.join(d, "userlist.txt")
    env = {"PGHOST": cluster.host, "PGPORT": str(cluster.primary_port), "PGUSER": "postgres",
           "PGDATABASE": "postgres"}
    pw_file = os.path.join(d, "postgres_password")
    with open(pw_file, "w") as f:
        f.write(cluster.superuser_password + "\n")
    r = run_tool(["userlist", "--from-server", "--users=app,postgres", out], env=dict(env, PGPASSWORD_FILE=pw_file))
    assert r.returncode == 0, r.stderr
    assert entries(out) == {"app": cluster.secrets["app"], "postgres": cluster.secrets["postgres"]}
    os.chmod(out, 0o644)
    p = pooler(settings={"auth_file": out})
    with clients.connect(p, "appdb", "app") as c:          # SCRAM pass-through with the copied secret
        assert c.execute("SELECT current_user").fetchone()[0] == "app"

    other = os.path.join(d, "other.txt")
    r = run_tool(["userlist", "--from-server=user=app password=apppw dbname=appdb", other], env=env)
    assert r.returncode == 1 and "a superuser is needed" in r.stderr, r.stderr
    r = run_tool(["userlist", "--from-server", "--users=app,nosuchrole", other],
                 env=dict(env, PGPASSWORD=cluster.superuser_password))
    assert r.returncode == 1 and 'no login role "nosuchrole"' in r.stderr, r.stderr
    assert not os.path.exists(other)


def test_userlist_refuses_to_overwrite_without_force(d):
    out = os.path.join(d, "userlist.txt")
    with open(out, "w") as f:
        f.write('"keep" "me"\n')
    env = {"SAV3_USER": "sav3_user", "SAV3_PASSWORD": "pw"}
    r = run_tool(["userlist", out], env=env)
    assert r.returncode == 1 and "already exists: not overwritten (use --force to replace it)" in r.stderr
    assert open(out).read() == '"keep" "me"\n'
    r = run_tool(["userlist", "--force", out], env=env)
    assert r.returncode == 0, r.stderr
    assert set(entries(out)) == {"sav3_user"} and stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_userlist_refuses_bad_input_with_a_clear_message_and_no_file(d):
    out = os.path.join(d, "userlist.txt")
    cases = [
        ({"SAV3_USER": "sav3_user"}, ["--env", "SAV3"], "SAV3_PASSWORD is not set (nor SAV3_PASSWORD_FILE"),
        ({"SAV3_PASSWORD": "pw"}, ["--env", "SAV3"], "SAV3_USER is not set"),
        ({"POSTGRES_USER": "postgres"}, [], "POSTGRES_PASSWORD is not set"),
        ({}, [], "no users: set POSTGRES_USER and POSTGRES_PASSWORD"),
        ({"SAV3_USER": "u", "SAV3_PASSWORD": ""}, [], "SAV3_PASSWORD is empty"),
        ({"SAV3_USER": "u", "SAV3_PASSWORD_FILE": os.path.join(d, "missing")}, [], "SAV3_PASSWORD_FILE: cannot read"),
        ({"POSTGRES_USER": "x", "POSTGRES_PASSWORD": "a", "SAV3_USER": "x", "SAV3_PASSWORD": "b"}, [],
         'user "x" is given twice'),
        ({"SAV3_USER": "u", "SAV3_PASSWORD": "p"}, ["--env", "BAD-NAME"], "--env needs a variable name prefix"),
        ({"SAV3_USER": "u", "SAV3_PASSWORD": "p"}, ["--iterations", "0"], "--iterations needs a number"),
    ]
    for env, args, msg in cases:
        r = run_tool(["userlist"] + args + [out], env=env)
        assert r.returncode == 1, (env, args, r.stderr)
        assert msg in r.stderr, (env, args, r.stderr)
        assert files_in(d) == [], (env, args, files_in(d))

    env = {"SAV3_USER": "sav3_user", "SAV3_PASSWORD": "pw"}
    for path, msg in ((os.path.join(d, "no", "such", "dir", "userlist.txt"), "No such file or directory"),
                      ("/proc/pgsluice-userlist.txt", "cannot write /proc/pgsluice-userlist.txt")):
        r = run_tool(["userlist", path], env=env)
        assert r.returncode == 1 and msg in r.stderr, r.stderr
        assert "nothing written" not in r.stdout
        assert not os.path.exists(path)
    assert files_in(d) == []
    r = run_tool(["userlist"], env=env)
    assert r.returncode == 1 and "name the file to write" in r.stderr
