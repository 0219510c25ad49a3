# JupyterHub configuration for a class taking the CVAE course on one machine (`make hub`).
#
# Read it top to bottom, and change what your class needs. Every setting can also be given
# by environment variable, so the file itself need not be edited for a lab:
#   CVAE_HUB_STUDENTS  the roster: student user names, separated by spaces or commas (required)
#   CVAE_HUB_ADMIN     the instructor's user name, an admin of the hub (default: instructor)
#   CVAE_HUB_PORT      where students connect: http://127.0.0.1:PORT (default 8000)
#   CVAE_HUB_STATE     the hub's own files: database, cookie secret, first passwords (default
#                      hub/state, inside the instructor's private checkout)
#   CVAE_HUB_RELEASE   the course students run, built by `hub release` (default /srv/cvae-course)
#   CVAE_HUB_HOMES     where the hub creates its accounts' homes (default /home)
#   CVAE_HUB_IDLE      seconds of inactivity after which a student's server is stopped (3600)
#   CVAE_HUB_MEMORY, CVAE_HUB_CPU_SHARES, CVAE_HUB_PROCESSES   each student's caps (2G, 1024, 512)
#   CVAE_HUB_FAILED_LOGINS, CVAE_HUB_LOCKOUT   wrong passwords before a name is blocked (3), and
#                      for how many seconds (600)
# The book's hub guide explains what this file does, and what to change for a university.
import os
import sys

from cvae_lib.classroom.accounts import db_url, issued, roster
from cvae_lib.classroom.hub import (PROXY, admin_name, state_dir, student_spawn,
                                    student_stopped)
from cvae_lib.classroom.limits import caps_from_env

c = get_config()  # noqa: F821 - JupyterHub defines it when it loads this file

state = state_dir()
state.mkdir(mode=0o700, parents=True, exist_ok=True)
students = roster(os.environ.get("CVAE_HUB_STUDENTS", ""))
admin = admin_name()
caps_from_env()  # a mistyped cap stops the hub here, not at the first student's login
# Nobody may claim a name by logging in first: every account needs a password the instructor
# issued (`python -m cvae_lib.classroom.hub accounts`), the admin's above all.
unissued = [name for name in [admin, *students] if name not in issued(state)]
if unissued:
    raise SystemExit(f"No first password was issued for {', '.join(unissued)}: run `python -m "
                     f"cvae_lib.classroom.hub accounts` (make hub does) before the hub starts.")

# Network: this machine only. For a class on a network, put the hub behind a TLS proxy (nginx,
# Caddy) and keep it bound here; never expose plain HTTP.
port = int(os.environ.get("CVAE_HUB_PORT", 8000))  # the hub's API and the proxy's: the next two
c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = port + 1
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 2}"
c.ConfigurableHTTPProxy.command = [str(PROXY)]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.db_url = db_url(state)
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")

# Who may log in: the roster and the instructor, with the passwords the instructor issued
# (jupyterhub-nativeauthenticator with sign-up off). A few wrong passwords block a name for a
# while. A university uses its own login (OAuth, LTI from the learning platform) instead.
c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
c.NativeAuthenticator.enable_signup = False
c.NativeAuthenticator.allowed_failed_logins = int(os.environ.get("CVAE_HUB_FAILED_LOGINS", 3))
c.NativeAuthenticator.seconds_before_next_try = int(os.environ.get("CVAE_HUB_LOCKOUT", 600))
c.NativeAuthenticator.minimum_password_length = 10
c.NativeAuthenticator.check_common_password = True
c.Authenticator.allowed_users = set(students) | {admin}
c.Authenticator.admin_users = {admin}

# Each student's server: the course release's Python (never the instructor's checkout), run as
# the student's system user inside a cgroup that caps memory, CPU share and processes. The
# hooks check the account is one the hub created, make the cgroup, and after the server stops,
# kill whatever the student left running in it. The server's start page pulls the course with
# nbgitpuller from the release's git repository into ~/cvae-course (a first copy at the first
# login, the instructor's later changes merged into the student's copy at every login and every
# launch button of the book). nbgitpuller's own extension is replaced by cvae_pullguard, which
# lets a pull link fetch the course and nothing else.
c.Spawner.args = [
    # JupyterLab's terminals start a login shell, whose /etc/profile resets PATH: `python` there
    # would not be the course's. A plain shell keeps the server's PATH (the release's venv first).
    "--ServerApp.terminado_settings=shell_command=/bin/bash",
    "--ServerApp.jpserver_extensions=nbgitpuller=False",
    "--ServerApp.jpserver_extensions=cvae_pullguard=True",
]
c.Spawner.pre_spawn_hook = student_spawn
c.Spawner.post_stop_hook = student_stopped
c.Spawner.start_timeout = 120  # a cold laptop imports torch and JupyterLab in about 20 s
c.Spawner.http_timeout = 120

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
