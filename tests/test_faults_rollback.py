"""Seed and tree faults: a mirror listing an older (validly signed) seed, a `stable` that
moves to an older commit (both refused), a placed seed that was removed. Through the real graph,
with the fixtures of test_inputs.py."""
import pytest

from gentoo_zfs_livecd.rehearsal import emulator
from tests.support.buildgraph import Project
from tests.support.gpgtestkeys import Keys
from tests.test_inputs import EVERY_STAGE, serve_seed, upstream  # noqa: F401 (the upstream fixture)


@pytest.fixture
def keys(tmp_path_factory):
    made = Keys(tmp_path_factory.mktemp("keys"))
    yield made
    made.close()


def test_an_older_seed_from_a_mirror_is_refused(httpserver, keys, tmp_path):
    project = Project(tmp_path, seed={"file": None, "mirrors": [httpserver.url_for("/")],
                                      "keyring": str(keys.keyring), "fingerprint": keys.primary})
    data = emulator.make_seed(tmp_path / "upstream-seed.tar.xz").read_bytes()
    serve_seed(httpserver, keys, data, "20260117T000000Z")
    assert project.build() == ["snapshot", *EVERY_STAGE]
    pin = (project.build_dir / "pins" / "seed.json").read_text()
    serve_seed(httpserver, keys, data + b"\0" * 512, "20260110T000000Z")
    refused = project.doit("refresh=1")
    assert refused.returncode != 0
    errors = [line for line in refused.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "older than the pinned stage3-amd64-openrc-20260117T000000Z" in errors[0]
    assert (project.build_dir / "pins" / "seed.json").read_text() == pin
    assert project.calls() == []


def test_stable_moving_to_an_older_commit_is_refused_unless_pinned(upstream, tmp_path):  # noqa: F811
    project = Project(tmp_path, snapshot={"treeish": "stable", "repo_url": upstream.url, "rebuild": "always",
                                          "keyring": str(upstream.keyring), "fingerprint": upstream.primary})
    upstream.commit(date="2026-03-01T12:00:00Z")
    assert project.build() == ["snapshot", *EVERY_STAGE]
    pin = (project.build_dir / "pins" / "snapshot.json").read_text()
    older = upstream.commit(date="2020-01-01T00:00:00Z")
    refused = project.doit("refresh=1")
    assert refused.returncode != 0
    errors = [line for line in refused.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "refusing to go back in time" in errors[0] and older in errors[0]
    assert (project.build_dir / "pins" / "snapshot.json").read_text() == pin
    assert project.calls() == []
    project.configure(snapshot={"treeish": older})
    assert project.build() == ["snapshot", *EVERY_STAGE]


def test_a_removed_mirror_seed_is_downloaded_and_placed_again(httpserver, keys, tmp_path):
    project = Project(tmp_path, seed={"file": None, "mirrors": [httpserver.url_for("/")],
                                      "keyring": str(keys.keyring), "fingerprint": keys.primary})
    data = emulator.make_seed(tmp_path / "upstream-seed.tar.xz").read_bytes()
    serve_seed(httpserver, keys, data, "20260117T000000Z")
    assert project.build() == ["snapshot", *EVERY_STAGE]
    seed = project.store / "builds" / "23.0-zfs" / "stage3-amd64-openrc-seed.tar.xz"
    seed.unlink()
    assert project.build() == []  # the same seed again: no stage rebuilds
    assert seed.read_bytes() == data
