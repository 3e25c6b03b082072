# SPDX-License-Identifier: GPL-3.0-or-later
"""Every command in the README is run by a test or by .ci/run (issue 8): the accounting, and the
commands that need no lab.

COVERAGE maps each command that tests/readme/readme_commands.py finds in README.md and in
inventories/homelab/README.md to the test that runs it. A command no entry claims fails
test_every_readme_command_is_run_by_a_test; an entry naming a test that does not exist fails too.
The commands that talk to the deployed API run in tests/readme/test_readme_demo.py, after that
module has run `make demo` itself (make test-demo); the install routes and the copied inventory run in
tests/readme/test_install.py, on a copy of the checkout with the controller-only venv.

What "run" means for the commands written for a real Proxmox node (the homelab inventory): they are
run verbatim on a pseudo-terminal that types the example vault password, with `--list-hosts
--list-tasks` appended so that Ansible loads the inventory, the vault, the playbooks and the roles and
stops before contacting 192.168.20.x, which this machine must not reach; their variables are checked
against the roles' argument specs. The same playbooks run for real against the lab in make demo.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import readme_commands
import yaml

from helpers import HOMELAB_README, README, READMES, REPO, VAULT_EXAMPLE_PASSWORD, bash, commands, open_webui_rows, run_pty

DEMO = "tests/readme/test_readme_demo.py"
STATIC = "tests/readme/test_readme_static.py"
PVE = "tests/integration/pve/test_pve_playbooks.py"
INSTALL = "tests/readme/test_install.py"
PERSONA = "tests/readme/test_readme_persona.py"
SEVERAL = "tests/integration/pve/test_pve_several_gpus.py"

# (README file, regex on the command text, the test that runs it)
COVERAGE = [
    (README, r"make demo", f"{DEMO}::test_make_demo_prints_the_transcript"),
    (README, r"make test", f"{STATIC}::test_make_test_is_what_ci_runs"),
    (README, r"make demo-down", f"{DEMO}::test_make_demo_down_leaves_nothing"),
    (README, r"lspci -nnD", f"{DEMO}::test_lspci_on_the_node_shows_the_gpu_address"),
    (README, r"make setup-controller( && \. \.venv/bin/activate)?", f"{INSTALL}::test_setup_controller_installs_the_controller_only"),
    (README, r"make setup", f"{STATIC}::test_make_setup_is_the_development_toolchain"),
    (README, r"make build", f"{INSTALL}::test_build_holds_what_the_roles_need_and_nothing_of_the_dev_state"),
    (README, r"ansible-galaxy collection install homelab-gpu_passthrough-[\d.]+\.tar\.gz",
     f"{INSTALL}::test_the_installed_collection_is_the_only_one_seen"),
    (README, r"--force", f"{INSTALL}::test_reinstall_with_force"),
    (README, r"ansible-galaxy collection install -r requirements\.yml", f"{INSTALL}::test_git_url_route_installs_the_same_files"),
    (README, r"cp -r ~/\.ansible/collections/ansible_collections/homelab/gpu_passthrough/inventories/homelab inventory",
     f"{INSTALL}::test_project_commands_on_the_installed_copy"),
    (README, r"ansible-playbook -i inventory --ask-vault-pass homelab\.gpu_passthrough\.site --check --diff",
     f"{INSTALL}::test_project_commands_on_the_installed_copy"),
    (README, r"cp -r inventories/homelab inventories/mylab", f"{INSTALL}::test_vault_rekey_and_edit_on_the_copy"),
    (README, r"ansible-vault (rekey|edit)( inventories/mylab/group_vars/all/vault\.yml)?",
     f"{INSTALL}::test_vault_rekey_and_edit_on_the_copy"),
    (README, r"python3 -c 'import secrets; print\(secrets\.token_urlsafe\(32\)\)'", f"{INSTALL}::test_whisper_api_key_command"),
    (README, r"ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/site\.yml --check --diff",
     f"{INSTALL}::test_mylab_site_command_loads"),
    (README, r"--check( --diff)?", f"{INSTALL}::test_mylab_site_command_loads"),
    (README, r"ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/bootstrap\.yml",
     f"{INSTALL}::test_mylab_bootstrap_command_loads"),
    (README, r"-e proxmox_vfio_reboot_ok=true", f"{STATIC}::test_homelab_reboot_consent_is_a_role_variable"),
    (README, r"ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/undo\.yml -e proxmox_vfio_reboot_ok=true",
     f"{PERSONA}::test_4_undo_puts_the_host_back_after_a_reboot"),
    (README, r"ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/undo\.yml --check --diff",
     f"{PERSONA}::test_4_undo_puts_the_host_back_after_a_reboot"),
    (README, r"--tags host\|mapping\|vm\|driver\|whisper\|lb\|verify", f"{STATIC}::test_stage_tags_and_playbooks"),
    (README, r"ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/site\.yml --tags vm,lb",
     f"{STATIC}::test_multi_gpu_example_and_the_lb_refresh_command"),
    (README, r"proxmox_vfio_gpus: \[.*", f"{STATIC}::test_several_gpus_snippet_is_what_test_modules_runs"),
    (README, r"ansible-doc homelab\.gpu_passthrough\.\w+", f"{STATIC}::test_ansible_doc_modules"),
    (README, r"ansible-doc -t role homelab\.gpu_passthrough\.<role>", f"{STATIC}::test_ansible_doc_roles"),
    (README, r"-vvv", f"{PVE}::test_simulated_pve_roles_check_converge_idempotence_and_no_secret"),
    (README, r"curl .*", f"{DEMO}::test_readme_curl_commands"),
    (README, r"from openai import OpenAI\n.*", f"{DEMO}::test_readme_openai_python_example"),
    (README, r"speech:\n.*", f"{DEMO}::test_readme_librechat_config"),
    (README, r"make bench-service", f"{STATIC}::test_make_bench_service_prints_the_table"),
    (README, r"make help", "tests/unit/test_make_help.py::test_every_public_target_is_listed_with_a_description"),
    (README, r"make test-(vfio|demo)", f"{STATIC}::test_the_demo_module_is_run_by_make_test"),
    (README, r"make test-(lab-vm|vfio-sdboot|lb)", "tests/unit/test_make_help.py::test_make_test_runs_every_test_target"),
    (README, r"make test-readme", f"{STATIC}::test_the_demo_module_is_run_by_make_test"),
    (HOMELAB_README, r"cp -r inventories/homelab inventories/mylab", f"{INSTALL}::test_vault_rekey_and_edit_on_the_copy"),
    (HOMELAB_README, r"ansible-vault (rekey|edit)( inventories/mylab/group_vars/all/vault\.yml)?",
     f"{INSTALL}::test_vault_rekey_and_edit_on_the_copy"),
    (HOMELAB_README, r"ansible-playbook -i inventories/mylab --ask-vault-pass playbooks/site\.yml --check --diff",
     f"{INSTALL}::test_mylab_site_command_loads"),
    (HOMELAB_README, r"python3 -c 'import secrets; print\(secrets\.token_urlsafe\(32\)\)'",
     f"{INSTALL}::test_whisper_api_key_command"),
    (HOMELAB_README, r"lspci -nnD", f"{DEMO}::test_lspci_on_the_node_shows_the_gpu_address"),
    (README, r"ansible-playbook playbooks/fetch_model\.yml -e whisper_api_model=\S+",
     "tests/readme/test_readme_fetch_model.py::test_readme_fetch_model_command"),
    (HOMELAB_README, r"-e proxmox_vfio_reboot_ok=true", f"{STATIC}::test_homelab_reboot_consent_is_a_role_variable"),
    (HOMELAB_README, r"--check", f"{INSTALL}::test_mylab_site_command_loads"),
    (README, r"proxmox_pci_mapping_mappings: .*", f"{SEVERAL}::test_readme_several_cards_example_against_the_simulated_api"),
    (README, r"proxmox_gpu_vm_name: whisper-gpu\nproxmox_gpu_vm_vmid: 210\nproxmox_gpu_vm_vms: .*",
     f"{SEVERAL}::test_readme_several_cards_example_against_the_simulated_api"),
]

LIST_ONLY = ["--list-hosts", "--list-tasks"]
STAGES = ["host", "mapping", "vm", "driver", "whisper", "lb", "verify"]


def claims(readme: Path, text: str) -> list[str]:
    return [test for path, rx, test in COVERAGE if path == readme and re.fullmatch(rx, text, flags=re.S)]


def test_the_readmes_have_commands():
    """The extractor finds what a reader sees: guards against a parser that silently finds nothing."""
    found = [c.text for c in commands(README)]
    assert "make demo" in found and "make test" in found, found
    assert sum(t.startswith("curl ") for t in found) >= 3, found
    assert any(t.startswith("ansible-doc ") for t in found), found
    assert any(c.kind == "python" for c in commands(README))
    assert any(c.kind == "yaml" for c in commands(README))
    assert commands(HOMELAB_README)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_readme_command_is_run_by_a_test(readme):
    unclaimed = [str(c) for c in commands(readme) if not claims(readme, c.text)]
    assert not unclaimed, (
        "README commands that no test runs (add the test and a COVERAGE entry in "
        f"{STATIC}, or drop the command):\n  " + "\n  ".join(unclaimed))
    ambiguous = [f"{c}: {claims(readme, c.text)}" for c in commands(readme) if len(claims(readme, c.text)) > 1]
    assert not ambiguous, "README commands claimed by more than one entry:\n  " + "\n  ".join(ambiguous)


def test_every_coverage_entry_names_a_test_that_exists():
    missing = []
    for _readme, _rx, node in COVERAGE:
        path, func = node.split("::")
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if func not in names:
            missing.append(node)
    assert not missing, f"COVERAGE names tests that do not exist: {missing}"


def test_every_coverage_entry_matches_a_command():
    """A stale entry (the README no longer has the command) is removed, not kept."""
    stale = [(str(p.relative_to(REPO)), rx) for p, rx, _t in COVERAGE
             if not any(re.fullmatch(rx, c.text, flags=re.S) for c in commands(p))]
    assert not stale, f"COVERAGE entries that match no README command: {stale}"


def test_the_demo_module_is_run_by_make_test():
    """The live half runs in make test (mk/demo.mk, test-demo), and so do the lab VM's scenarios
    (mk/vfio.mk, test-vfio)."""
    out = subprocess.run(["make", "-pq", "test"], cwd=REPO, capture_output=True, text=True, check=False).stdout
    targets = re.search(r"^TEST_TARGETS :?= (.*)$", out, flags=re.M)
    assert targets and "test-demo" in targets.group(1).split(), "test-demo is not in make test's TEST_TARGETS"
    assert "test-readme" in targets.group(1).split(), "test-readme is not in make test's TEST_TARGETS"
    assert "test-vfio" in targets.group(1).split(), "test-vfio is not in make test's TEST_TARGETS"
    assert DEMO in (REPO / "mk" / "demo.mk").read_text(encoding="utf-8")
    # make test-readme runs this module, the install routes and the VM template's check
    readme_mk = (REPO / "mk" / "readme.mk").read_text(encoding="utf-8")
    for module in (STATIC, INSTALL, "tests/readme/test_vm_template.py"):
        assert module in readme_mk, f"make test-readme does not run {module}"


def test_make_test_is_what_ci_runs():
    """`make test` is the command .ci/run runs (CI itself is what runs it)."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    code = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert any(re.match(r"make test(\s|$)", ln) for ln in code), f".ci/run does not run `make test`:\n{ci}"


