# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's install routes and the new user's inventory, played the way a user would (issue 17).

Everything runs on a COPY of the checkout (its tracked files and the untracked ones git does not ignore,
committed into a git repository of its own, as a fresh clone would be), never in the checkout:

- `make setup-controller && . .venv/bin/activate` makes a controller venv with requirements/controller.txt
  only (no development tool in it); that venv runs everything below;
- `make build` builds the tarball; it holds what the roles read at run time and nothing of the lab,
  the tests or the toolchain; copied into a project's folder and installed there into an EMPTY
  collections path (a fresh HOME, so
  ~/.ansible/collections is empty; nothing else on the collections path holds the collection), it is
  used from another folder: `ansible-playbook homelab.gpu_passthrough.site --syntax-check`, ansible-doc for
  every role, whisper_api's controller step building the service wheel from the installed copy, and
  the README's project commands (the inventory copied out of the installed collection);
- the git route: docs/requirements.example.yml with its URL replaced by the copy's repository
  (file://), `ansible-galaxy collection install -r requirements.yml`, into another empty HOME: the
  same files as the tarball;
- the inventory: `cp -r inventories/homelab inventories/mylab`, `ansible-vault rekey` (example password
  -> a new one) and `ansible-vault edit` (an EDITOR script writes the two secrets), then the README's
  site.yml command with the new password, `--list-hosts --list-tasks` appended (192.168.20.x is never
  contacted), and the copy's variables against the roles' argument specs.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import HOMELAB_README, README, REPO, VAULT_EXAMPLE_PASSWORD, commands, run_pty
# controller, copy, work: module-scoped fixtures, shared with the persona test (tests/readme/user.py)
from user import (  # noqa: F401  pylint: disable=unused-import
    DEV_TOOLS, LIST_ONLY, NEW_PASSWORD, STAGES, controller, copy, new_home, readme_command, sh, user_env, work,
)


@pytest.fixture(scope="module")
def tarball(controller, work) -> Path:
    """README: `make build` in the copy, with the controller venv only."""
    res = sh(readme_command(README, "make build"), controller, user_env(controller, work / "home-setup"))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    install = readme_command(README, "ansible-galaxy collection install homelab-")
    path = controller / "dist" / install.split()[-1]
    version = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    assert path.name == f"homelab-gpu_passthrough-{version}.tar.gz" and path.is_file(), \
        f"the README installs {path.name}; make build wrote {sorted(p.name for p in (controller / 'dist').iterdir())}"
    return path


def members(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()} - {"MANIFEST.json", "FILES.json"}


def installed_files(root: Path) -> set[str]:
    base = root / "ansible_collections" / "homelab" / "gpu_passthrough"
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()} - {"MANIFEST.json", "FILES.json"}


