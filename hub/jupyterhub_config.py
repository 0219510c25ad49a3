# JupyterHub configuration for a class taking the CVAE course on one machine (`make hub`).
#
# Read it top to bottom, and change what your class needs. Every setting can also be given
# by environment variable, so the file itself need not be edited for a lab:
#   CVAE_HUB_STUDENTS  the roster: student user names, separated by spaces or commas (required)
#   CVAE_HUB_ADMIN     the instructor's user name, an admin of the hub (default: instructor)
#   CVAE_HUB_PORT      where students connect: http://127.0.0.1:PORT (default 8000)
#   CVAE_HUB_STATE     the hub's own files: database, cookie secret, passwords (default hub/state)
#   CVAE_HUB_HOMES     where student homes are created (default /home)
#   CVAE_HUB_IDLE      seconds of inactivity after which a student's server is stopped (3600)
# The README's "Run the class on a JupyterHub" section explains what this file does, and what to
# change for a university deployment (authenticator, TLS, spawner limits).
import os
import sys
from pathlib import Path

from cvae_lib.classroom.hub import PROXY, roster, student_spawn

c = get_config()  # noqa: F821 - JupyterHub defines it when it loads this file

state = Path(os.environ.get("CVAE_HUB_STATE", Path(__file__).parent / "state"))
state.mkdir(mode=0o700, parents=True, exist_ok=True)
students = roster(os.environ.get("CVAE_HUB_STUDENTS", ""))
admin = os.environ.get("CVAE_HUB_ADMIN", "instructor")

# Network: this machine only. For a class on a network, put the hub behind a TLS proxy (nginx,
# Caddy) and keep it bound here; never expose plain HTTP.
port = int(os.environ.get("CVAE_HUB_PORT", 8000))  # the hub's API and the proxy's: the next two
c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = port + 1
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 2}"
c.ConfigurableHTTPProxy.command = [str(PROXY)]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")

# Who may log in: the roster and the instructor. A lab's authenticator: each student chooses
# a password at their first login (FirstUseAuthenticator); a university uses its own (OAuth,
# LTI from the learning platform) instead.
c.JupyterHub.authenticator_class = "firstuseauthenticator.FirstUseAuthenticator"
c.FirstUseAuthenticator.dbm_path = str(state / "passwords.dbm")
c.FirstUseAuthenticator.create_users = False
c.FirstUseAuthenticator.min_password_length = 8
c.Authenticator.allowed_users = set(students) | {admin}
c.Authenticator.admin_users = {admin}

# Each student's server: the course's own environment, run as the student's system user
# (LocalProcessSpawner, so the hub runs as root), in their own copy of the notebooks. The hook
# creates the user and the copy at first login and points the course at the prepared models.
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.pre_spawn_hook = lambda spawner: student_spawn(spawner)
c.Spawner.start_timeout = 120  # a cold laptop imports torch and JupyterLab in about 20 s
c.Spawner.http_timeout = 120
# LocalProcessSpawner does not enforce memory or CPU limits (it only passes them on as
# MEM_LIMIT / CPU_LIMIT). On a server with systemd, jupyterhub-systemdspawner enforces them:
#   c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
#   c.SystemdSpawner.mem_limit = "3G"; c.SystemdSpawner.cpu_limit = 2.0
# (3 GB and 2 cores a student: see benchmarks/bench_hub.py for what the course needs).
c.Spawner.mem_limit = "3G"
c.Spawner.cpu_limit = 2.0

# Idle servers are stopped, so a forgotten browser tab does not hold memory all evening.
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                f"--timeout={int(os.environ.get('CVAE_HUB_IDLE', 3600))}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