def test_make_setup_is_the_development_toolchain():
    """`make setup` (named beside make setup-controller): the venv with the controller's packages and
    the development tools (tests/readme/test_install.py checks that setup-controller has none of them)."""
    res = bash("make setup && .venv/bin/python -m pip list --format=freeze", PATH="/usr/bin:/bin")
    assert res.returncode == 0, res.stdout + res.stderr
    freeze = res.stdout.lower()
    for pkg in ("ansible-core==", "proxmoxer==", "requests==", "ansible-lint==", "molecule==", "pytest=="):
        assert f"\n{pkg}" in freeze, f"{pkg} missing from make setup's venv"


@pytest.fixture(scope="module")
def ssh_home(tmp_path_factory):
    """A HOME with ~/.ssh/id_ed25519.pub: the homelab inventory hands that key to cloud-init."""
    home = tmp_path_factory.mktemp("home")
    (home / ".ssh").mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "id_ed25519")],
                   check=True)
    return home


def test_homelab_reboot_consent_is_a_role_variable(ssh_home):
    spec = yaml.safe_load((REPO / "roles/proxmox_vfio/meta/argument_specs.yml").read_text(encoding="utf-8"))
    opt = spec["argument_specs"]["main"]["options"]["proxmox_vfio_reboot_ok"]
    assert opt["type"] == "bool" and opt["default"] is False, opt
    rc, out = run_pty(["ansible-playbook", "-i", "inventories/homelab", "--ask-vault-pass", "playbooks/site.yml",
                       "-e", "proxmox_vfio_reboot_ok=true", *LIST_ONLY],
                      [(r"Vault password", VAULT_EXAMPLE_PASSWORD)], extra_env={"HOME": str(ssh_home)})
    assert rc == 0, out