def test_setup_controller_installs_the_controller_only(controller, work):
    freeze = (work / "pip-freeze.txt").read_text(encoding="utf-8").lower()
    pins = [ln.strip() for ln in (REPO / "requirements/controller.txt").read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert {p.split("==")[0] for p in pins} == {"ansible-core", "proxmoxer", "requests"}, pins
    for pin in pins:
        assert pin.lower() in freeze, f"{pin} is not in the controller venv:\n{freeze}"
    for tool in DEV_TOOLS:
        assert f"\n{tool}==" not in freeze, f"the controller venv holds the dev tool {tool}"


def test_build_holds_what_the_roles_need_and_nothing_of_the_dev_state(tarball):
    names = members(tarball)
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    # run time: every file of the roles, plugins, playbooks and the service's source, and the files the
    # roles read relative to the collection (whisper_api_source_dir, its lock file, the smoke audio)
    needed = [f for f in tracked if f.startswith(("roles/", "plugins/", "playbooks/", "meta/", "service/src/",
                                                  "inventories/homelab/"))]
    needed += ["service/pyproject.toml", "service/requirements.lock", "service/README.md",
               "service/tests/data/jfk.flac", "requirements/controller.txt", "README.md", "LICENSE",
               "docs/vm-template.md", "docs/requirements.example.yml"]
    missing = sorted(set(needed) - names)
    assert not missing, f"the tarball lacks files the collection needs at run time: {missing}"
    dev = sorted(n for n in names if n.startswith(("tests/", "lab/", "molecule/", "demo/", "mk/", ".", "dist/",
                                                   "inventories/lab/", "service/bench/", "changelogs/fragments/"))
                 or n in {"Makefile", "ansible.cfg", "requirements/dev.txt", "requirements/constraints.txt",
                          "docs/lab.md", "service/requirements-test.lock"}
                 or re.fullmatch(r"service/tests/[^/]+\.py", n) or "__pycache__" in n or ".egg-info" in n)
    assert not dev, f"the tarball holds development, lab or test files: {dev}"


@pytest.fixture(scope="module")
def installed(tarball, controller, work):
    """README: the tarball copied into a project's folder, `ansible-galaxy collection install
    homelab-gpu_passthrough-<version>.tar.gz` there, verbatim, with a fresh HOME."""
    home = new_home(work, "home-tarball")
    project = work / "project"
    project.mkdir()
    shutil.copy(tarball, project / tarball.name)
    res = sh(readme_command(README, "ansible-galaxy collection install homelab-"), project, user_env(controller, home))
    assert res.returncode == 0, res.stdout + res.stderr
    root = home / ".ansible" / "collections"
    assert (root / "ansible_collections/homelab/gpu_passthrough/MANIFEST.json").is_file(), res.stdout
    return home, root, project


def test_the_installed_collection_is_the_only_one_seen(installed, controller):
    home, root, project = installed
    res = sh("ansible-galaxy collection list homelab.gpu_passthrough", project, user_env(controller, home))
    assert res.returncode == 0, res.stdout + res.stderr
    seen = re.findall(r"^# (/\S+)", res.stdout, flags=re.M)
    assert seen == [str(root / "ansible_collections")], res.stdout


def test_reinstall_with_force(installed, controller):
    """Upgrades: the README's install command again, with ansible-galaxy's `--force`, replaces the copy."""
    home, root, project = installed
    marker = root / "ansible_collections/homelab/gpu_passthrough/roles/stale-file"
    marker.write_text("from an older version\n", encoding="utf-8")
    cmd = readme_command(README, "ansible-galaxy collection install homelab-")
    res = sh(cmd, project, user_env(controller, home))
    assert res.returncode == 0 and marker.exists(), res.stdout + res.stderr   # without --force: left alone
    res = sh(cmd + " --force", project, user_env(controller, home))
    assert res.returncode == 0, res.stdout + res.stderr
    assert not marker.exists(), "--force kept a file of the old copy"


def test_site_syntax_check_from_another_folder(installed, controller):
    home, root, project = installed
    assert not (project / "ansible.cfg").exists()
    res = sh("ansible-playbook -i localhost, homelab.gpu_passthrough.site --syntax-check", project,
             user_env(controller, home))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"playbook: {root}/ansible_collections/homelab/gpu_passthrough/playbooks/site.yml" in res.stdout, res.stdout


def test_ansible_doc_roles_from_the_installed_copy(installed, controller):
    home, root, project = installed
    for role in sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml")):
        res = sh(f"ansible-doc -t role homelab.gpu_passthrough.{role}", project, user_env(controller, home))
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"ROLE: *homelab.gpu_passthrough.{role}* ({root}/ansible_collections/homelab/gpu_passthrough)" \
            in res.stdout, res.stdout[:600]
        assert "ENTRY POINT: *main*" in res.stdout and f"{role}_" in res.stdout, res.stdout[:600]


def test_whisper_api_builds_its_wheel_from_the_installed_copy(installed, controller):
    """whisper_api's controller step, from the installed collection: the wheel holds the installed
    copy's service/src (no checkout is on any path here: fresh HOME, no ansible.cfg)."""
    home, root, project = installed
    shutil.copy(REPO / "tests/readme/installed_whisper_wheel.yml", project / "wheel.yml")
    res = sh("ansible-playbook -i localhost, wheel.yml", project, user_env(controller, home), timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    wheel = re.search(r"wheel (\S+/homelab_whisper_api-[\d.]+-py3-none-any\.whl)", res.stdout)
    assert wheel, res.stdout[-2000:]
    src = root / "ansible_collections/homelab/gpu_passthrough/service/src"
    with zipfile.ZipFile(wheel.group(1)) as whl:
        packaged = {n for n in whl.namelist() if n.startswith("whisper_api/") and n.endswith(".py")}
        assert packaged == {str(p.relative_to(src)) for p in src.rglob("*.py")}, packaged
        for name in packaged:
            assert whl.read(name) == (src / name).read_bytes(), name


def test_project_commands_on_the_installed_copy(installed, controller):
    """README: the inventory copied out of the installed collection, site.yml by its FQCN."""
    home, root, project = installed
    cp = readme_command(README, "cp -r ~/.ansible/collections/")
    res = sh(cp, project, user_env(controller, home))
    assert res.returncode == 0, res.stdout + res.stderr
    site = readme_command(README, "ansible-playbook -i inventory ")
    rc, out = run_pty(site.split() + LIST_ONLY, [(r"Vault password", VAULT_EXAMPLE_PASSWORD)], cwd=project,
                      extra_env=user_env(controller, home))
    assert rc == 0, out
    for stage in STAGES:
        assert re.search(rf"TAGS: \[[^\]]*\b{stage}\b", out), f"no task tagged {stage}:\n{out}"


def test_git_url_route_installs_the_same_files(tarball, controller, work):
    """docs/requirements.example.yml with the copy's repository as its URL, then the README's command."""
    home = new_home(work, "home-git")
    project = work / "project-git"
    project.mkdir()
    example = yaml.safe_load((REPO / "docs/requirements.example.yml").read_text(encoding="utf-8"))
    (entry,) = example["collections"]
    assert entry["type"] == "git" and entry["name"] == yaml.safe_load(
        (REPO / "galaxy.yml").read_text(encoding="utf-8"))["repository"] + ".git", entry
    entry["name"] = f"file://{controller}"
    (project / "requirements.yml").write_text(yaml.safe_dump(example), encoding="utf-8")
    res = sh(readme_command(README, "ansible-galaxy collection install -r requirements.yml"), project,
             user_env(controller, home))
    assert res.returncode == 0, res.stdout + res.stderr
    got = installed_files(home / ".ansible" / "collections")
    assert got == members(tarball), {"only from git": sorted(got - members(tarball)),
                                     "only in the tarball": sorted(members(tarball) - got)}


@pytest.fixture(scope="module")
def mylab(controller, work):
    """The inventory README's commands, verbatim, in the copy: cp -r, rekey, edit."""
    home = new_home(work, "home-mylab")
    env = user_env(controller, home)
    cmds = [c.text for c in commands(HOMELAB_README) if c.kind == "sh"]
    assert cmds[0] == readme_command(README, "cp -r inventories/homelab ") == "cp -r inventories/homelab inventories/mylab"
    res = sh(cmds[0], controller, env)
    assert res.returncode == 0, res.stderr
    rekey = readme_command(README, "ansible-vault rekey ")
    assert rekey in cmds
    rc, out = run_pty(rekey.split(), [(r"Vault password", VAULT_EXAMPLE_PASSWORD), (r"New Vault password", NEW_PASSWORD),
                                      (r"Confirm New Vault password", NEW_PASSWORD)], cwd=controller, extra_env=env)
    assert rc == 0 and "Rekey successful" in out, out
    edit = readme_command(README, "ansible-vault edit ")
    assert edit in cmds
    editor = work / "editor.sh"
    editor.write_text("#!/bin/sh\ngrep -q vault_whisper_api_key \"$1\" || exit 3\n"
                      "printf 'vault_proxmox_api_token_secret: 0b6a-my-token\\n"
                      "vault_whisper_api_key: my-api-key\\n' > \"$1\"\n", encoding="utf-8")
    editor.chmod(0o755)
    rc, out = run_pty(edit.split(), [(r"Vault password", NEW_PASSWORD)], cwd=controller,
                      extra_env={**env, "EDITOR": str(editor)})
    assert rc == 0, out
    return controller, home


def test_vault_rekey_and_edit_on_the_copy(mylab):
    copy, home = mylab
    vault = (copy / "inventories/mylab/group_vars/all/vault.yml").read_text(encoding="utf-8")
    assert vault.startswith("$ANSIBLE_VAULT;1.1;AES256"), vault[:80]
    rc, out = run_pty(["ansible-vault", "view", "inventories/mylab/group_vars/all/vault.yml"],
                      [(r"Vault password", NEW_PASSWORD)], cwd=copy, extra_env=user_env(copy, home))
    assert rc == 0 and "0b6a-my-token" in out and "my-api-key" in out, out
    # the example password no longer opens the copy; the checkout's example vault is untouched
    rc, out = run_pty(["ansible-vault", "view", "inventories/mylab/group_vars/all/vault.yml"],
                      [(r"Vault password", VAULT_EXAMPLE_PASSWORD)], cwd=copy, extra_env=user_env(copy, home))
    assert rc != 0, out
    assert (copy / "inventories/homelab/group_vars/all/vault.yml").read_bytes() == \
        (REPO / "inventories/homelab/group_vars/all/vault.yml").read_bytes()


def homelab_site_commands():
    out = []
    for readme in (README, HOMELAB_README):
        for c in commands(readme):
            # (the README's --tags vm,lb command runs in test_readme_static.py, on the multi_gpu example)
            if c.text.startswith("ansible-playbook -i inventories/mylab") and "playbooks/site.yml" in c.text \
                    and "--tags" not in c.text:
                out.append(pytest.param(c.text, id=f"{readme.parent.name}:{c.line}"))
    assert len(out) == 2, out
    return out


@pytest.mark.parametrize("cmd", homelab_site_commands())
def test_mylab_site_command_loads(cmd, mylab):
    """The README's site.yml command on the copied inventory, in the controller venv, with the new
    password: Ansible loads the inventory, the vault, the playbooks and the roles, and stops before
    contacting the hosts; then the copy's variables against the roles' argument specs."""
    copy, home = mylab
    env = user_env(copy, home)
    rc, out = run_pty(cmd.split() + LIST_ONLY, [(r"Vault password", NEW_PASSWORD)], cwd=copy, extra_env=env)
    assert rc == 0, out
    assert "server" in out, out
    # gpu_guests is empty in the inventory: the vm stage adds the VM (add_host) when the run gets there
    assert re.search(r"play #\d+ \(gpu_guests\): NVIDIA driver in the guest.*\n\s+pattern: \['gpu_guests'\]\n\s+hosts \(0\):",
                     out), out
    for stage in STAGES:
        assert re.search(rf"TAGS: \[[^\]]*\b{stage}\b", out), f"no task tagged {stage}:\n{out}"
    rc, out = run_pty(["ansible-playbook", "-i", "inventories/mylab", "--ask-vault-pass",
                       "tests/readme/homelab_argument_specs.yml"], [(r"Vault password", NEW_PASSWORD)],
                      cwd=copy, extra_env=env)
    assert rc == 0, out
    assert "proxmox_vfio, proxmox_pci_mapping, proxmox_gpu_vm accept" in out, out
    assert "nvidia_driver, whisper_api accept" in out, out


def test_mylab_bootstrap_command_loads(mylab):
    """The README's bootstrap command on the copied inventory with the new vault password: it loads the
    inventory, the vault and the role (listed, not run: 192.168.20.x is not reachable). It runs for real
    against the simulated PVE API, with the simulated pveum on the node, in
    tests/integration/pve/test_pve_bootstrap.py (make test-pve)."""
    copy, home = mylab
    cmd = readme_command(README, "ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/bootstrap.yml")
    rc, out = run_pty(cmd.split() + LIST_ONLY, [(r"Vault password", NEW_PASSWORD)], cwd=copy,
                      extra_env=user_env(copy, home))
    assert rc == 0, out
    assert "server" in out and "whisper-gpu" not in out, out
    for task in ("User, a role per path of the grant list, ACLs, privilege-separated token (pveum)",
                 "Copy it to the controller (for proxmox_api_ca_path and validate_certs)",
                 "Write token id, token secret, CA path and API key into the vault (encrypted on the controller)"):
        assert task in out, out


def test_ssh_public_key_file_is_a_variable(mylab):
    """proxmox_gpu_vm_ssh_public_key reads the file ssh_public_key_file names: another key works, a
    missing one fails with the path in the message."""
    copy, home = mylab
    env = user_env(copy, home)
    other = home / "other.pub"
    shutil.copy(home / ".ssh" / "id_ed25519.pub", other)
    for value, ok in ((str(other), True), (str(home / "missing.pub"), False)):
        rc, out = run_pty(["ansible", "-i", "inventories/mylab", "--ask-vault-pass", "server", "-m",
                           "ansible.builtin.debug", "-a", "var=proxmox_gpu_vm_ssh_public_key",
                           "-e", f"ssh_public_key_file={value}"],
                          [(r"Vault password", NEW_PASSWORD)], cwd=copy, extra_env=env)
        if ok:
            assert rc == 0 and "ssh-ed25519 " in out, out
        else:
            assert rc != 0 and "missing.pub" in out, out


def test_whisper_api_key_command():
    cmd = readme_command(README, "python3 -c ", kind="inline")
    assert cmd == readme_command(HOMELAB_README, "python3 -c ", kind="inline")
    keys = set()
    for _attempt in range(2):
        res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True)
        key = res.stdout.strip()
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key), key
        keys.add(key)
    assert len(keys) == 2
