"""Who may log in to the class hub: accounts the instructor issued, and only those.

Introduced in the book's hub guide. ``python -m cvae_lib.classroom.hub accounts`` runs before
the hub accepts a login: it creates a system user for the instructor and each student of the
roster (a private home under ``CVAE_HUB_HOMES``), records them as the hub's own, and gives each
a first password that only the instructor sees (``first-passwords.txt`` in the hub's state,
mode 0600). The hub logs people in with jupyterhub-nativeauthenticator with sign-up switched
off, so no name can be claimed by whoever comes first, and it blocks a name for a while after
a few wrong passwords. Everyone changes their first password at ``/hub/change-password``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import subprocess
from pathlib import Path

import bcrypt

from cvae_lib.infra.storage import atomic_write

USERNAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
ACCOUNTS = "accounts.json"  # the system users this hub created: {name: uid}
SLIPS = "first-passwords.txt"
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or off a slip


def roster(text: str) -> list[str]:
    """The student names in ``text`` (commas, spaces or lines), checked as system user names."""
    names = [name for name in re.split(r"[\s,]+", text) if name]
    bad = [name for name in names if not USERNAME.fullmatch(name)]
    if bad:
        raise ValueError(f"not a valid student user name: {', '.join(map(repr, bad))}; use "
                         f"lower-case letters, digits, '-' and '_', starting with a letter "
                         f"(at most 32 characters)")
    if not names:
        raise ValueError("the class roster is empty: set CVAE_HUB_STUDENTS to the students' "
                         "user names, e.g. CVAE_HUB_STUDENTS='alice bob'")
    return list(dict.fromkeys(names))


def db_url(state: Path) -> str:
    """The hub's database, where its authenticator keeps the password hashes."""
    return f"sqlite:///{state / 'jupyterhub.sqlite'}"


def created(state: Path) -> dict[str, int]:
    """The system users this hub created, by name, with their uid."""
    path = state / ACCOUNTS
    return json.loads(path.read_text()) if path.is_file() else {}


def own_user(name: str, state: Path, homes: Path) -> pwd.struct_passwd:
    """``name``'s system user if this hub made it (same uid, home under ``homes``); else raise."""
    uid = created(state).get(name)
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        user = None
    if uid is None or user is None or user.pw_uid != uid or Path(user.pw_dir).parent != homes:
        raise PermissionError(f"{name!r} is not an account this hub created (in {homes}): run "
                              f"`python -m cvae_lib.classroom.hub accounts` with {name!r} on the "
                              f"roster, or remove the name from CVAE_HUB_STUDENTS")
    return user


def create_user(name: str, state: Path, homes: Path) -> pwd.struct_passwd:
    """A new system user ``name`` with a private home under ``homes``; never adopt one."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        raise FileExistsError(f"a system account {name!r} already exists and this hub did not "
                              f"create it: the hub never adopts an account (its files and groups "
                              f"are not the course's). Use another name on the roster, or remove "
                              f"that account (`userdel {name}`) if it is a leftover")
    homes.mkdir(mode=0o755, parents=True, exist_ok=True)
    subprocess.run(["useradd", "--create-home", "--home-dir", str(homes / name), "--shell",
                    "/bin/bash", "--user-group", name], check=True, capture_output=True, text=True)
    user = pwd.getpwnam(name)
    (homes / name).chmod(0o700)  # no other student may read or change it
    mine = {**created(state), name: user.pw_uid}
    atomic_write(state / ACCOUNTS, lambda f: f.write(json.dumps(mine, indent=1).encode()))
    (state / ACCOUNTS).chmod(0o600)
    return user


def first_password() -> str:
    """A fresh first password, easy to copy from a slip: 'xxxx-xxxx-xxxx' (about 59 bits)."""
    return "-".join("".join(secrets.choice(ALPHABET) for _ in range(4)) for _ in range(3))


def _session(state: Path):  # a SQLAlchemy session on JupyterHub's own schema
    """A session on the hub's database, with the authenticator's table created if missing."""
    import nativeauthenticator.orm  # noqa: F401 - registers its table in JupyterHub's schema
    from jupyterhub import orm

    return orm.new_session_factory(db_url(state))()


def issued(state: Path) -> set[str]:
    """The names that have a password the instructor issued (the only ones that can log in)."""
    from nativeauthenticator.orm import UserInfo

    if not (state / "jupyterhub.sqlite").is_file():
        return set()
    db = _session(state)
    try:
        return {info.username for info in UserInfo.all_users(db) if info.is_authorized}
    finally:
        db.close()


def issue(names: list[str], state: Path, reissue: bool = False) -> dict[str, str]:
    """Give each name lacking one (every name if ``reissue``) a new first password."""
    from nativeauthenticator.orm import UserInfo

    db, given = _session(state), {}
    try:
        for name in names:
            info = UserInfo.find(db, name)
            if info is not None and not reissue:
                continue
            given[name] = first_password()
            hashed = bcrypt.hashpw(given[name].encode(), bcrypt.gensalt())
            if info is None:
                db.add(UserInfo(username=name, password=hashed, is_authorized=True))
            else:
                info.password, info.is_authorized = hashed, True
        db.commit()
    finally:
        db.close()
    return given


def setup_accounts(names: list[str], admin: str, state: Path, homes: Path,
                   reissue: list[str] | None = None) -> dict[str, str]:
    """System users and first passwords for ``admin`` and ``names``; the new passwords."""
    everyone = roster(" ".join([admin, *names]))
    unknown = sorted(set(reissue or []) - set(everyone))
    if unknown:
        raise ValueError(f"cannot reissue a password for {unknown}: not on the roster or the "
                         f"admin ({', '.join(everyone)})")
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    mine = created(state)
    for name in everyone:
        if name not in mine:
            create_user(name, state, homes)
        own_user(name, state, homes)
    given = issue(everyone, state)
    given.update(issue(list(reissue or []), state, reissue=True))
    if given:
        lines = "".join(f"{name}\t{password}\n" for name, password in given.items())
        slips = state / SLIPS
        fd = os.open(slips, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "a") as out:
            out.write(lines)
    return given