def test_stage_tags_and_playbooks(ssh_home):
    text = README.read_text(encoding="utf-8")
    tags = re.search(r"--tags ([a-z|]+)", text).group(1).split("|")
    assert tags == STAGES
    for tag in tags:
        for playbook in ("playbooks/site.yml", f"playbooks/{tag}.yml"):
            rc, out = run_pty(["ansible-playbook", "-i", "inventories/homelab", "--ask-vault-pass", playbook,
                               "--tags", tag, "--list-tasks"],
                              [(r"Vault password", VAULT_EXAMPLE_PASSWORD)], extra_env={"HOME": str(ssh_home)})
            assert rc == 0, out
            listed = [ln for ln in out.splitlines() if "TAGS:" in ln and "play #" not in ln]
            ours = [ln for ln in listed if re.search(rf"TAGS: \[[^\]]*\b{tag}\b", ln)]
            assert ours, f"--tags {tag} on {playbook} lists no task:\n{out}"
            # what else is listed is tagged `always`: argument validation and preflight checks that
            # run on the controller without contacting the hosts of other stages
            others = [ln for ln in listed if ln not in ours]
            assert all("always" in ln.split("TAGS:")[1] for ln in others), others
    # "playbooks/host.yml, ...": every stage is a playbook of its own, imported by site.yml in order
    # (between them site.yml's own plays that stop the run where a reboot may not be done)
    site = yaml.safe_load((REPO / "playbooks/site.yml").read_text(encoding="utf-8"))
    assert [p["ansible.builtin.import_playbook"] for p in site if "ansible.builtin.import_playbook" in p] \
        == [f"{s}.yml" for s in STAGES]


