"""System users and a group for tests of non-root clients, made for a test
module and removed afterwards (only those the module made)."""
import grp
import pwd
import subprocess


def _run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def make_users(group, members=(), others=(), supplementary=False):
    """Creates `group`, `members` (primary group `group`, or with `supplementary` a
    group of their own and `group` besides) and `others` where missing; returns a
    function that removes what was made."""
    made_group, made = [], []
    try:
        grp.getgrnam(group)
    except KeyError:
        _run("groupadd", "--system", group)
        made_group = [group]
    member = ["-G" if supplementary else "-g", group]
    for name, extra in [(m, member) for m in members] + [(o, []) for o in others]:
        try:
            pwd.getpwnam(name)
        except KeyError:
            _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 *extra, name)
            made.append(name)

    def remove():
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, timeout=60)
        for name in made_group:
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)
    return remove
