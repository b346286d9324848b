"""examples/kubernetes/workers-job.yaml: what can be checked without a cluster. The manifest
parses, keeps the password out of the pod's arguments, lets the trials return before SIGKILL,
names the worker's real exit statuses, and its container's command line runs a grid to
completion against a real gridexp-server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import PASSWORD, trials_of

MANIFEST = Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "workers-job.yaml"


def the_job() -> dict:
    (job,) = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    return job


def the_container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_the_job_is_indexed_and_its_failure_policy_names_the_workers_exit_statuses():
    job = the_job()
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy needs it
    rules = spec["podFailurePolicy"]["rules"]
    by_exit = {
        code: rule["action"]
        for rule in rules
        if "onExitCodes" in rule
        for code in rule["onExitCodes"]["values"]
    }
    # 128 + SIGTERM and the bad set-up status, as cpp/worker/worker_exit.h defines them.
    exit_header = (MANIFEST.parents[2] / "cpp" / "worker" / "worker_exit.h").read_text()
    assert "kWorkerExitBadSetup = 2;" in exit_header
    assert "kWorkerExitTerminated = 128 + SIGTERM;" in exit_header
    assert by_exit == {143: "Ignore", 2: "FailJob"}
    for rule in rules:
        if "onExitCodes" in rule:
            assert rule["onExitCodes"]["containerName"] == the_container(job)["name"]


def test_the_password_comes_from_a_secret_and_the_trials_get_their_grace():
    job = the_job()
    container = the_container(job)
    assert not any("password" in argument for argument in container["args"])
    (password,) = [e for e in container["env"] if e["name"] == "GRIDEXP_PASSWORD"]
    assert "secretKeyRef" in password["valueFrom"]
    grace = next(
        float(argument.split("=", 1)[1])
        for argument in container["args"]
        if argument.startswith("--grace_seconds=")
    )
    assert job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace


def test_the_containers_command_line_runs_the_grid(start_server, tmp_path, experiment_dir):
    server = start_server(experiment_dir)
    container = the_container(the_job())
    arguments = [
        re.sub(
            r"^--workdir=.*",
            f"--workdir={tmp_path / 'work'}",
            re.sub(r"^--address=.*", f"--address=127.0.0.1:{server.port}", argument),
        )
        for argument in container["args"]
    ]
    (tmp_path / "work").mkdir()
    (program,) = container["command"]
    environment = {**os.environ, "GRIDEXP_PASSWORD": PASSWORD}
    completed = subprocess.run(
        [shutil.which(program), *arguments, "--save_models=False"],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    trials = trials_of(server, "sentiment_analysis1")
    assert trials and all(trial["state"] == "done" for trial in trials)