def uncomment_multi_gpu(hosts_yml: str) -> str:
    """inventories/homelab/hosts.yml with its commented multi_gpu block (two nodes, an LB) switched on."""
    lines, out, inside = hosts_yml.splitlines(), [], False
    for line in lines:
        if "---8<---" in line or "--->8---" in line:
            inside = "---8<---" in line
            continue
        out.append(re.sub(r"^(\s*)# ?", r"\1", line, count=1) if inside else line)
    assert any("multi_gpu:" in ln and not ln.lstrip().startswith("#") for ln in out), "no multi_gpu block found"
    return "\n".join(out) + "\n"


def test_several_gpus_snippet_is_what_test_modules_runs():
    """README "Several GPUs on one host": the snippet is valid YAML for the role's argument spec (a
    list of strings) and is the list the two-GPU case of make test-modules runs the role with
    (tests/integration/modules/proxmox_vfio_gpus.yml: check, run, repeat, undo on the corpus 10 host)."""
    snippet = next(c.text for c in commands(README) if c.text.startswith("proxmox_vfio_gpus:"))
    value = yaml.safe_load(snippet)["proxmox_vfio_gpus"]
    spec = yaml.safe_load((REPO / "roles/proxmox_vfio/meta/argument_specs.yml").read_text(encoding="utf-8"))
    option = spec["argument_specs"]["main"]["options"]["proxmox_vfio_gpus"]
    assert option["type"] == "list" and option["elements"] == "str"
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), value
    plays = yaml.safe_load((REPO / "tests/integration/modules/proxmox_vfio_gpus.yml").read_text(encoding="utf-8"))
    two = [p["vars"] for p in plays if isinstance(p.get("vars"), dict) and p["vars"].get("case") == "two"]
    assert two and all(v["case_gpus"] == value for v in two), two
    assert any(p.get("check_mode") for p in plays if p.get("vars", {}).get("case") == "two")


