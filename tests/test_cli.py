"""The command line, run as a user runs it: ``python <pack folder> ...`` in a subprocess."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from packloader import PACK_ROOT, pack_import

sim_images = pack_import("simulator.images")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PACK_ROOT), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )


@pytest.fixture
def user_env(simulator, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCOMFY_")}
    env.update(
        RUNCOMFY_API_BASE_URL=simulator.url,
        RUNCOMFY_API_TOKEN=simulator.token,
        RUNCOMFY_CONFIG=str(tmp_path / "no-config.json"),
    )
    return env


def test_text_to_image_writes_images_and_prints_id_and_cost(simulator, user_env, tmp_path):
    done = run_cli("text-to-image", "--prompt", "a fox", "--num-images", "2", "--aspect-ratio", "3:2",
                   "--resolution", "0.5K", "--output-format", "webp", "--out", str(tmp_path), env=user_env)
    assert done.returncode == 0, done.stderr
    (request_id,) = simulator.jobs
    paths = [Path(line) for line in done.stdout.split()]
    assert len(paths) == 2 and all(request_id in path.name for path in paths)
    for path in paths:
        with Image.open(path) as image:
            assert (image.format, image.size) == ("WEBP", sim_images.expected_size("3:2", "0.5K"))
    assert f"request id: {request_id}" in done.stderr and "cost: $" in done.stderr
    assert simulator.token not in done.stdout + done.stderr
    assert simulator.job(request_id).inputs["output_format"] == "webp"


def test_edit_sends_a_local_file_inline(simulator, user_env, tmp_path):
    source = tmp_path / "in.png"
    Image.new("RGB", (300, 200), (10, 200, 90)).save(source)
    done = run_cli("edit", "--image", str(source), "--prompt", "night", "--resolution", "0.5K",
                   "--out", str(tmp_path / "out"), env=user_env)
    assert done.returncode == 0, done.stderr
    (job,) = simulator.jobs.values()
    assert [image.size for image in job.images] == [(300, 200)]
    assert len(list((tmp_path / "out").iterdir())) == 1


@pytest.mark.parametrize(
    "args, words",
    [
        (["text-to-image", "--num-images", "9"], "num_images: must be at most 4"),
        (["text-to-image", "--prompt", " "], "prompt: is empty"),
        (["edit", "--prompt", "x"], "image_urls: needs at least 1"),
    ],
)
def test_bad_input_is_one_line_and_sends_nothing(simulator, user_env, args, words):
    done = run_cli(*args, env=user_env)
    assert done.returncode == 2 and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert simulator.requests() == []


def test_missing_token_says_how_to_set_it(user_env):
    del user_env["RUNCOMFY_API_TOKEN"]
    done = run_cli("text-to-image", "--prompt", "x", env=user_env)
    assert done.returncode == 2 and "RUNCOMFY_API_TOKEN" in done.stderr


def test_try_it_command_from_readme_needs_no_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCOMFY_")}
    done = run_cli("text-to-image", "--simulator", "--prompt", "a lighthouse at dawn", "--resolution", "0.5K",
                   "--out", "out", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "out").iterdir()
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        assert image.size == sim_images.expected_size("auto", "0.5K")


def test_a_negative_seed_is_refused_before_anything_is_sent(simulator, user_env):
    done = run_cli("text-to-image", "--prompt", "x", "--seed", "-7", env=user_env)
    assert done.returncode == 2 and "seed: must be between 0 and 2147483647" in done.stderr
    assert simulator.requests() == []


def test_ctrl_c_cancels_a_queued_job_and_says_so(simulator, user_env, tmp_path):
    simulator.script_next_jobs("queued_forever")
    process = subprocess.Popen(
        [sys.executable, str(PACK_ROOT), "text-to-image", "--prompt", "x", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env,
    )
    try:
        simulator.wait_until(lambda: simulator.requests(route="status"), timeout=60)  # submitted, being followed
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    (request_id,) = simulator.jobs
    assert process.returncode == 130
    assert "Cancelled on RunComfy while still queued: nothing is billed" in stderr and request_id in stderr
    assert simulator.state(request_id) == "cancelled"


def test_ctrl_c_during_a_rate_limit_wait_sends_no_second_submit(simulator, user_env, tmp_path):
    simulator.add_fault("submit", "http_error", status=429, retry_after=30)
    process = subprocess.Popen(
        [sys.executable, str(PACK_ROOT), "edit", "--prompt", "x", "--image", "https://example.com/a.png",
         "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env,
    )
    try:
        simulator.wait_until(lambda: simulator.requests(route="submit"), timeout=60)  # refused, waiting 30 s
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and "nothing was billed" in stderr
    assert len(simulator.requests(route="submit")) == 1 and simulator.jobs == {}


def test_the_simulator_command_loads_neither_httpx_nor_the_client():
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", str(PACK_ROOT), "simulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().startswith("RunComfy simulator listening on http://127.0.0.1:")
    finally:
        process.terminate()
        _, imports = process.communicate(timeout=30)
    loaded = [line.rsplit("|", 1)[-1].strip() for line in imports.splitlines() if "|" in line]
    assert "simulator.server" in " ".join(loaded)  # the log is real
    pack_client = "runcomfy_nano_banana_2.client"  # the package name __main__.py loads the pack under
    assert not any(name.split(".")[0] == "httpx" or name.startswith(pack_client) for name in loaded)
