#!/usr/bin/python
"""Ansible module: keep a mosquitto password file equal to a set of users and passwords, idempotently.

Why a module: ``mosquitto_passwd`` salts every hash at random, so regenerating the file on each run would
always report a change (and reload the broker). This module verifies each user's password against the
hash already in the file and rewrites the file only when a user was added, removed or changed. New
hashes use mosquitto 2.0's own format (``$7$``: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt), so
passwords never appear on a command line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: mosquitto_passwd
short_description: Maintain a mosquitto password file
description: Verifies existing hashes and rewrites the file only when users or passwords changed.
options:
  path: {description: The password file., type: path, required: true}
  users: {description: Username to password., type: dict, required: true}
  mode: {description: File mode., type: str, default: "0640"}
  group: {description: Group of the file (the broker drops to it)., type: str, default: root}
"""

ITERATIONS = 101
SALT_BYTES = 12


def _hash7(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify(password: str, stored: str) -> bool:
    """True when ``stored`` (a ``$6$`` or ``$7$`` mosquitto hash) is the hash of ``password``."""
    parts = stored.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            expected = _hash7(password, base64.b64decode(parts[3]), int(parts[2]))
        elif len(parts) == 4 and parts[1] == "6":
            salt = base64.b64decode(parts[2])
            digest = hashlib.sha512(password.encode() + salt).digest()
            expected = f"$6${parts[2]}${base64.b64encode(digest).decode()}"
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(expected, stored)


def read_entries(path: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                user, sep, stored = line.strip().partition(":")
                if sep:
                    entries[user] = stored
    except FileNotFoundError:
        pass
    return entries


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "users": {"type": "dict", "required": True, "no_log": True},
            "mode": {"type": "str", "default": "0640"},
            "group": {"type": "str", "default": "root"},
        },
        supports_check_mode=True,
    )
    path, users = module.params["path"], module.params["users"]
    for user in users:
        if not user or ":" in user or any(c.isspace() for c in user):
            module.fail_json(msg=f"invalid MQTT username {user!r}")
    current = read_entries(path)
    keep = {u: h for u, h in current.items() if u in users and verify(str(users[u]), h)}
    changed = set(keep) != set(users) or set(current) != set(users)
    if changed and not module.check_mode:
        lines = [
            f"{u}:{keep.get(u) or _hash7(str(p), os.urandom(SALT_BYTES))}\n" for u, p in sorted(users.items())
        ]
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".passwd-")
        with os.fdopen(fd, "w") as f:
            f.writelines(lines)
        module.atomic_move(tmp, path)
    file_args = module.load_file_common_arguments(
        {"path": path, "mode": module.params["mode"], "owner": "root", "group": module.params["group"]}
    )
    if os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    added = sorted(set(users) - set(current))
    removed = sorted(set(current) - set(users))
    module.exit_json(changed=changed, added=added, removed=removed)


if __name__ == "__main__":
    main()