def test_multi_gpu_example_and_the_lb_refresh_command(ssh_home, tmp_path):
    """The README's command that refreshes the load balancer's VM list, on a copy of the homelab
    inventory with its commented two-node example switched on (as a reader would): Ansible loads the
    inventory, the vault, the vm and lb stages and the whisper_lb role, and stops before contacting
    192.168.20.x. The lb stage runs for real on lab machines in make test-lb (molecule/whisper_lb)."""
    cmd = next(c.text for c in commands(README) if c.text.endswith("--tags vm,lb"))
    mylab = tmp_path / "inventories" / "mylab"
    shutil.copytree(REPO / "inventories" / "homelab", mylab)
    hosts = mylab / "hosts.yml"
    hosts.write_text(uncomment_multi_gpu(hosts.read_text(encoding="utf-8")), encoding="utf-8")
    (tmp_path / "playbooks").symlink_to(REPO / "playbooks")
    (tmp_path / "vault-pass").write_text(VAULT_EXAMPLE_PASSWORD + "\n", encoding="utf-8")
    inv = bash(f"ansible-inventory -i {mylab} --vault-password-file {tmp_path / 'vault-pass'} --list")
    assert inv.returncode == 0, inv.stderr
    data = json.loads(inv.stdout)
    assert data["proxmox_hosts"]["hosts"] == ["server", "server2"], data["proxmox_hosts"]
    assert data["lb_hosts"]["hosts"] == ["whisper-lb"], data.get("lb_hosts")
    node2 = data["_meta"]["hostvars"]["server2"]
    # the second node's own card and VM override group_vars/ (host variables win)
    assert node2["gpu_address"] == "0000:01:00.0" and node2["proxmox_gpu_vm_name"] == "whisper-gpu2", node2
    assert data["_meta"]["hostvars"]["server"]["gpu_address"] == "0000:03:00.0"
    rc, out = run_pty(cmd.split() + LIST_ONLY, [(r"Vault password", VAULT_EXAMPLE_PASSWORD)], cwd=tmp_path,
                      extra_env={"HOME": str(ssh_home)})
    assert rc == 0, out
    assert re.search(r"play #\d+ \(proxmox_hosts\): GPU VM.*\n\s+pattern: \['proxmox_hosts'\]\n\s+hosts \(2\):", out), out
    assert re.search(r"play #\d+ \(lb_hosts\): Load balancer.*\n\s+pattern: \['lb_hosts'\]\n\s+hosts \(1\):\n\s+whisper-lb", out), out
    assert "whisper_lb : Write the HAProxy configuration" in out, out
    listed = [ln for ln in out.splitlines() if "TAGS:" in ln and "play #" not in ln]
    assert all(re.search(r"TAGS: \[[^\]]*\b(vm|lb|always)\b", ln) for ln in listed), listed


def test_ansible_doc_modules():
    cmds = [c.text for c in commands(README) if re.fullmatch(r"ansible-doc homelab\.gpu_passthrough\.\w+", c.text)]
    modules = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if p.stem != "__init__")
    assert sorted(c.rsplit(".", 1)[1] for c in cmds) == modules, "the README's module table is not the module list"
    for cmd in cmds:
        res = bash(cmd)
        assert res.returncode == 0, res.stderr
        name = cmd.split()[-1]
        assert name.upper() in res.stdout.upper() and "OPTIONS" in res.stdout, res.stdout[:500]


def test_ansible_doc_roles():
    cmd = next(c.text for c in commands(README) if "-t role" in c.text)
    roles = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))
    assert len(roles) == 7, roles
    for role in roles:
        res = bash(cmd.replace("<role>", role))
        assert res.returncode == 0, res.stderr
        assert f"{role}_" in res.stdout and "OPTIONS" in res.stdout.upper(), res.stdout[:500]


def test_make_bench_service_prints_the_table(tmp_path):
    """`make bench-service`, in a short form: this service (each default configuration) and faster-whisper
    in one process, 1 long and 2 short requests, no peer (installing them takes gigabytes), the table
    written into a copy of the README (the real one holds the full run's figures) and the JSON rows to
    BENCH_OUT. The figures in the README come from the full run (no BENCH_ARGS)."""
    copy = tmp_path / "README.md"
    copy.write_text(README.read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "results.json"
    res = bash(f'make bench-service BENCH_ARGS="--servers whisper-api,faster-whisper --a-requests 1 '
               f'--b-requests 2 --readme {copy}" BENCH_OUT={out}', timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    print(res.stdout[res.stdout.find("| server |"):])
    rows = json.loads(out.read_text(encoding="utf-8"))
    keys = ["server", "workload", "audio_s_per_s", "p50_s", "p95_s", "wer", "health_p99_ms"]
    assert all(list(r) == keys for r in rows), rows
    ours = [r for r in rows if "whisper-api" in r["server"]]
    assert {(r["server"].split(" (")[0], r["workload"]) for r in ours} == {
        (f"whisper-api, {c}", w) for c in ("defaults", "batching off", "one worker") for w in "AB"}, rows
    assert all(r["health_p99_ms"] > 0 and r["audio_s_per_s"] > 0 for r in ours), rows
    direct = [r for r in rows if r["server"].startswith("faster-whisper ")]
    assert [r["workload"] for r in direct] == ["A", "B"] and all(r["health_p99_ms"] is None for r in direct)
    assert all(r["wer"] < 0.3 for r in rows), rows  # espeak-ng speech, tiny.en: a few words wrong at most
    written = copy.read_text(encoding="utf-8")
    begin, end = "<!-- bench-service:begin", "<!-- bench-service:end -->"
    section = written[written.index(begin):written.index(end)]
    assert "| server | A: audio-s/s |" in section and "| whisper-api, defaults" in section, section
    assert "Load average (1 min)" in section, section
    outside = README.read_text(encoding="utf-8")
    assert written[:written.index(begin)] == outside[:outside.index(begin)]
    assert written[written.index(end):] == outside[outside.index(end):]
    for peer in ("speaches", "whisper-asr-webservice", "wyoming-faster-whisper"):
        assert f"| {peer} " in outside, f"README.md's table lacks {peer}"


def test_readme_paths_exist():
    """Files and folders the README and the homelab README name, in links or code spans, exist."""
    missing = []
    for readme in READMES:
        text = readme.read_text(encoding="utf-8")
        refs = re.findall(r"\]\(([^)#]+)\)", text)
        refs += [s for _n, s in readme_commands.spans(readme)
                 if re.fullmatch(r"[\w.-]+(/[\w.<>-]*)+", s) and "<" not in s and not s.startswith("/")]
        for ref in refs:
            if ref.startswith("http"):
                continue
            base = REPO if ref.split("/")[0] in {p.name for p in REPO.iterdir()} else readme.parent
            # every role with tasks (roles/proxmox_api_access may hold only the privilege list in a branch)
            in_every_role = ref.startswith(("meta/", "defaults/", "tasks/")) and all(
                (role / ref).exists() for role in (REPO / "roles").iterdir() if (role / "tasks").is_dir())
            if not (base / ref).exists() and not in_every_role:
                missing.append(f"{readme.relative_to(REPO)}: {ref}")
    assert not missing, f"README names paths that do not exist: {missing}"


def test_readme_role_variables_exist():
    """Role variables the README names (`proxmox_vfio_reboot_ok`, `whisper_api_require_gpu: true`, ...)
    are options of that role's argument spec; service settings (WHISPER_API_*) exist in the service."""
    options = {}
    for spec in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        options.update(yaml.safe_load(spec.read_text(encoding="utf-8"))["argument_specs"]["main"]["options"])
    service_src = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "service").rglob("*.py")
                            if ".venv" not in p.parts)
    prefixes = tuple(p.name + "_" for p in (REPO / "roles").iterdir())
    missing = []
    for readme in READMES:
        for _n, span in readme_commands.spans(readme):
            for word in re.findall(r"\b[a-z][a-z0-9_]+\b", span):
                if word.startswith(prefixes) and word not in options and not word.endswith("_required"):
                    missing.append(f"{readme.name}: {word}")
            for setting in re.findall(r"\bWHISPER_API_[A-Z_]+", span):
                if setting.removeprefix("WHISPER_API_").lower() not in service_src.lower():
                    missing.append(f"{readme.name}: {setting}")
    assert not missing, f"README names variables no role or service has: {missing}"


def test_set_facts_named_in_the_readme_are_set_by_the_roles():
    text = README.read_text(encoding="utf-8")
    for fact in re.findall(r"`(\w+_reboot_required)`", text):
        role = fact.removesuffix("_reboot_required")
        tasks = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "roles" / role).rglob("*.yml"))
        assert f"{fact}:" in tasks, f"{fact} is named in the README but role {role} never sets it"


def first_screen() -> str:
    """What a newcomer sees first: the README up to the first horizontal rule."""
    text = README.read_text(encoding="utf-8")
    return text[:text.index("\n---\n")]


def test_first_screen_has_exactly_the_two_commands():
    """House rule: the first screen carries exactly two commands, make demo and the test command,
    then a pointer to the real-hardware section, which comes before the lab's details."""
    screen = first_screen()
    assert len(screen.splitlines()) <= 30, "the first screen grew past 30 lines"
    found = [c.text for c in commands(README) if c.line <= len(screen.splitlines())]
    assert sorted(set(found)) == ["make demo", "make test"], found
    assert "[On real hardware](#on-real-hardware)" in screen
    text = README.read_text(encoding="utf-8")
    heads = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert heads[0] == "## On real hardware", heads
    assert heads.index("## On real hardware") < heads.index("## The local lab and the simulated Proxmox API")


def test_open_webui_settings_name_the_openai_route():
    """The Open WebUI table: Open WebUI's four STT variables, the OpenAI engine, and a base URL that is
    the one the OpenAI client example uses (Open WebUI appends /audio/transcriptions to it; the live
    request runs in test_readme_demo.py::test_readme_open_webui_settings)."""
    rows = open_webui_rows(README.read_text(encoding="utf-8"))
    assert set(rows) == {"AUDIO_STT_ENGINE", "AUDIO_STT_OPENAI_API_BASE_URL", "AUDIO_STT_OPENAI_API_KEY",
                         "AUDIO_STT_MODEL"}, rows
    assert rows["AUDIO_STT_ENGINE"] == "openai" and rows["AUDIO_STT_MODEL"] == "whisper-1", rows
    python = next(c.text for c in commands(README) if c.kind == "python")
    assert f'base_url="{rows["AUDIO_STT_OPENAI_API_BASE_URL"]}"' in python, (rows, python)


def test_home_assistant_note_names_the_wyoming_variables():
    """The Home Assistant note: Wyoming, the role variables that turn it on (with their real names and the
    default port) and the allowed networks it requires (no authentication)."""
    text = README.read_text(encoding="utf-8")
    note = text[text.index("Home Assistant:"):]
    note = note[:note.index("\n\n")]
    defaults = yaml.safe_load((REPO / "roles/whisper_api/defaults/main.yml").read_text(encoding="utf-8"))
    assert "Wyoming" in note and "not over HTTP" in note and "no authentication" in note, note
    assert "`whisper_api_wyoming: true`" in note and defaults["whisper_api_wyoming"] is False, note
    assert f"port {defaults['whisper_api_wyoming_port']} (`whisper_api_wyoming_port`)" in note, note
    assert "`whisper_api_allowed_networks`" in note and "whisper_api_allowed_networks" in defaults, note
